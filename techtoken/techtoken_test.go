package techtoken

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/veraison/go-cose"

	"meterupd/manifest"
)

var now = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func key(t testing.TB, alg string) crypto.Signer {
	t.Helper()
	k, err := manifest.GenerateKey(alg)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// testKey loads a fixed key from the repository's testdata (deterministic
// Ed25519 signatures: byte-stable golden files).
func testKey(t testing.TB, name string) crypto.Signer {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "keys", name+".key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	k, err := manifest.ParsePrivateKeyPEM(b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func ring(t testing.TB, keys ...crypto.Signer) *manifest.Keyring {
	t.Helper()
	r := &manifest.Keyring{}
	for _, k := range keys {
		if _, err := r.Add(k.Public()); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

type world struct {
	utility, tech, other crypto.Signer
	v                    *Verifier
	ch                   *Challenges
	clock                time.Time
}

func newWorld(t *testing.T) *world {
	w := &world{utility: key(t, "ed25519"), tech: key(t, "ed25519"), other: key(t, "ed25519"), clock: now}
	v, err := NewVerifier(ring(t, w.utility), ring(t, w.other), "n1")
	if err != nil {
		t.Fatal(err)
	}
	v.Groups = []string{"feeder-7"}
	v.Now = func() time.Time { return w.clock }
	w.v = v
	w.ch = &Challenges{Now: func() time.Time { return w.clock }}
	return w
}

func (w *world) request() Request {
	return Request{
		Issuer: "utility", Subject: "alice", Nodes: []string{"n1", "n2"}, Scopes: []string{ScopeInstall, ScopeActivate},
		TechKey: w.tech.Public(), NotBefore: now.Add(-time.Hour), Valid: 8 * time.Hour, Now: now.Add(-time.Hour),
	}
}

func (w *world) issue(t *testing.T, req Request, signer crypto.Signer) []byte {
	t.Helper()
	tok, err := Issue(req, signer)
	if err != nil {
		t.Fatalf("Issue = %v", err)
	}
	return tok
}

// login runs the exchange: challenge, answer by tech for node, parse, Login.
func (w *world) login(t *testing.T, tok []byte, tech crypto.Signer, node string, need ...string) (*Claims, error) {
	t.Helper()
	nonce, err := w.ch.New()
	if err != nil {
		t.Fatal(err)
	}
	line, err := signAnswer(tok, tech, nonce, node)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ParseLogin(line)
	if err != nil {
		t.Fatalf("ParseLogin(%q) = %v", line, err)
	}
	return w.v.Login(l, w.ch, need...)
}

// signAnswer is Answer without its own check that the key is the token's,
// so that tests can sign with the wrong key.
func signAnswer(tok []byte, tech crypto.Signer, nonce []byte, node string) (string, error) {
	alg, err := answerAlg(tech.Public())
	if err != nil {
		return "", err
	}
	s, err := cose.NewSigner(alg, tech)
	if err != nil {
		return "", err
	}
	content, err := answerContent(nonce, node, tok)
	if err != nil {
		return "", err
	}
	sig, err := s.Sign(rand.Reader, content)
	if err != nil {
		return "", err
	}
	return FormatLogin(Login{Nonce: nonce, Token: tok, Signature: sig}), nil
}

func TestLoginAccepted(t *testing.T) {
	w := newWorld(t)
	for _, tc := range []struct {
		name string
		req  func(*Request)
		node string
	}{
		{"listed node", func(*Request) {}, "n1"},
		{"group", func(r *Request) { r.Nodes, r.Groups = nil, []string{"feeder-7"} }, "n1"},
		{"P-256 technician key", func(r *Request) { w.tech = key(t, "p256"); r.TechKey = w.tech.Public() }, "n1"},
		{"inside the skew after exp", func(r *Request) { r.NotBefore = now.Add(-8*time.Hour - 4*time.Minute) }, "n1"},
		{"inside the skew before nbf", func(r *Request) { r.NotBefore = now.Add(4 * time.Minute) }, "n1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := w.request()
			tc.req(&req)
			tok := w.issue(t, req, w.utility)
			c, err := w.login(t, tok, w.tech, tc.node, ScopeInstall)
			if err != nil {
				t.Fatalf("Login = %v, want nil", err)
			}
			if c.Subject != "alice" || !c.Allows(ScopeActivate) || c.Allows(ScopeRollback) {
				t.Errorf("claims %+v", c)
			}
		})
	}
	// The technician's tool refuses to answer with a key the token does not name.
	tok := w.issue(t, w.request(), w.utility)
	if _, err := Answer(tok, w.other, make([]byte, NonceSize), "n1"); !errors.Is(err, ErrAnswer) {
		t.Errorf("Answer(with another key) = %v, want ErrAnswer", err)
	}
	nonce, _ := w.ch.New()
	line, err := Answer(tok, w.tech, nonce, "n1")
	if err != nil {
		t.Fatal(err)
	}
	l, _ := ParseLogin(line)
	if _, err := w.v.Login(l, w.ch); err != nil {
		t.Errorf("Login(Answer's line) = %v", err)
	}
}

func TestLoginRefusals(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, w *world) error
		want error
	}{
		{"wrong signer", func(t *testing.T, w *world) error {
			_, err := w.login(t, w.issue(t, w.request(), w.other), w.tech, "n1")
			return err
		}, ErrSigner},
		{"expired", func(t *testing.T, w *world) error {
			w.clock = now.Add(7*time.Hour + DefaultSkew + time.Second)
			_, err := w.login(t, w.issue(t, w.request(), w.utility), w.tech, "n1")
			return err
		}, ErrExpired},
		{"not yet valid", func(t *testing.T, w *world) error {
			r := w.request()
			r.NotBefore = now.Add(DefaultSkew + time.Minute)
			_, err := w.login(t, w.issue(t, r, w.utility), w.tech, "n1")
			return err
		}, ErrNotYetValid},
		{"clock not valid", func(t *testing.T, w *world) error {
			w.v.ClockValid = func() bool { return false }
			_, err := w.login(t, w.issue(t, w.request(), w.utility), w.tech, "n1")
			return err
		}, ErrClockInvalid},
		{"clock reset to its epoch", func(t *testing.T, w *world) error {
			tok := w.issue(t, w.request(), w.utility)
			w.clock = time.Unix(0, 0)
			_, err := w.login(t, tok, w.tech, "n1")
			return err
		}, ErrClockInvalid},
		{"wrong audience", func(t *testing.T, w *world) error {
			r := w.request()
			r.Nodes, r.Groups = []string{"n9"}, []string{"feeder-8"}
			_, err := w.login(t, w.issue(t, r, w.utility), w.tech, "n1")
			return err
		}, ErrAudience},
		{"node id as a group name", func(t *testing.T, w *world) error {
			r := w.request()
			r.Nodes, r.Groups = nil, []string{"n1"}
			_, err := w.login(t, w.issue(t, r, w.utility), w.tech, "n1")
			return err
		}, ErrAudience},
		{"missing scope", func(t *testing.T, w *world) error {
			_, err := w.login(t, w.issue(t, w.request(), w.utility), w.tech, "n1", ScopeRollback)
			return err
		}, ErrScope},
		{"revoked", func(t *testing.T, w *world) error {
			tok := w.issue(t, w.request(), w.utility)
			c, _ := ClaimsUnverified(tok)
			w.v.Revoked = &Revocations{}
			if err := w.v.Revoked.Replace([][]byte{c.ID}); err != nil {
				t.Fatal(err)
			}
			_, err := w.login(t, tok, w.tech, "n1")
			return err
		}, ErrRevoked},
		{"replayed challenge answer", func(t *testing.T, w *world) error {
			tok := w.issue(t, w.request(), w.utility)
			nonce, _ := w.ch.New()
			line, _ := Answer(tok, w.tech, nonce, "n1")
			l, _ := ParseLogin(line)
			if _, err := w.v.Login(l, w.ch); err != nil {
				t.Fatalf("first Login = %v", err)
			}
			_, err := w.v.Login(l, w.ch)
			return err
		}, ErrNonce},
		{"challenge never issued", func(t *testing.T, w *world) error {
			tok := w.issue(t, w.request(), w.utility)
			line, _ := Answer(tok, w.tech, bytes.Repeat([]byte{7}, NonceSize), "n1")
			l, _ := ParseLogin(line)
			_, err := w.v.Login(l, w.ch)
			return err
		}, ErrNonce},
		{"challenge expired", func(t *testing.T, w *world) error {
			tok := w.issue(t, w.request(), w.utility)
			nonce, _ := w.ch.New()
			line, _ := Answer(tok, w.tech, nonce, "n1")
			l, _ := ParseLogin(line)
			w.clock = w.clock.Add(ChallengeTTL)
			_, err := w.v.Login(l, w.ch)
			return err
		}, ErrNonceExpired},
		{"a failed login burns the challenge", func(t *testing.T, w *world) error {
			tok := w.issue(t, w.request(), w.utility)
			nonce, _ := w.ch.New()
			bad, _ := signAnswer(tok, w.other, nonce, "n1")
			l, _ := ParseLogin(bad)
			if _, err := w.v.Login(l, w.ch); !errors.Is(err, ErrAnswer) {
				t.Fatalf("Login(bad answer) = %v", err)
			}
			good, _ := Answer(tok, w.tech, nonce, "n1")
			l, _ = ParseLogin(good)
			_, err := w.v.Login(l, w.ch)
			return err
		}, ErrNonce},
		{"answer signed by another key", func(t *testing.T, w *world) error {
			_, err := w.login(t, w.issue(t, w.request(), w.utility), w.other, "n1")
			return err
		}, ErrAnswer},
		{"answer made for another node", func(t *testing.T, w *world) error {
			_, err := w.login(t, w.issue(t, w.request(), w.utility), w.tech, "n2")
			return err
		}, ErrAnswer},
		{"answer for another token", func(t *testing.T, w *world) error {
			tok1 := w.issue(t, w.request(), w.utility)
			tok2 := w.issue(t, w.request(), w.utility)
			nonce, _ := w.ch.New()
			line, _ := Answer(tok1, w.tech, nonce, "n1")
			l, _ := ParseLogin(line)
			l.Token = tok2
			_, err := w.v.Login(l, w.ch)
			return err
		}, ErrAnswer},
		{"tampered token", func(t *testing.T, w *world) error {
			tok := w.issue(t, w.request(), w.utility)
			i := bytes.Index(tok, []byte("alice"))
			tok[i] = 'm' // "mlice"
			_, err := w.login(t, tok, w.tech, "n1")
			return err
		}, ErrSignature},
		{"oversize token", func(t *testing.T, w *world) error {
			_, err := w.v.Token(make([]byte, MaxTokenSize+1))
			return err
		}, ErrTooLarge},
		{"deep CBOR in signed claims", func(t *testing.T, w *world) error {
			deep := append(bytes.Repeat([]byte{0x81}, 50), 0x01)
			return signedClaims(t, w, append([]byte{0xa1, 0x02}, deep...))
		}, ErrMalformed},
		{"huge array header in signed claims", func(t *testing.T, w *world) error {
			return signedClaims(t, w, []byte{0xa1, 0x03, 0x9b, 0, 0, 1, 0, 0, 0, 0, 0})
		}, ErrMalformed},
		{"duplicate claim", func(t *testing.T, w *world) error {
			return signedClaims(t, w, []byte{0xa2, 0x02, 0x61, 'a', 0x02, 0x61, 'b'})
		}, ErrMalformed},
		{"unknown claim", func(t *testing.T, w *world) error {
			c := validClaims(t, w)
			b, _ := claimsEnc.Marshal(struct {
				*Claims
				X int `cbor:"10,keyasint"`
			}{c, 1})
			return signedClaims(t, w, b)
		}, ErrMalformed},
		{"validity window too long", func(t *testing.T, w *world) error {
			c := validClaims(t, w)
			c.Expires = c.NotBefore + int64(MaxValidity/time.Second) + 1
			b, _ := claimsEnc.Marshal(c)
			return signedClaims(t, w, b)
		}, ErrValidity},
		{"private key in cnf", func(t *testing.T, w *world) error {
			c := validClaims(t, w)
			k, _ := cose.NewKeyFromPrivate(w.tech)
			c.Confirm.Key, _ = k.MarshalCBOR()
			b, _ := claimsEnc.Marshal(c)
			return signedClaims(t, w, b)
		}, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			if err := tc.run(t, w); !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func validClaims(t *testing.T, w *world) *Claims {
	t.Helper()
	c, err := ClaimsUnverified(w.issue(t, w.request(), w.utility))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// signedClaims signs raw claims bytes with the trusted authority key and
// has the verifier check them.
func signedClaims(t *testing.T, w *world, claims []byte) error {
	t.Helper()
	tok, err := manifest.Sign(claims, w.utility)
	if err != nil {
		t.Fatal(err)
	}
	_, err = w.v.Token(tok)
	return err
}

func TestRoleOverlapRefused(t *testing.T) {
	k := key(t, "ed25519")
	if _, err := NewVerifier(ring(t, k), ring(t, k, key(t, "p256")), "n1"); !errors.Is(err, ErrRoleOverlap) {
		t.Errorf("NewVerifier(a package key as technician authority) = %v, want ErrRoleOverlap", err)
	}
}

func TestIssueRefusals(t *testing.T) {
	w := newWorld(t)
	for _, tc := range []struct {
		name string
		mod  func(*Request)
		want error
	}{
		{"unknown scope", func(r *Request) { r.Scopes = []string{"instal"} }, ErrMalformed},
		{"no scope", func(r *Request) { r.Scopes = nil }, ErrMalformed},
		{"no audience", func(r *Request) { r.Nodes = nil }, ErrMalformed},
		{"no subject", func(r *Request) { r.Subject = "" }, ErrMalformed},
		{"a year", func(r *Request) { r.Valid = 365 * 24 * time.Hour }, ErrValidity},
		{"too many nodes for one token", func(r *Request) {
			r.Nodes = strings.Fields(strings.Repeat("meter-0000000000-0000000000 ", MaxAudience))
		}, ErrTooLarge},
	} {
		req := w.request()
		tc.mod(&req)
		if _, err := Issue(req, w.utility); !errors.Is(err, tc.want) {
			t.Errorf("%s: Issue = %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestParseLogin(t *testing.T) {
	good := "login " + strings.Repeat("ab", NonceSize) + " " + b64.EncodeToString([]byte("tok")) + " " + b64.EncodeToString([]byte("sig"))
	for _, tc := range []struct {
		line string
		ok   bool
	}{
		{good, true},
		{good + "\r", true},
		{"  " + good + "  ", true},
		{"login", false},
		{"logout " + good[6:], false},
		{good + " extra", false},
		{"login " + strings.Repeat("ab", NonceSize-1) + good[6+2*NonceSize:], false},
		{"login " + strings.Repeat("zz", NonceSize) + good[6+2*NonceSize:], false},
		{strings.Replace(good, b64.EncodeToString([]byte("tok")), "t=k", 1), false},
		{"login " + strings.Repeat("ab", NonceSize) + " " + strings.Repeat("A", MaxTokenSize*2) + " AA", false},
	} {
		_, err := ParseLogin(tc.line)
		if (err == nil) != tc.ok {
			t.Errorf("ParseLogin(%.60q) = %v, want ok %v", tc.line, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrLine) {
			t.Errorf("ParseLogin(%.60q) = %v, want ErrLine", tc.line, err)
		}
	}
}

func TestChallengesBounded(t *testing.T) {
	c := &Challenges{}
	first, _ := c.New()
	for range MaxPending {
		c.New()
	}
	if err := c.Take(first); !errors.Is(err, ErrNonce) {
		t.Errorf("Take(pushed-out challenge) = %v, want ErrNonce", err)
	}
	if len(c.pending) != MaxPending {
		t.Errorf("%d challenges pending, want %d", len(c.pending), MaxPending)
	}
}
