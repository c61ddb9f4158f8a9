package headend

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteNodes prints the fleet table.
func WriteNodes(w io.Writer, nodes []Node) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tDEVICE TYPE\tVERSION\tSTATE\tLAST REPORT\tRESULT\tLINK")
	for _, n := range nodes {
		last := "-"
		if !n.LastReport.IsZero() {
			last = n.LastReport.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", n.ID, dash(n.DeviceType), dash(n.Version), dash(n.State), last, n.Result, dash(n.Link))
	}
	return tw.Flush()
}

// WriteHistory prints a node's report history, oldest first.
func WriteHistory(w io.Writer, n Node, h []Report) error {
	fmt.Fprintf(w, "node %s: %s, version %s, state %s, result %d\n", n.ID, dash(n.DeviceType), dash(n.Version), dash(n.State), n.Result)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tAT\tJOB\tSTATE\tRESULT\tVERSION\tREASON")
	for _, r := range h {
		var rep Reported
		if _, rp, err := parseUpdate(fmt.Appendf(nil, `{"seq":%d,"reported":%s}`, r.Seq, r.Reported)); err == nil {
			rep = rp
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\n", r.Seq, r.At.Format(time.RFC3339), dash(rep.Job), dash(rep.State), rep.Result, dash(rep.Running.Version), rep.Reason)
	}
	return tw.Flush()
}

// WriteStatus prints a campaign's counts per state and, for a terminal,
// a progress bar.
func WriteStatus(w io.Writer, s Status, bar bool) error {
	c := s.Campaign
	fmt.Fprintf(w, "campaign %s: %s, wave %d of %d, package %s\n", c.ID, c.State, c.Wave+1, len(c.Waves), c.Package)
	if c.Reason != "" {
		fmt.Fprintf(w, "  reason: %s\n", c.Reason)
	}
	done := s.Done()
	if bar {
		const width = 40
		fill := 0
		if s.Total > 0 {
			fill = done * width / s.Total
		}
		fmt.Fprintf(w, "  [%s%s] %d/%d\n", strings.Repeat("#", fill), strings.Repeat(".", width-fill), done, s.Total)
	} else {
		fmt.Fprintf(w, "  done %d/%d\n", done, s.Total)
	}
	var parts []string
	for _, st := range sortedStates {
		parts = append(parts, fmt.Sprintf("%s=%d", st, s.Counts[st]))
	}
	fmt.Fprintf(w, "  %s\n", strings.Join(parts, " "))
	for i, wv := range s.Waves {
		fmt.Fprintf(w, "  wave %d: %d nodes, committed=%d failed=%d unreachable=%d\n", i+1, wv.Nodes,
			wv.Counts[TargetCommitted], wv.Counts[TargetFailed], wv.Counts[TargetUnreachable])
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// LoadTLS builds a TLS configuration: with cert and key, this side's
// certificate; with ca, the authorities it trusts for the other side (a
// server then asks clients for certificates signed by them).
func LoadTLS(cert, key, ca string, server bool) (*tls.Config, error) {
	if cert == "" && ca == "" {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cert != "" {
		c, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("headend: tls: %w", err)
		}
		tc.Certificates = []tls.Certificate{c}
	}
	if ca != "" {
		b, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("headend: tls: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("%w: tls: no certificate in %s", ErrBadInput, ca)
		}
		if server {
			tc.ClientCAs, tc.ClientAuth = pool, tls.RequireAndVerifyClientCert
		} else {
			tc.RootCAs = pool
		}
	}
	return tc, nil
}
