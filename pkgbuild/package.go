package pkgbuild

import (
	"archive/tar"
	"bytes"
	"crypto"
	"fmt"
	"io"
	"os"

	"meterupd/internal/atomicfile"
	"meterupd/manifest"
)

// Head returns the manifest entry of the package: the COSE_Sign1 signed
// by signer, or the bare CBOR manifest when signer is nil (an unsigned
// package, to be signed later with Sign).
func Head(m *manifest.Manifest, signer crypto.Signer) (head []byte, unsigned bool, err error) {
	payload, err := manifest.Encode(m)
	if err != nil {
		return nil, false, err
	}
	if signer == nil {
		return payload, true, nil
	}
	env, err := manifest.Sign(payload, signer)
	return env, false, err
}

// Write writes the package: the manifest entry (signed by signer, or
// unsigned when signer is nil), then every payload. It returns the size
// of the manifest entry.
func (b *Built) Write(w io.Writer, signer crypto.Signer) (int, error) {
	head, unsigned, err := Head(b.Manifest, signer)
	if err != nil {
		return 0, err
	}
	pw, err := manifest.NewWriter(w, head, unsigned)
	if err != nil {
		return 0, err
	}
	for _, it := range b.items {
		r, err := it.open()
		if err != nil {
			return 0, err
		}
		err = pw.WritePayload(r)
		r.Close()
		if err != nil {
			return 0, err
		}
	}
	return len(head), pw.Close()
}

// WriteFile writes the package to path durably (see Write).
func (b *Built) WriteFile(path string, signer crypto.Signer) (int, error) {
	var n int
	err := atomicfile.Write(path, 0o644, func(w io.Writer) error {
		var err error
		n, err = b.Write(w, signer)
		return err
	})
	return n, err
}

// LoadSigner reads a PKCS#8 private key PEM file (Ed25519 or P-256).
func LoadSigner(path string) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	priv, err := manifest.ParsePrivateKeyPEM(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return priv, nil
}

// LoadKeyring reads public key PEM files (a private key file stands for
// its public half) into a keyring.
func LoadKeyring(paths []string) (*manifest.Keyring, error) {
	var all []byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		if bytes.Contains(b, []byte("PRIVATE KEY")) {
			pub, err := manifest.ParsePublicKeyPEM(b)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
			if b, err = manifest.MarshalPublicKeyPEM(pub); err != nil {
				return nil, err
			}
		}
		all = append(all, b...)
	}
	return manifest.ParseKeyringPEM(all)
}

// Package is a package read on the host without verifying it: the
// manifest entry, then the payload entries through CopyPayloads. Host
// tools (inspect, sign, repack) only; a node verifies with
// manifest.OpenPackage.
type Package struct {
	r        io.Reader
	closer   io.Closer
	tr       *tar.Reader
	Signed   bool
	Envelope []byte // the manifest entry as stored
	Payload  []byte // the CBOR manifest
	KeyID    []byte // the signer's key id (not verified), when Signed
	Manifest *manifest.Manifest
}

// Open reads the manifest entry of the package file at path.
func Open(path string) (*Package, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	p, err := Read(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	p.closer = f
	return p, nil
}

// Read reads the manifest entry of the package in r; the payloads stay in
// r for CopyPayloads.
func Read(r io.Reader) (*Package, error) {
	p := &Package{r: r, tr: tar.NewReader(r)}
	hdr, err := p.tr.Next()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", manifest.ErrContainer, err)
	}
	if hdr.Size > manifest.MaxManifestSize {
		return nil, manifest.ErrTooLarge
	}
	p.Envelope = make([]byte, hdr.Size)
	if _, err := io.ReadFull(p.tr, p.Envelope); err != nil {
		return nil, fmt.Errorf("%w: %v", manifest.ErrTruncated, err)
	}
	switch hdr.Name {
	case manifest.ManifestName:
		p.Signed = true
		if p.Payload, p.KeyID, err = manifest.PayloadUnverified(p.Envelope); err != nil {
			return nil, err
		}
	case manifest.UnsignedManifestName:
		p.Payload = p.Envelope
	default:
		return nil, fmt.Errorf("%w: first entry %q", manifest.ErrContainer, hdr.Name)
	}
	if p.Manifest, err = manifest.Decode(p.Payload); err != nil {
		return nil, err
	}
	return p, nil
}

// Close closes the file Open opened.
func (p *Package) Close() error {
	if p.closer == nil {
		return nil
	}
	return p.closer.Close()
}

// CopyPayloads writes into pw the payloads whose names are in keep (all
// when keep is nil), in container order; pw checks their digests. It
// consumes the package: call it once.
func (p *Package) CopyPayloads(pw *manifest.Writer, keep map[string]bool) error {
	lists := map[string]bool{} // block lists: the writer makes them anew
	for _, it := range p.Manifest.Items {
		if it.BlockSize != 0 {
			lists[manifest.BlockListName(it.Payload)] = true
		}
	}
	for {
		hdr, err := p.tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %v", manifest.ErrContainer, err)
		}
		if lists[hdr.Name] || keep != nil && !keep[hdr.Name] {
			continue
		}
		if err := pw.WritePayload(p.tr); err != nil {
			return err
		}
	}
}

// Tailor writes to w the package p with only the payloads named in keep,
// under p's own signed manifest: what a head-end sends one node (the
// payloads of its install path) without the release key, which stays
// offline. A node reads it with manifest.Options.Tailored and refuses it if
// a payload it needs is absent. p is consumed.
func (p *Package) Tailor(w io.Writer, keep map[string]bool) error {
	if !p.Signed {
		return manifest.ErrUnsigned
	}
	pw, err := manifest.NewWriter(w, p.Envelope, false)
	if err != nil {
		return err
	}
	lists := map[string]bool{}
	for _, it := range p.Manifest.Items {
		if it.BlockSize != 0 {
			lists[manifest.BlockListName(it.Payload)] = true
		}
	}
	next := 0 // the next item the writer expects
	for {
		hdr, err := p.tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: %v", manifest.ErrContainer, err)
		}
		if lists[hdr.Name] {
			continue
		}
		for next < len(p.Manifest.Items) && p.Manifest.Items[next].Payload != hdr.Name {
			if err := pw.Skip(); err != nil {
				return err
			}
			next++
		}
		if next == len(p.Manifest.Items) {
			return fmt.Errorf("%w: %q", manifest.ErrUnlisted, hdr.Name)
		}
		next++
		if !keep[hdr.Name] {
			if err := pw.Skip(); err != nil {
				return err
			}
			continue
		}
		if err := pw.WritePayload(p.tr); err != nil {
			return err
		}
	}
	for ; next < len(p.Manifest.Items); next++ {
		if err := pw.Skip(); err != nil {
			return err
		}
	}
	return pw.Close()
}

// Sign writes to w the package p signed (or re-signed) by signer, its
// payloads carried over byte for byte. It returns the new manifest entry.
func (p *Package) Sign(w io.Writer, signer crypto.Signer) ([]byte, error) {
	env, err := manifest.Sign(p.Payload, signer)
	if err != nil {
		return nil, err
	}
	return env, p.writeWith(w, env, nil)
}

func (p *Package) writeWith(w io.Writer, env []byte, keep map[string]bool) error {
	pw, err := manifest.NewWriter(w, env, false)
	if err != nil {
		return err
	}
	if err := p.CopyPayloads(pw, keep); err != nil {
		return err
	}
	return pw.Close()
}

// SignFile signs the package file in into out (durably; nothing is left
// at out on error) and returns the new manifest entry.
func SignFile(in, out string, signer crypto.Signer) ([]byte, error) {
	p, err := Open(in)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	var env []byte
	err = atomicfile.Write(out, 0o644, func(w io.Writer) error {
		var err error
		env, err = p.Sign(w, signer)
		return err
	})
	return env, err
}

// VerifyFile checks the package file at path against ring: signature,
// then every payload's digest, as a node would (no sequence floor).
func VerifyFile(path string, ring *manifest.Keyring, opts manifest.Options) (*manifest.Package, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	p, err := manifest.OpenPackage(f, ring, opts)
	if err != nil {
		return nil, 0, err
	}
	n := 0
	for {
		_, r, err := p.Next()
		if err == io.EOF {
			return p, n, nil
		}
		if err != nil {
			return nil, n, err
		}
		if _, err := io.Copy(io.Discard, r); err != nil {
			return nil, n, err
		}
		n++
	}
}

// Keygen makes a new key pair (alg "ed25519" or "p256") and writes
// PREFIX.key.pem (PKCS#8, mode 0600) and PREFIX.pub.pem (PKIX). It
// returns the key id.
func Keygen(prefix, alg string) ([]byte, error) {
	priv, err := manifest.GenerateKey(alg)
	if err != nil {
		return nil, err
	}
	privPEM, err := manifest.MarshalPrivateKeyPEM(priv)
	if err != nil {
		return nil, err
	}
	pubPEM, err := manifest.MarshalPublicKeyPEM(priv.Public())
	if err != nil {
		return nil, err
	}
	kid, err := manifest.KeyID(priv.Public())
	if err != nil {
		return nil, err
	}
	if err := atomicfile.Write(prefix+".key.pem", 0o600, func(w io.Writer) error { _, err := w.Write(privPEM); return err }); err != nil {
		return nil, err
	}
	if err := atomicfile.Write(prefix+".pub.pem", 0o644, func(w io.Writer) error { _, err := w.Write(pubPEM); return err }); err != nil {
		return nil, err
	}
	return kid, nil
}
