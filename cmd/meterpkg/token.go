package main

// Technician tokens: issue (the utility) and answer (the technician's
// laptop). The formats are in package techtoken and docs/console.md.

import (
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"meterupd/internal/atomicfile"
	"meterupd/manifest"
	"meterupd/pkgbuild"
	"meterupd/techtoken"
)

func init() {
	register(&command{name: "token", usage: "issue|answer ...: technician tokens (meterpkg token help)", run: runToken})
}

const tokenUsage = `usage:
  meterpkg token issue --key UTILITY.key.pem --tech-key TECH.pub.pem --subject NAME
        (--nodes ID,... | --group G,...) --scope install,activate,rollback,commit
        [--valid 8h] [--not-before RFC3339] [--issuer NAME] -o TOKEN
  meterpkg token answer --token TOKEN --key TECH.key.pem --challenge HEX --node ID`

func runToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError{tokenUsage}
	}
	switch args[0] {
	case "issue":
		return runTokenIssue(args[1:], stdout)
	case "answer":
		return runTokenAnswer(args[1:], stdout)
	case "help", "-h", "--help":
		fmt.Fprintln(stderr, tokenUsage)
		return nil
	}
	return usageError{fmt.Sprintf("unknown token command %q\n%s", args[0], tokenUsage)}
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func runTokenIssue(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("token issue", flag.ContinueOnError)
	keyPath := fs.String("key", "", "technician authority key (PEM) the nodes trust for tokens")
	techPath := fs.String("tech-key", "", "the technician's public key (PEM)")
	subject := fs.String("subject", "", "the technician's name")
	nodes := fs.String("nodes", "", "node ids, comma-separated")
	groups := fs.String("group", "", "node groups, comma-separated")
	scope := fs.String("scope", "", "scopes, comma-separated: "+strings.Join(techtoken.KnownScopes, ","))
	valid := fs.Duration("valid", 8*time.Hour, "validity (at most "+techtoken.MaxValidity.String()+")")
	notBefore := fs.String("not-before", "", "start of validity, RFC 3339 (default: now)")
	issuer := fs.String("issuer", "utility", "issuer name in the token")
	out := fs.String("o", "", "output token file")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 || *keyPath == "" || *techPath == "" || *subject == "" || *scope == "" || *out == "" || (*nodes == "" && *groups == "") {
		return usageError{tokenUsage}
	}
	now := time.Now()
	nbf := now
	if *notBefore != "" {
		if nbf, err = time.Parse(time.RFC3339, *notBefore); err != nil {
			return usageError{fmt.Sprintf("--not-before: %v", err)}
		}
	}
	authority, err := pkgbuild.LoadSigner(*keyPath)
	if err != nil {
		return err
	}
	b, err := os.ReadFile(*techPath)
	if err != nil {
		return err
	}
	techPub, err := manifest.ParsePublicKeyPEM(b)
	if err != nil {
		return fmt.Errorf("%s: %w", *techPath, err)
	}
	tok, err := techtoken.Issue(techtoken.Request{
		Issuer: *issuer, Subject: *subject, Nodes: splitList(*nodes), Groups: splitList(*groups),
		Scopes: splitList(*scope), TechKey: techPub, NotBefore: nbf, Valid: *valid, Now: now,
	}, authority)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(*out, 0o644, func(w io.Writer) error { _, err := w.Write(tok); return err }); err != nil {
		return err
	}
	c, _ := techtoken.ClaimsUnverified(tok)
	from, to := c.Window()
	fmt.Fprintf(stdout, "%s: token %x for %s, %s, scope %s, valid %s to %s, %d bytes\n",
		*out, c.ID, c.Subject, strings.Join(c.Audience, " "), c.Scope, from.Format(time.RFC3339), to.Format(time.RFC3339), len(tok))
	return nil
}

func runTokenAnswer(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("token answer", flag.ContinueOnError)
	tokPath := fs.String("token", "", "token file")
	keyPath := fs.String("key", "", "the technician's private key (PEM)")
	challenge := fs.String("challenge", "", "the node's challenge (hex)")
	node := fs.String("node", "", "the node's id")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 || *tokPath == "" || *keyPath == "" || *challenge == "" || *node == "" {
		return usageError{tokenUsage}
	}
	nonce, err := hex.DecodeString(strings.TrimSpace(*challenge))
	if err != nil {
		return usageError{fmt.Sprintf("--challenge: %v", err)}
	}
	tok, err := os.ReadFile(*tokPath)
	if err != nil {
		return err
	}
	tech, err := pkgbuild.LoadSigner(*keyPath)
	if err != nil {
		return err
	}
	line, err := techtoken.Answer(tok, tech, nonce, *node)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, line)
	return nil
}
