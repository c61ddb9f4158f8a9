package manifest_test

import (
	"fmt"
	"io"
	"os"

	"meterupd/manifest"
)

// The node's side: verify, select, stream. Errors end the update; the
// agent writes each payload to the idle slot and trusts it only at io.EOF.
func ExampleOpenPackage() {
	pem, _ := os.ReadFile("../testdata/keys/test-ed25519.pub.pem")
	keys, err := manifest.ParseKeyringPEM(pem)
	if err != nil {
		fmt.Println(err)
		return
	}
	f, _ := os.Open("testdata/three-item.pkg")
	defer f.Close()

	p, err := manifest.OpenPackage(f, keys, manifest.Options{Floor: 6}) // floor from the journal
	if err != nil {
		fmt.Println(err)
		return
	}
	plan, err := p.Select(manifest.NodeInfo{
		VendorID: 0x4d45, ClassID: 3, DeviceType: "em300", Hardware: 3,
		Installed: map[manifest.Component]string{manifest.ComponentSystem: "1.0"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	want := map[int]bool{}
	for _, s := range plan.Steps {
		want[s.Index] = true
		fmt.Printf("plan: %s %s→%s (%d bytes)\n", s.Item.ID, s.Item.From, s.Item.To, s.Item.Size)
	}
	for i := 0; ; i++ {
		it, r, err := p.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Println(err)
			return
		}
		if !want[i] {
			continue // Next drains and checks it anyway
		}
		n, err := io.Copy(io.Discard, r) // the agent: into the idle slot
		if err != nil {
			fmt.Println(err) // digest mismatch: nothing written may be used
			return
		}
		fmt.Printf("verified %s: %d bytes\n", it.Payload, n)
	}
	// Output:
	// plan: sys-1-3 1.0→3.0 (200 bytes)
	// verified sys-1.0-3.0.bsdiff: 200 bytes
}
