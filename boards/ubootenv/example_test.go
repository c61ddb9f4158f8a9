package ubootenv_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"meterupd/boards/ubootenv"
)

// Two redundant copies in one file, as an fw_env.config describes them;
// each Update writes the other copy with the next serial.
func ExampleStore_Update() {
	dir, _ := os.MkdirTemp("", "env")
	defer os.RemoveAll(dir)
	img := filepath.Join(dir, "env.img")
	first, _ := ubootenv.Encode(ubootenv.Env{"bootcmd": "run meterupd"}, 0x1000, true, 1)
	os.WriteFile(img, append(first, make([]byte, 0x1000)...), 0o644)

	cfg, _ := ubootenv.ParseConfig(strings.NewReader(img + " 0x0 0x1000\n" + img + " 0x1000 0x1000\n"))
	store, _ := ubootenv.Open(cfg)
	err := store.Update(func(env ubootenv.Env) error {
		env["meterupd_order"] = "B A"
		return nil
	})
	fmt.Println("update:", err)

	env, _ := store.Load()
	for _, k := range env.Names() {
		fmt.Printf("%s=%s\n", k, env[k])
	}
	b, _ := os.ReadFile(img)
	fmt.Println("serials:", ubootenv.ReadHeader(b[:0x1000], true).Flag, ubootenv.ReadHeader(b[0x1000:], true).Flag)
	// Output:
	// update: <nil>
	// bootcmd=run meterupd
	// meterupd_order=B A
	// serials: 1 2
}
