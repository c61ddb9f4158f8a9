package modem_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"meterupd/boards/modem"
)

// The health check after a trial boot: is the radio linked?
func ExampleModem_Linked() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := modem.Open(ctx, "/dev/ttymxc1", modem.Config{
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)),
		OnURC:  func(u modem.URC) { fmt.Println("unsolicited:", u.Line) },
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	if err := m.Linked(ctx); err != nil {
		fmt.Println("radio check failed:", err)
	}
}

// Updating the module's firmware from a file in the package store. A file
// is an io.Seeker, so a transfer that breaks off resumes.
func ExampleATUpdater() {
	ctx := context.Background()
	m, err := modem.Open(ctx, "/dev/ttymxc1", modem.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	f, err := os.Open("modem-fw.bin")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		fmt.Println(err)
		return
	}
	u := modem.NewATUpdater(m, modem.UpdaterConfig{
		Progress: func(done, total int64) { fmt.Printf("%d/%d\n", done, total) },
	})
	if err := u.Update(ctx, f, fi.Size()); err != nil {
		fmt.Println(err)
		return
	}
	v, err := u.Version(ctx)
	fmt.Println(v, err)
}
