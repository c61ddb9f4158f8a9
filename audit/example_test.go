package audit_test

import (
	"errors"
	"fmt"

	"meterupd/audit"
	"meterupd/internal/flashrec"
)

// The agent appends a legal record before each legally relevant step and
// refuses the step when the log cannot take it.
func Example() {
	part := flashrec.NewMem(64<<10, 4096, 16) // the board's hw.PartAudit
	log, err := audit.Open(part)
	if err != nil {
		fmt.Println("audit trail unusable:", err) // refuse updates
		return
	}
	_, err = log.Append(audit.Record{
		Kind: audit.KindVerified, UnixMilli: 1_780_000_000_000, ClockValid: true,
		Origin: audit.Origin{Kind: "job", ID: "job-17"},
		Before: audit.Identity{Slot: "A", Version: "1.4.2"},
		After:  audit.Identity{Slot: "B", Version: "1.5.0"},
	})
	if errors.Is(err, audit.ErrFull) {
		fmt.Println("legal log full: update refused")
		return
	}
	rep := log.Verify()
	fmt.Println(rep.OK(), rep.Records, rep.HeadSeq)
	// Output: true 1 1
}
