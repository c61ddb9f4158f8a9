package main

import (
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"meterupd/pkgbuild"
	"meterupd/techtoken"
)

// TestTokenIssueAnswerLogin: the utility issues, the technician answers a
// node's challenge, the node accepts the pasted line.
func TestTokenIssueAnswerLogin(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "alice.token")
	tech := filepath.Join(dir, "alice")
	mustRun(t, "keygen", "--alg", "p256", tech)
	out := mustRun(t, "token", "issue", "--key", edKey, "--tech-key", tech+".pub.pem", "--subject", "alice",
		"--nodes", "n1,n2", "--scope", "install,activate", "--valid", "8h", "-o", tok)
	if !strings.Contains(out, "node:n1 node:n2") || !strings.Contains(out, "install activate") {
		t.Errorf("issue output %q", out)
	}
	authority, err := pkgbuild.LoadKeyring([]string{edPub})
	if err != nil {
		t.Fatal(err)
	}
	v, err := techtoken.NewVerifier(authority, nil, "n2")
	if err != nil {
		t.Fatal(err)
	}
	ch := &techtoken.Challenges{}
	nonce, _ := ch.New()
	line := mustRun(t, "token", "answer", "--token", tok, "--key", tech+".key.pem", "--challenge", strings.ToUpper(hex.EncodeToString(nonce)), "--node", "n2")
	l, err := techtoken.ParseLogin(line)
	if err != nil {
		t.Fatalf("ParseLogin(%q) = %v", line, err)
	}
	c, err := v.Login(l, ch, techtoken.ScopeInstall)
	if err != nil || c.Subject != "alice" {
		t.Fatalf("Login = %+v, %v", c, err)
	}
	// Another technician's key cannot answer with alice's token.
	mustRun(t, "keygen", filepath.Join(dir, "bob"))
	if _, err := meterpkg(t, "token", "answer", "--token", tok, "--key", filepath.Join(dir, "bob.key.pem"), "--challenge", hex.EncodeToString(nonce), "--node", "n2"); !errors.Is(err, techtoken.ErrAnswer) {
		t.Errorf("answer with another key = %v, want ErrAnswer", err)
	}
}

func TestTokenIssueRefusals(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "t")
	for _, tc := range []struct {
		name  string
		args  []string
		usage bool
	}{
		{"no audience", []string{"--scope", "install"}, true},
		{"unknown scope", []string{"--nodes", "n1", "--scope", "reflash"}, false},
		{"too long", []string{"--group", "g", "--scope", "install", "--valid", "2000h"}, false},
	} {
		args := append([]string{"token", "issue", "--key", edKey, "--tech-key", p256Pub, "--subject", "a", "-o", tok}, tc.args...)
		_, err := meterpkg(t, args...)
		var ue usageError
		if err == nil || errors.As(err, &ue) != tc.usage {
			t.Errorf("%s: token issue = %v, want a usage error: %v", tc.name, err, tc.usage)
		}
	}
	if _, err := os.Stat(tok); !os.IsNotExist(err) {
		t.Errorf("a refused issue left a token file: %v", err)
	}
}
