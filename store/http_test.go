package store

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// rawServer answers every connection with resp, whatever was asked: the
// responses a hostile or broken server sends, byte for byte.
func rawServer(t *testing.T, resp string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for { // the request head
					line, err := r.ReadString('\n')
					if err != nil || line == "\r\n" {
						break
					}
				}
				io.WriteString(c, resp)
			}()
		}
	}()
	return "http://" + l.Addr().String() + "/p.pkg"
}

func TestHTTPResponses(t *testing.T) {
	long := strings.Repeat("x", maxHeadLine)
	many := strings.Repeat("X-A: b\r\n", maxHeaderLines+1)
	tests := []struct {
		name string
		resp string
		want error // nil: success with "hello"
		code int   // HTTPError code, when want is ErrHTTP
	}{
		{"content-length", "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-4/10\r\nContent-Length: 5\r\n\r\nhello", nil, 0},
		{"chunked", "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-4/10\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhe\r\n3;x=y\r\nllo\r\n0\r\n\r\n", nil, 0},
		{"to close, 100 continue first", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 206 OK\r\ncontent-range: bytes 0-4/*\r\n\r\nhello", nil, 0},
		{"chunked, more than asked", "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-4/10\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nhello!\r\n0\r\n\r\n", ErrTooLong, 0},
		{"to close, more than asked", "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-4/10\r\n\r\nhello!", ErrTooLong, 0},
		{"content-length over the range", "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-4/10\r\nContent-Length: 6\r\n\r\nhello!", ErrTooLong, 0},
		{"range ignored", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhelloworld", ErrRangeIgnored, 0},
		{"other range", "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 1-5/10\r\nContent-Length: 5\r\n\r\nello!", ErrRangeIgnored, 0},
		{"not found", "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", ErrHTTP, 404},
		{"redirect without location", "HTTP/1.1 302 Found\r\n\r\n", ErrHTTP, 302},
		{"redirect to ftp", "HTTP/1.1 302 Found\r\nLocation: ftp://x/p\r\n\r\n", ErrRedirect, 0},
		{"redirect loop", "HTTP/1.1 302 Found\r\nLocation: /again\r\n\r\n", ErrRedirect, 0},
		{"line too long", "HTTP/1.1 206 Partial Content\r\nX-Long: " + long + "\r\n\r\n", ErrHTTP, 0},
		{"too many headers", "HTTP/1.1 206 Partial Content\r\n" + many + "\r\n", ErrHTTP, 0},
		{"not http", "SSH-2.0-OpenSSH\r\n\r\n", ErrHTTP, 0},
		{"bad chunk size", "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-4/10\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n", ErrHTTP, 0},
		{"gzip", "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-4/10\r\nTransfer-Encoding: gzip\r\n\r\nhello", ErrHTTP, 0},
		{"cut short", "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-4/10\r\nContent-Length: 5\r\n\r\nhel", io.ErrUnexpectedEOF, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &HTTP{URL: rawServer(t, tt.resp)}
			p := make([]byte, 5)
			n, err := h.Fetch(context.Background(), p, 0)
			if tt.want == nil {
				if err != nil || string(p[:n]) != "hello" {
					t.Fatalf("Fetch = %d %q, %v; want 5 \"hello\"", n, p[:n], err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Fetch: %v, want %v", err, tt.want)
			}
			var he *HTTPError
			if tt.code != 0 && (!errors.As(err, &he) || he.Code != tt.code) {
				t.Fatalf("Fetch: %v, want an HTTPError %d", err, tt.code)
			}
		})
	}
}

// FuzzResponseHead feeds hostile response heads to the parser: nothing
// may panic, and what it accepts keeps its bounds.
func FuzzResponseHead(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "http", "*"))
	if len(seeds) == 0 {
		f.Fatal("no seeds in testdata/http")
	}
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bufio.NewReaderSize(bytes.NewReader(b), maxHeadLine)
		h, err := readHead(r)
		if err != nil {
			return
		}
		if h.code < 200 || h.code > 599 || len(h.header) > maxHeaderLines {
			t.Fatalf("accepted %+v", h)
		}
		if cr, ok := h.header["content-range"]; ok {
			contentRange(cr)
		}
		if h.header["transfer-encoding"] == "chunked" {
			io.Copy(io.Discard, io.LimitReader(&chunked{r: r}, 1<<20))
		}
	})
}

// TestHTTPSRange: a range over TLS, the server checked against the pool
// given, and refused without it.
func TestHTTPSRange(t *testing.T) {
	data := []byte("0123456789abcdef")
	ts := httptest.NewTLSServer(&server{t: t, data: data, corrupt: map[int64]int{}})
	defer ts.Close()
	pool := x509.NewCertPool()
	pool.AddCert(ts.Certificate())
	p := make([]byte, 6)
	h := &HTTP{URL: ts.URL + "/p.pkg", TLS: &tls.Config{RootCAs: pool}}
	if n, err := h.Fetch(context.Background(), p, 4); err != nil || string(p[:n]) != "456789" {
		t.Fatalf("Fetch = %d %q, %v; want \"456789\"", n, p[:n], err)
	}
	if _, err := (&HTTP{URL: ts.URL + "/p.pkg"}).Fetch(context.Background(), p, 4); err == nil {
		t.Fatal("Fetch trusted a server the system roots do not know")
	}
}
