package shadow

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits of a desired document. A meter on a 2.4 kbit/s link has no use for
// a larger one, and a bound keeps a hostile broker from making the node
// allocate.
const (
	// MaxDocSize is the largest desired document accepted, in bytes. A
	// signed manifest (desired.manifest) is under 2 KiB for a few items;
	// base64 adds a third.
	MaxDocSize = 16 << 10
	// MaxDepth is the deepest nesting of objects and arrays accepted.
	MaxDepth = 6
	// MaxJobLen bounds a job id.
	MaxJobLen = 64
	// MaxURLLen bounds a package URL (a pre-signed URL carries a query).
	MaxURLLen = 2048
	// MaxManifestSize bounds a manifest sent in the desired document.
	MaxManifestSize = 8 << 10
)

// Activation modes of desired.activate (or an RFC 3339 time).
const (
	ActivateNow     = "now"
	ActivateCommand = "command"
)

// Delta is the desired document on state/<id>/update/delta.
type Delta struct {
	// Epoch names the replica's store: a rebuilt replica starts a new,
	// higher epoch (its creation time in Unix seconds is a good choice).
	Epoch uint64 `json:"epoch"`
	// Version is the replica's document version within Epoch, increased
	// at every change of the desired state.
	Version uint64  `json:"version"`
	Desired Desired `json:"desired"`
}

// Desired is what the head-end wants of the node.
type Desired struct {
	// Job identifies the update; it is echoed in every report.
	Job string `json:"job,omitempty"`
	// Package says where the package is; nil with Manifest alone (the
	// request flow) or with Cancel.
	Package *PackageRef `json:"package,omitempty"`
	// Manifest is a signed manifest (COSE_Sign1, base64 in JSON) sent
	// alone: the node verifies it and answers with its update request.
	Manifest []byte `json:"manifest,omitempty"`
	// Activate is "now", "command" or an RFC 3339 time; empty means now.
	Activate string `json:"activate,omitempty"`
	// Force overrides local vetoes; it is recorded as such.
	Force bool `json:"force,omitempty"`
	// Cancel abandons the job if it has not been activated.
	Cancel bool `json:"cancel,omitempty"`
}

// PackageRef locates a package: an http(s) URL (fetched with Range
// requests) or an in-band block stream on MQTT, with the package's digest
// and size.
type PackageRef struct {
	URL    string `json:"url,omitempty"`
	Stream string `json:"stream,omitempty"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// DocError is a desired document refused: Field names the field (empty for
// the document as a whole).
type DocError struct {
	Field string
	Err   error
}

func (e *DocError) Error() string {
	if e.Field == "" {
		return "shadow: desired document: " + e.Err.Error()
	}
	return "shadow: desired document: " + e.Field + ": " + e.Err.Error()
}

func (e *DocError) Unwrap() error { return e.Err }

// Errors a DocError wraps.
var (
	ErrTooLarge = errors.New("larger than the limit")
	ErrTooDeep  = errors.New("nested deeper than the limit")
	ErrSyntax   = errors.New("not a JSON object")
	ErrInvalid  = errors.New("invalid value")
	ErrScheme   = errors.New("unsupported URL scheme (http and https only)")
)

func docErr(field string, err error, format string, args ...any) error {
	if format != "" {
		err = fmt.Errorf("%w: %s", err, fmt.Sprintf(format, args...))
	}
	return &DocError{Field: field, Err: err}
}

// ParseDelta decodes and checks a desired document. maxSize bounds the
// package size it accepts (the package store's or the slot's room); 0
// means no bound beyond the field's type.
func ParseDelta(b []byte, maxSize int64) (Delta, error) {
	var d Delta
	if len(b) > MaxDocSize {
		return d, docErr("", ErrTooLarge, "%d bytes, at most %d", len(b), MaxDocSize)
	}
	if err := checkDepth(b, MaxDepth); err != nil {
		return d, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&d); err != nil {
		return Delta{}, docErr(jsonField(err), ErrSyntax, "%v", err)
	}
	if dec.More() {
		return Delta{}, docErr("", ErrSyntax, "data after the document")
	}
	if len(d.Desired.Manifest) == 0 {
		d.Desired.Manifest = nil // "" and absent mean the same
	}
	if err := d.Desired.check(maxSize); err != nil {
		return Delta{}, err
	}
	return d, nil
}

// jsonField names the field a decoding error is about, where json says.
func jsonField(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return te.Field
	}
	return ""
}

// checkDepth refuses a document nested deeper than max, before it is
// decoded: encoding/json would follow it 10,000 levels down. It also
// refuses a document that is not a JSON object.
func checkDepth(b []byte, max int) error {
	depth, inStr, esc, first := 0, false, false, true
	for _, c := range b {
		if inStr {
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
			continue
		}
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '"':
			inStr = true
		case '{', '[':
			depth++
			if depth > max {
				return docErr("", ErrTooDeep, "more than %d levels", max)
			}
		case '}', ']':
			depth--
		}
		if first && c != '{' {
			return docErr("", ErrSyntax, "the document must be a JSON object")
		}
		first = false
	}
	return nil
}

func (d *Desired) check(maxSize int64) error {
	if len(d.Job) > MaxJobLen || !printable(d.Job) {
		return docErr("desired.job", ErrInvalid, "1 to %d printable characters", MaxJobLen)
	}
	if len(d.Manifest) > MaxManifestSize {
		return docErr("desired.manifest", ErrTooLarge, "%d bytes, at most %d", len(d.Manifest), MaxManifestSize)
	}
	if _, _, err := d.Activation(); err != nil {
		return err
	}
	if d.Cancel {
		return nil // a cancel needs nothing else
	}
	if d.Package == nil && len(d.Manifest) == 0 {
		return nil // an empty desired state: nothing is wanted
	}
	if d.Job == "" {
		return docErr("desired.job", ErrInvalid, "a job id is required with a package or manifest")
	}
	if d.Package != nil {
		return d.Package.check(maxSize)
	}
	return nil
}

func (p *PackageRef) check(maxSize int64) error {
	switch {
	case p.URL != "" && p.Stream != "":
		return docErr("desired.package", ErrInvalid, "url and stream are exclusive")
	case p.URL == "" && p.Stream == "":
		return docErr("desired.package", ErrInvalid, "url or stream is required")
	case p.URL != "":
		if len(p.URL) > MaxURLLen {
			return docErr("desired.package.url", ErrTooLarge, "%d characters, at most %d", len(p.URL), MaxURLLen)
		}
		u, err := url.Parse(p.URL)
		if err != nil {
			return docErr("desired.package.url", ErrInvalid, "%v", err)
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			return docErr("desired.package.url", ErrScheme, "%q", u.Scheme)
		}
		if u.Host == "" {
			return docErr("desired.package.url", ErrInvalid, "no host")
		}
	default:
		if len(p.Stream) > MaxJobLen || !streamName(p.Stream) {
			return docErr("desired.package.stream", ErrInvalid, "1 to %d characters of [A-Za-z0-9._-]", MaxJobLen)
		}
	}
	if sum, err := hex.DecodeString(p.SHA256); err != nil || len(sum) != 32 {
		return docErr("desired.package.sha256", ErrInvalid, "64 hex digits")
	}
	if p.Size <= 0 {
		return docErr("desired.package.size", ErrInvalid, "must be positive")
	}
	if maxSize > 0 && p.Size > maxSize {
		return docErr("desired.package.size", ErrTooLarge, "%d bytes, the node has room for %d", p.Size, maxSize)
	}
	return nil
}

// Activation returns the activation mode: "now", "command", or "at" with
// the time.
func (d *Desired) Activation() (mode string, at time.Time, err error) {
	switch d.Activate {
	case "", ActivateNow:
		return ActivateNow, time.Time{}, nil
	case ActivateCommand:
		return ActivateCommand, time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, d.Activate)
	if err != nil {
		return "", time.Time{}, docErr("desired.activate", ErrInvalid, `"now", "command" or an RFC 3339 time`)
	}
	return "at", t.UTC(), nil
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	return !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

func streamName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
		default:
			return false
		}
	}
	return true
}
