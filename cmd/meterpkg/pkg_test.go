package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"meterupd/delta"
	"meterupd/manifest"
	"meterupd/pkgbuild"
)

const (
	specPath = "../../testdata/pkg/spec.json"
	edKey    = "../../testdata/keys/test-ed25519.key.pem"
	edPub    = "../../testdata/keys/test-ed25519.pub.pem"
	p256Key  = "../../testdata/keys/test-p256.key.pem"
	p256Pub  = "../../testdata/keys/test-p256.pub.pem"
	nextPub  = "../../testdata/keys/test-ed25519-next.pub.pem"
)

func meterpkg(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, &out, &errb)
	return out.String() + errb.String(), err
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := meterpkg(t, args...)
	if err != nil {
		t.Fatalf("meterpkg %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// payloads opens pkg with the public keys and returns the verified
// payloads by item id.
func payloads(t *testing.T, pkg string, pubs ...string) (*manifest.Manifest, map[string][]byte) {
	t.Helper()
	ring, err := pkgbuild.LoadKeyring(pubs)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(pkg)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p, err := manifest.OpenPackage(f, ring, manifest.Options{})
	if err != nil {
		t.Fatalf("OpenPackage(%s) = %v", pkg, err)
	}
	got := map[string][]byte{}
	for {
		it, r, err := p.Next()
		if err == io.EOF {
			return p.Manifest(), got
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		got[it.ID] = b
	}
}

func readImg(t *testing.T, v string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("../../testdata/pkg", "system-"+v+".img"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBuildSignedDeltaChainApplies(t *testing.T) {
	pkg := filepath.Join(t.TempDir(), "p.pkg")
	mustRun(t, "build", specPath, "-o", pkg, "--key", edKey)
	m, pl := payloads(t, pkg, edPub)
	if len(m.Items) != 3 {
		t.Fatalf("built %d items, want 3", len(m.Items))
	}
	for _, it := range m.Items {
		patched, err := delta.Patch(readImg(t, it.From), bytes.NewReader(pl[it.ID]))
		if err != nil {
			t.Fatalf("%s: delta.Patch = %v", it.ID, err)
		}
		if want := readImg(t, it.To); !bytes.Equal(patched, want) {
			t.Errorf("%s: patched image differs from %s", it.ID, it.To)
		}
		if !bytes.Equal(sha(patched), it.TargetDigest) || !bytes.Equal(sha(readImg(t, it.From)), it.SourceDigest) {
			t.Errorf("%s: source or target digest in the manifest is wrong", it.ID)
		}
	}
	env, _ := os.ReadFile(pkg)
	t.Logf("package %d bytes", len(env))
}

func sha(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

func TestBuildThenSignSeparately(t *testing.T) {
	dir := t.TempDir()
	unsigned := filepath.Join(dir, "u.pkg")
	signedPkg := filepath.Join(dir, "s.pkg")
	mustRun(t, "build", specPath, "-o", unsigned)
	if out, err := meterpkg(t, "verify", "--key", edPub, unsigned); !errors.Is(err, manifest.ErrUnsigned) {
		t.Errorf("verify(unsigned) = %v (%s), want ErrUnsigned", err, out)
	}
	mustRun(t, "sign", "--key", p256Key, unsigned, signedPkg)
	out := mustRun(t, "verify", "--key", p256Pub, signedPkg)
	if !strings.Contains(out, "3 payloads verified") {
		t.Errorf("verify output %q", out)
	}
	if _, err := meterpkg(t, "verify", "--key", edPub, signedPkg); !errors.Is(err, manifest.ErrUnknownKey) {
		t.Errorf("verify(other key) = %v, want ErrUnknownKey", err)
	}
	if _, err := meterpkg(t, "verify", "--key", p256Pub, "--floor", "3", signedPkg); !errors.Is(err, manifest.ErrReplay) {
		t.Errorf("verify(--floor 3) = %v, want ErrReplay", err)
	}
	// The payloads are carried over byte for byte.
	_, a := payloads(t, signedPkg, p256Pub)
	resigned := filepath.Join(dir, "r.pkg")
	mustRun(t, "sign", "--key", edKey, signedPkg, resigned)
	_, b := payloads(t, resigned, edPub)
	for id := range a {
		if !bytes.Equal(a[id], b[id]) {
			t.Errorf("re-signing changed payload %s", id)
		}
	}
}

func TestKeygenKeysSignAndVerify(t *testing.T) {
	dir := t.TempDir()
	for _, alg := range []string{"ed25519", "p256"} {
		prefix := filepath.Join(dir, alg)
		mustRun(t, "keygen", "--alg", alg, prefix)
		fi, err := os.Stat(prefix + ".key.pem")
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s private key mode %v, want 0600", alg, fi.Mode().Perm())
		}
		pkg := filepath.Join(dir, alg+".pkg")
		mustRun(t, "build", specPath, "-o", pkg, "--key", prefix+".key.pem")
		mustRun(t, "verify", "--key", prefix+".pub.pem", pkg)
	}
	if _, err := meterpkg(t, "keygen", "--alg", "rsa", filepath.Join(dir, "x")); err == nil {
		t.Errorf("keygen --alg rsa succeeded")
	}
}

func TestInspect(t *testing.T) {
	pkg := filepath.Join(t.TempDir(), "p.pkg")
	mustRun(t, "build", specPath, "-o", pkg, "--key", edKey)
	out := mustRun(t, "inspect", pkg)
	for _, want := range []string{"sequence 3", "sys-1-2", "sys-2-3", "sys-1-3", "delta/node", "em300,em310", "not verified"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out)
		}
	}
	var v inspectView
	if err := json.Unmarshal([]byte(mustRun(t, "inspect", "--json", pkg)), &v); err != nil {
		t.Fatalf("inspect --json: %v", err)
	}
	if !v.Signed || len(v.Manifest.Items) != 3 || v.Manifest.Items[0].Component != manifest.ComponentSystem || v.Size >= 1024 {
		t.Errorf("inspect --json = %+v", v)
	}
}

func TestRepack(t *testing.T) {
	dir := t.TempDir()
	pkg := filepath.Join(dir, "p.pkg")
	mustRun(t, "build", specPath, "-o", pkg, "--key", edKey)
	for _, tc := range []struct {
		from string
		want []string
	}{
		{"2.0", []string{"sys-2-3"}},
		{"1.0", []string{"sys-1-3"}}, // the skip delta is smaller than the chain
	} {
		out := filepath.Join(dir, "r"+tc.from+".pkg")
		mustRun(t, "repack", pkg, "--device-type", "em310", "--from-version", tc.from, "--key", p256Key, "--verify-key", edPub, "--sequence", "4", "-o", out)
		m, pl := payloads(t, out, p256Pub)
		var got []string
		for _, it := range m.Items {
			got = append(got, it.ID)
		}
		if strings.Join(got, " ") != strings.Join(tc.want, " ") || len(pl) != len(tc.want) || m.Sequence != 4 {
			t.Errorf("repack --from-version %s kept %v (seq %d), want %v (seq 4)", tc.from, got, m.Sequence, tc.want)
		}
	}
	if _, err := meterpkg(t, "repack", pkg, "--device-type", "wm100", "--from-version", "1.0", "--key", edKey, "-o", filepath.Join(dir, "x.pkg")); !errors.Is(err, manifest.ErrNotForDevice) {
		t.Errorf("repack for another device type = %v, want ErrNotForDevice", err)
	}
	if _, err := meterpkg(t, "repack", pkg, "--device-type", "em300", "--from-version", "0.9", "--key", edKey, "-o", filepath.Join(dir, "x.pkg")); !errors.Is(err, manifest.ErrGap) {
		t.Errorf("repack across a gap = %v, want ErrGap", err)
	}
	if _, err := meterpkg(t, "repack", pkg, "--device-type", "em300", "--from-version", "1.0", "--key", edKey, "--verify-key", p256Pub, "-o", filepath.Join(dir, "x.pkg")); !errors.Is(err, manifest.ErrUnknownKey) {
		t.Errorf("repack of a package the verify key did not sign = %v, want ErrUnknownKey", err)
	}
	// The package's deltas are in the newest node format: a group that
	// advertises every version keeps the skip delta; a version-1 group has
	// no route (no version-1 delta, no full image) and gets nothing.
	var all []string
	for _, v := range delta.NodeFormats {
		all = append(all, strconv.Itoa(v))
	}
	out := filepath.Join(dir, "new.pkg")
	mustRun(t, "repack", pkg, "--device-type", "em310", "--from-version", "1.0", "--delta-formats", strings.Join(all, ","), "--key", edKey, "-o", out)
	if m, _ := payloads(t, out, edPub); len(m.Items) != 1 || m.Items[0].ID != "sys-1-3" {
		t.Errorf("repack --delta-formats %s kept %+v, want sys-1-3", strings.Join(all, ","), m.Items)
	}
	if _, err := meterpkg(t, "repack", pkg, "--device-type", "em310", "--from-version", "1.0", "--delta-formats", "1", "--key", edKey, "-o", filepath.Join(dir, "x.pkg")); !errors.Is(err, manifest.ErrNotForDevice) {
		t.Errorf("repack of version-2 deltas for a version-1 group = %v, want ErrNotForDevice", err)
	}
	if _, err := meterpkg(t, "repack", pkg, "--device-type", "em310", "--from-version", "1.0", "--delta-formats", "one", "--key", edKey, "-o", filepath.Join(dir, "x.pkg")); err == nil || !strings.Contains(err.Error(), "delta-formats") {
		t.Errorf("repack --delta-formats one = %v, want a usage error", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "x.pkg")); !os.IsNotExist(err) {
		t.Errorf("a failed repack left an output file: %v", err)
	}
}

func TestBuildPrecomputedPayloadAndKeyUpdate(t *testing.T) {
	dir := t.TempDir()
	oldImg, newImg := readImg(t, "1.0"), readImg(t, "2.0")
	patch, err := delta.Diff(oldImg, newImg, delta.FormatBSDIFF40)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"old.img": oldImg, "new.img": newImg, "p.bsdiff": patch} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	nextAbs, _ := filepath.Abs(nextPub)
	edAbs, _ := filepath.Abs(edPub)
	spec := `{"sequence": 9, "add_keys": ["` + nextAbs + `"], "retire_keys": ["` + edAbs + `"],
	  "items": [{"id": "s12", "component": "system", "kind": "delta", "format": "bsdiff40", "from": "1.0", "to": "2.0",
	    "old": "old.img", "new": "new.img", "payload_file": "p.bsdiff", "payload": "s12.bsdiff"}]}`
	sp := filepath.Join(dir, "spec.json")
	if err := os.WriteFile(sp, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	pkg := filepath.Join(dir, "p.pkg")
	mustRun(t, "build", sp, "-o", pkg, "--key", edKey)
	m, pl := payloads(t, pkg, edPub)
	if !bytes.Equal(pl["s12"], patch) || m.Items[0].Payload != "s12.bsdiff" {
		t.Errorf("precomputed payload not carried as is")
	}
	ring, _ := pkgbuild.LoadKeyring([]string{edPub})
	ring2, err := ring.Apply(m.Keys)
	if err != nil {
		t.Fatalf("Apply(key updates from spec) = %v", err)
	}
	nextRing, _ := pkgbuild.LoadKeyring([]string{nextPub})
	want := nextRing.Keys()[0].ID
	if ring2.Len() != 1 || !bytes.Equal(ring2.Keys()[0].ID, want) {
		t.Errorf("after rotation the ring holds %v, want only %x", ring2.Keys(), want)
	}
	// A spec with an unknown field is refused.
	if err := os.WriteFile(sp, []byte(`{"sequence": 1, "itemz": []}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := meterpkg(t, "build", sp, "-o", pkg); err == nil {
		t.Errorf("build with an unknown spec field succeeded")
	}
}
