package sim_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"meterupd/boards/hw"
	"meterupd/boards/sim"
)

// The shape of a power-cut run: make a node, cut the power at flash
// operation k, reopen the node from its files, power it on, check.
func Example_powerCut() {
	root, err := os.MkdirTemp("", "sim-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(root)
	g := sim.DefaultGeometry()
	g.SlotSize = 1 << 20
	for k := int64(1); ; k++ {
		dir := filepath.Join(root, fmt.Sprint(k))
		if err := sim.Create(dir, g); err != nil {
			fmt.Println(err)
			return
		}
		if err := sim.WriteFactory(dir, sim.Image(256<<10, "1.0")); err != nil {
			fmt.Println(err)
			return
		}
		b, err := sim.Open(dir, sim.WithFaults(&sim.Faults{CutAt: k, Mode: sim.CutTorn}))
		if err != nil {
			fmt.Println(err)
			return
		}
		// The "update": arm slot B (which is erased, so it cannot boot).
		err = b.Boot().Store(hw.BootState{Order: []hw.Slot{hw.SlotB, hw.SlotA}, Left: map[hw.Slot]int{hw.SlotB: 1, hw.SlotA: 3}})
		b.Close()

		b, oerr := sim.Open(dir) // the reboot: from what is on flash
		if oerr != nil {
			fmt.Println(oerr)
			return
		}
		slot, perr := b.PowerOn()
		fmt.Printf("cut at op %d: store %v, booted %s %v\n", k, errors.Is(err, sim.ErrPowerCut), slot, perr)
		b.Close()
		if err == nil {
			break
		}
	}
	// Output:
	// cut at op 1: store true, booted A <nil>
	// cut at op 2: store true, booted A <nil>
	// cut at op 3: store false, booted A <nil>
}
