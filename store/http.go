package store

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
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
//
// The client is a small HTTP/1.1 one of its own (one GET per connection,
// Connection: close) rather than net/http, which with HTTP/2 cost the
// stripped armv7 meter binary 983,040 B of flash for features a Range GET
// never uses (docs/dependencies.md). Its reading of the response is bounded: a status
// or header line of at most 4 KiB, at most 64 header lines.
type HTTP struct {
	URL string
	// TLS configures https (nil: the system's roots, TLS 1.2 at least).
	// The server name is set from the URL's host when empty.
	TLS *tls.Config
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

func (e *HTTPError) Error() string        { return "store: http error: " + e.Status }
func (e *HTTPError) Is(target error) bool { return target == ErrHTTP }

// Temporary reports whether the request may succeed later.
func (e *HTTPError) Temporary() bool { return e.Code >= 500 || e.Code == 429 }

// Bounds of a response head.
const (
	maxHeadLine    = 4096
	maxHeaderLines = 64
	maxRedirects   = 5
)

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
	u, err := url.Parse(h.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return 0, fmt.Errorf("%w: URL %q: want http:// or https://", ErrHTTP, h.URL)
	}
	end := off + int64(len(p)) - 1
	for redirects := 0; ; redirects++ {
		n, next, err := h.get(ctx, u, p, off, end)
		if ctx.Err() != nil && err != nil {
			return n, fmt.Errorf("%w: %v", ctx.Err(), err)
		}
		if next == "" || err != nil {
			return n, err
		}
		if redirects == maxRedirects {
			return 0, fmt.Errorf("%w: more than %d redirects", ErrRedirect, maxRedirects)
		}
		nu, err := u.Parse(next)
		if err != nil {
			return 0, fmt.Errorf("%w: Location %q: %v", ErrHTTP, next, err)
		}
		if nu.Scheme != "http" && nu.Scheme != "https" {
			return 0, fmt.Errorf("%w: %q", ErrRedirect, nu.Scheme)
		}
		u = nu
	}
}

// get makes one request; a redirect returns its Location.
func (h *HTTP) get(ctx context.Context, u *url.URL, p []byte, off, end int64) (int, string, error) {
	conn, err := h.dial(ctx, u)
	if err != nil {
		return 0, "", err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host +
		"\r\nRange: bytes=" + strconv.FormatInt(off, 10) + "-" + strconv.FormatInt(end, 10) +
		"\r\nUser-Agent: meterupd\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		return 0, "", err
	}
	r := bufio.NewReaderSize(conn, maxHeadLine)
	resp, err := readHead(r)
	if err != nil {
		return 0, "", err
	}
	switch resp.code {
	case 206:
	case 200:
		return 0, "", fmt.Errorf("%w: asked for bytes %d-%d, got status 200", ErrRangeIgnored, off, end)
	case 301, 302, 303, 307, 308:
		if loc := resp.header["location"]; loc != "" {
			return 0, loc, nil
		}
		fallthrough
	default:
		return 0, "", &HTTPError{Code: resp.code, Status: resp.status}
	}
	cr := resp.header["content-range"]
	start, last, err := contentRange(cr)
	if err != nil || start != off || last > end || last < start {
		return 0, "", fmt.Errorf("%w: Content-Range %q for bytes %d-%d", ErrRangeIgnored, cr, off, end)
	}
	want := last - start + 1
	var body io.Reader = r
	switch te := strings.ToLower(resp.header["transfer-encoding"]); {
	case te == "chunked":
		body = &chunked{r: r}
	case te != "" && te != "identity":
		return 0, "", fmt.Errorf("%w: Transfer-Encoding %q", ErrHTTP, te)
	case resp.header["content-length"] != "":
		cl, err := strconv.ParseInt(resp.header["content-length"], 10, 64)
		if err != nil || cl < 0 {
			return 0, "", fmt.Errorf("%w: Content-Length %q", ErrHTTP, resp.header["content-length"])
		}
		if cl > want {
			return 0, "", fmt.Errorf("%w: Content-Length %d for bytes %d-%d", ErrTooLong, cl, off, end)
		}
		body = io.LimitReader(r, cl)
	}
	n, err := io.ReadFull(body, p[:want])
	if err != nil {
		return n, "", err
	}
	var extra [1]byte
	if k, _ := body.Read(extra[:]); k > 0 {
		return n, "", fmt.Errorf("%w: bytes %d-%d", ErrTooLong, off, end)
	}
	if n < len(p) {
		return n, "", io.ErrUnexpectedEOF
	}
	return n, "", nil
}

func (h *HTTP) dial(ctx context.Context, u *url.URL) (net.Conn, error) {
	host, port := u.Hostname(), u.Port()
	var d net.Dialer
	if u.Scheme == "http" {
		if port == "" {
			port = "80"
		}
		return d.DialContext(ctx, "tcp", net.JoinHostPort(host, port))
	}
	if port == "" {
		port = "443"
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if h.TLS != nil {
		tc = h.TLS.Clone()
	}
	if tc.ServerName == "" {
		tc.ServerName = host
	}
	return (&tls.Dialer{NetDialer: &d, Config: tc}).DialContext(ctx, "tcp", net.JoinHostPort(host, port))
}

// head is a response's status and the headers the fetch reads, by
// lower-case name (a repeated one keeps its first value).
type head struct {
	code   int
	status string // "206 Partial Content"
	header map[string]string
}

// readHead reads a status line and headers; interim 1xx responses are
// skipped. Everything is bounded: line length by r's buffer
// (maxHeadLine), the number of lines by maxHeaderLines.
func readHead(r *bufio.Reader) (head, error) {
	for interim := 0; ; interim++ {
		h, err := readOneHead(r)
		if err != nil || h.code >= 200 || interim == 3 {
			if err == nil && h.code < 200 {
				err = fmt.Errorf("%w: too many interim responses", ErrHTTP)
			}
			return h, err
		}
	}
}

func readOneHead(r *bufio.Reader) (head, error) {
	line, err := readLine(r)
	if err != nil {
		return head{}, err
	}
	rest, ok := strings.CutPrefix(line, "HTTP/1.")
	if !ok || len(rest) < 5 || (rest[0] != '0' && rest[0] != '1') || rest[1] != ' ' {
		return head{}, fmt.Errorf("%w: status line %q", ErrHTTP, clip(line))
	}
	status := rest[2:]
	code, err := strconv.Atoi(status[:3])
	if err != nil || code < 100 || code > 599 || (len(status) > 3 && status[3] != ' ') {
		return head{}, fmt.Errorf("%w: status line %q", ErrHTTP, clip(line))
	}
	h := head{code: code, status: status, header: map[string]string{}}
	for i := 0; ; i++ {
		line, err := readLine(r)
		if err != nil {
			return head{}, err
		}
		if line == "" {
			return h, nil
		}
		if i == maxHeaderLines {
			return head{}, fmt.Errorf("%w: more than %d header lines", ErrHTTP, maxHeaderLines)
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			return head{}, fmt.Errorf("%w: header line %q", ErrHTTP, clip(line))
		}
		name = strings.ToLower(name)
		if _, dup := h.header[name]; !dup {
			h.header[name] = strings.TrimSpace(value)
		}
	}
}

// readLine reads a CRLF (or LF) terminated line of at most maxHeadLine
// bytes.
func readLine(r *bufio.Reader) (string, error) {
	b, err := r.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		return "", fmt.Errorf("%w: a response line over %d bytes", ErrHTTP, maxHeadLine)
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r"), nil
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// chunked decodes a chunked body (RFC 9112 §7.1); trailers are not read,
// the connection closes after the body.
type chunked struct {
	r    *bufio.Reader
	left int64 // bytes left in the current chunk
	done bool
	err  error
}

func (c *chunked) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if c.left == 0 {
		if c.done {
			return 0, io.EOF
		}
		line, err := readLine(c.r)
		if err != nil {
			c.err = err
			return 0, err
		}
		size, _, _ := strings.Cut(line, ";")
		n, err := strconv.ParseInt(strings.TrimSpace(size), 16, 64)
		if err != nil || n < 0 {
			c.err = fmt.Errorf("%w: chunk size %q", ErrHTTP, clip(line))
			return 0, c.err
		}
		if n == 0 {
			c.done = true
			return 0, io.EOF
		}
		c.left = n
	}
	k, err := c.r.Read(p[:min(int64(len(p)), c.left)])
	c.left -= int64(k)
	if c.left == 0 && err == nil {
		// The chunk's CRLF.
		if _, err := readLine(c.r); err != nil {
			c.err = err
		}
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		c.err = err
	}
	return k, err
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
