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
	root, _ := os.MkdirTemp("", "sim-example")
	defer os.RemoveAll(root)
	g := sim.DefaultGeometry()
	g.SlotSize = 1 << 20
	for k := int64(1); ; k++ {
		dir := filepath.Join(root, fmt.Sprint(k))
		if err := sim.Create(dir, g); err != nil {
			panic(err)
		}
		if err := sim.WriteFactory(dir, sim.Image(256<<10, "1.0")); err != nil {
			panic(err)
		}
		b, _ := sim.Open(dir, sim.WithFaults(&sim.Faults{CutAt: k, Mode: sim.CutTorn}))
		// The "update": arm slot B (which is erased, so it cannot boot).
		err := b.Boot().Store(hw.BootState{Order: []hw.Slot{hw.SlotB, hw.SlotA}, Left: map[hw.Slot]int{hw.SlotB: 1, hw.SlotA: 3}})
		b.Close()

		b, _ = sim.Open(dir) // the reboot: from what is on flash
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
