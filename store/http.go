package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// HTTP fetches a package from an http(s) URL with Range requests.
//
// A server must answer 206 with the Content-Range asked for: one that
// ignores Range (200 and the whole file) is refused with ErrRangeIgnored
// rather than read, so a resumed download can never append a second copy
// of the file to the first ("112 % progress"). A body longer than the
// range is an error; a redirect may only lead to http or https; a request
// that moves slower than MinRate fails, so a trickling server cannot hold
// a node for ever.
type HTTP struct {
	URL    string
	Client *http.Client // nil: a client with the redirect policy above
	// MinRate is the slowest a response may arrive, in bytes per second
	// (default 16: a 2.4 kbit/s link under heavy loss still makes it).
	MinRate int64
	// Slack is added to every request's deadline (default 60 s): a
	// radio link may take that long to answer at all.
	Slack time.Duration
}

// Errors of the HTTP remote.
var (
	ErrRangeIgnored = errors.New("store: the server ignores Range requests")
	ErrHTTP         = errors.New("store: http error")
	ErrTooLong      = errors.New("store: the server sent more than was asked for")
	ErrRedirect     = errors.New("store: redirect to an unsupported scheme")
)

// HTTPError is a response other than 206 or 200. A 5xx is the server's
// trouble and worth a retry; a 4xx (the package is gone, the pre-signed
// URL expired) is not.
type HTTPError struct {
	Code   int
	Status string
}

func (e *HTTPError) Error() string { return "store: http error: " + e.Status }
func (e *HTTPError) Is(target error) bool { return target == ErrHTTP }

// Temporary reports whether the request may succeed later.
func (e *HTTPError) Temporary() bool { return e.Code >= 500 || e.Code == http.StatusTooManyRequests }

var redirectClient = &http.Client{CheckRedirect: func(req *http.Request, via []*http.Request) error {
	if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
		return fmt.Errorf("%w: %q", ErrRedirect, req.URL.Scheme)
	}
	if len(via) >= 5 {
		return fmt.Errorf("%w: more than 5 redirects", ErrRedirect)
	}
	return nil
}}

// Fetch implements Remote.
func (h *HTTP) Fetch(ctx context.Context, p []byte, off int64) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	rate, slack := h.MinRate, h.Slack
	if rate <= 0 {
		rate = 16
	}
	if slack <= 0 {
		slack = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, slack+time.Duration(int64(len(p))/rate)*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.URL, nil)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrHTTP, err)
	}
	end := off + int64(len(p)) - 1
	req.Header.Set("Range", "bytes="+strconv.FormatInt(off, 10)+"-"+strconv.FormatInt(end, 10))
	c := h.Client
	if c == nil {
		c = redirectClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusPartialContent:
	case http.StatusOK:
		return 0, fmt.Errorf("%w: asked for bytes %d-%d, got status 200", ErrRangeIgnored, off, end)
	default:
		return 0, &HTTPError{Code: resp.StatusCode, Status: resp.Status}
	}
	start, last, err := contentRange(resp.Header.Get("Content-Range"))
	if err != nil || start != off || last > end || last < start {
		return 0, fmt.Errorf("%w: Content-Range %q for bytes %d-%d", ErrRangeIgnored, resp.Header.Get("Content-Range"), off, end)
	}
	want := int(last - start + 1)
	n, err := io.ReadFull(resp.Body, p[:want])
	if err != nil {
		return n, err
	}
	var extra [1]byte
	if k, _ := resp.Body.Read(extra[:]); k > 0 {
		return n, fmt.Errorf("%w: bytes %d-%d", ErrTooLong, off, end)
	}
	if n < len(p) {
		return n, io.ErrUnexpectedEOF
	}
	return n, nil
}

// contentRange parses "bytes a-b/total" (total may be "*").
func contentRange(s string) (start, last int64, err error) {
	rest, ok := strings.CutPrefix(s, "bytes ")
	if !ok {
		return 0, 0, errors.New("not a byte range")
	}
	rng, _, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, 0, errors.New("no total")
	}
	a, b, ok := strings.Cut(rng, "-")
	if !ok {
		return 0, 0, errors.New("no range")
	}
	if start, err = strconv.ParseInt(a, 10, 64); err != nil || start < 0 {
		return 0, 0, errors.New("bad start")
	}
	if last, err = strconv.ParseInt(b, 10, 64); err != nil || last < 0 {
		return 0, 0, errors.New("bad end")
	}
	return start, last, nil
}
