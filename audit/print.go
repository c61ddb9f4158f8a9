package audit

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// Listing is what `meterupd audit --json` prints: the records and the
// chain's verification.
type Listing struct {
	Records []Record `json:"records"`
	Verify  Report   `json:"verify"`
}

// WriteJSON writes the listing as one JSON document.
func WriteJSON(w io.Writer, recs []Record, rep Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(Listing{Records: recs, Verify: rep})
}

// WriteText writes one line per record, oldest first, then the chain's
// verdict, for a person at the console.
func WriteText(w io.Writer, recs []Record, rep Report) error {
	for _, r := range recs {
		when := time.UnixMilli(r.UnixMilli).UTC().Format(time.RFC3339)
		if !r.ClockValid {
			when += " (clock not valid)"
		}
		line := fmt.Sprintf("%4d  %s  %-16s %s:%s  %s -> %s", r.Seq, when, r.Kind, r.Origin.Kind, r.Origin.ID, ident(r.Before), ident(r.After))
		if r.Detail != "" {
			line += "  " + r.Detail
		}
		if _, err := fmt.Fprintln(w, line); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintln(w, Verdict(rep))
	return err
}

// Verdict is the chain's verdict in one line.
func Verdict(rep Report) string {
	if rep.Break != nil {
		return fmt.Sprintf("chain: BROKEN at record %d (offset %d): %s", rep.Break.Seq, rep.Break.Offset, rep.Break.Reason)
	}
	s := fmt.Sprintf("chain: intact, %d records, head %d %s, %d of %d bytes used", rep.Records, rep.HeadSeq, short(rep.HeadHash), rep.Used, rep.Size)
	if rep.TornGaps > 0 {
		s += fmt.Sprintf(", %d interrupted append(s) skipped", rep.TornGaps)
	}
	if rep.TornTail {
		s += ", torn data after the head"
	}
	return s
}

func ident(id Identity) string {
	if id.Slot == "" && id.Version == "" && len(id.Digest) == 0 {
		return "-"
	}
	return fmt.Sprintf("%s/%s/%s", id.Slot, id.Version, short(id.Digest))
}

func short(b []byte) string { return hex.EncodeToString(b[:min(len(b), 8)]) }
