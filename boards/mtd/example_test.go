package mtd_test

import (
	"fmt"

	"meterupd/boards/mtd"
	"meterupd/boards/mtd/mtdtest"
)

// A 6-block NAND partition with a factory bad block holds a 4-block slot:
// logical blocks skip the bad one, and the slot keeps its size.
func ExampleNew() {
	const es = 128 << 10
	chip := mtdtest.NewNAND(6*es, es, 2048, 64, 1) // block 1 is bad
	f, err := mtd.New(chip, "rootfs_a", mtd.WithSize(4*es))
	if err != nil {
		fmt.Println(err)
		return
	}
	for i := int64(0); i < 4; i++ {
		p, _ := f.Physical(i * es)
		fmt.Printf("logical block %d -> physical block %d\n", i, p/es)
	}
	_, err = mtd.New(chip, "rootfs_a", mtd.WithSize(6*es))
	fmt.Println(err)
	// Output:
	// logical block 0 -> physical block 0
	// logical block 1 -> physical block 2
	// logical block 2 -> physical block 3
	// logical block 3 -> physical block 4
	// mtd: not enough good erase blocks: rootfs_a: 5 good of 6 blocks, 6 needed
}
