package common_test

import (
	"fmt"

	"meterupd/common"
	"meterupd/internal/flashrec"
)

// Before activating a new set the agent archives the settings; on rollback
// it restores them. Readings taken in between stay.
func Example() {
	c, _ := common.Open(flashrec.NewMem(64<<10, 4096, 16)) // the board's hw.PartCommon
	c.WriteSettings(common.Settings{Schema: 1, Config: []byte("v1 config")})
	c.Archive("A/1.4.2")                                                    // before activation
	c.WriteSettings(common.Settings{Schema: 2, Config: []byte("migrated")}) // the trial set migrates
	c.AppendReading(common.Reading{Interval: 1, Wh: 1200})                  // metering goes on
	wrote, _ := c.Restore()                                                 // rollback
	s, _ := c.Settings()
	fmt.Println(wrote, s.Schema, string(s.Config), len(c.Readings()))
	// Output: true 1 v1 config 1
}
