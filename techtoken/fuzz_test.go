package techtoken

import (
	"bytes"
	"flag"
	goldenfile "meterupd/internal/golden"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

// golden builds the documented example: a token from the test utility key
// (testdata/keys/test-ed25519) for technician key test-ed25519-next, and
// the login line answering challenge 00 01 … 0f for node n1. Ed25519
// signatures are deterministic and the cti comes from a fixed reader, so
// the files are byte-stable.
func golden(t testing.TB) (claims, token []byte, line string) {
	utility, tech := testKey(t, "test-ed25519"), testKey(t, "test-ed25519-next")
	tok, err := Issue(Request{
		Issuer: "utility", Subject: "alice", Nodes: []string{"n1"}, Groups: []string{"feeder-7"},
		Scopes: KnownScopes, TechKey: tech.Public(),
		NotBefore: time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC), Valid: 8 * time.Hour,
		Now: time.Date(2026, 6, 1, 7, 55, 0, 0, time.UTC), Rand: bytes.NewReader(bytes.Repeat([]byte{0xc7}, CTISize)),
	}, utility)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ClaimsUnverified(tok)
	if err != nil {
		t.Fatal(err)
	}
	claims, _ = claimsEnc.Marshal(c)
	nonce := []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
	line, err = Answer(tok, tech, nonce, "n1")
	if err != nil {
		t.Fatal(err)
	}
	return claims, tok, line
}

func TestGoldenTestdata(t *testing.T) {
	claims, tok, line := golden(t)
	goldenfile.Check(t, "testdata", map[string][]byte{"claims.cbor": claims, "token.cose": tok, "login.txt": []byte(line + "\n")}, *update)
}

func seed(f *testing.F, name string) []byte {
	f.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// FuzzDecodeClaims: no panic; what decodes re-encodes to claims that
// decode to the same.
func FuzzDecodeClaims(f *testing.F) {
	f.Add(seed(f, "claims.cbor"))
	f.Add([]byte{0xa1, 0x03, 0x9b, 0, 0, 1, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeClaims(b)
		if err != nil {
			return
		}
		enc, err := claimsEnc.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		c2, err := DecodeClaims(enc)
		if err != nil {
			t.Fatalf("re-encoded claims do not decode: %v", err)
		}
		if d := cmp.Diff(c, c2); d != "" {
			t.Fatalf("round trip (-first +second):\n%s", d)
		}
	})
}

// FuzzToken: a verifier that trusts the golden token's signer never
// panics on any token bytes.
func FuzzToken(f *testing.F) {
	f.Add(seed(f, "token.cose"))
	v, err := NewVerifier(ring(f, testKey(f, "test-ed25519")), nil, "n1")
	if err != nil {
		f.Fatal(err)
	}
	v.Now = func() time.Time { return time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC) }
	if _, err := v.Token(seed(f, "token.cose")); err != nil {
		f.Fatalf("golden token refused: %v", err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v.Token(b)
	})
}

// FuzzParseLogin: no panic; a line that parses formats back to a line
// that parses to the same.
func FuzzParseLogin(f *testing.F) {
	f.Add(string(seed(f, "login.txt")))
	f.Add("login 00 AA AA")
	f.Fuzz(func(t *testing.T, line string) {
		l, err := ParseLogin(line)
		if err != nil {
			return
		}
		l2, err := ParseLogin(FormatLogin(l))
		if err != nil {
			t.Fatalf("formatted line does not parse: %v", err)
		}
		if d := cmp.Diff(l, l2); d != "" {
			t.Fatalf("round trip:\n%s", d)
		}
	})
}
