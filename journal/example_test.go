package journal_test

import (
	"errors"
	"fmt"

	"meterupd/journal"
	"meterupd/journal/internal/flashtest"
)

type agentState struct {
	Active string `cbor:"active"`
	Trial  string `cbor:"trial,omitempty"`
	Step   string `cbor:"step"`
}

func Example() {
	flash := flashtest.New(8*4096, 4096, 1, 1) // a board's journal partition

	j, err := journal.Open(flash, journal.Options{})
	if errors.Is(err, journal.ErrEmpty) {
		// Provisioning: the only place that formats.
		j, err = journal.Format(flash, agentState{Active: "A", Step: "idle"}, journal.Options{})
	}
	if err != nil {
		fmt.Println(err)
		return
	}
	// Record the intent before the side effect.
	if err := j.Commit(agentState{Active: "A", Trial: "B", Step: "trial"}); err != nil {
		fmt.Println(err)
		return
	}

	// After a reboot (or a power cut at any point) Open finds the newest record.
	j, err = journal.Open(flash, journal.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	var st agentState
	if err := j.Load(&st); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("seq %d: active %s, trial %s, step %s\n", j.Seq(), st.Active, st.Trial, st.Step)

	rs, _ := j.Records()
	for _, r := range rs {
		var h agentState
		_ = journal.Decode(r.Data, &h)
		fmt.Printf("history %d: %s\n", r.Seq, h.Step)
	}
	// Output:
	// seq 2: active A, trial B, step trial
	// history 1: idle
	// history 2: trial
}
