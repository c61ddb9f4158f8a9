package manifest

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestEncodeDecodeRoundTrip(t *testing.T) {
	m, _ := threeItems()
	got := roundTrip(t, m)
	if diff := cmp.Diff(m, got); diff != "" {
		t.Errorf("Decode(Encode(m)) differs (-want +got):\n%s", diff)
	}
}

func TestThreeItemManifestSize(t *testing.T) {
	m, _ := threeItems()
	for _, name := range []string{"test-ed25519", "test-p256"} {
		env := signed(t, m, loadKey(t, name))
		t.Logf("%s: three-item signed manifest is %d bytes", name, len(env))
		if len(env) >= 1024 {
			t.Errorf("%s: signed three-item manifest is %d bytes, want < 1024", name, len(env))
		}
	}
}

func TestCompareVersions(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"1.0", "1.0", 0}, {"1.9", "1.10", -1}, {"2", "2.0", -1}, {"3.0", "2.99", 1},
		{"1.0-rc1", "1.0", 1}, {"01.2", "1.2", 0}, {"1.0a", "1.0b", -1},
	} {
		if got := CompareVersions(tc.a, tc.b); got != tc.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestCheckPayloadName(t *testing.T) {
	long := make([]byte, MaxPayloadName+1)
	for i := range long {
		long[i] = 'a'
	}
	for _, name := range []string{"../etc/passwd", "/abs", "a/b", "..", ".", ".hidden", "", string(long), "a\x00b", "a b", "a\\b", ManifestName, UnsignedManifestName} {
		if err := CheckPayloadName(name); !errors.Is(err, ErrPayloadName) {
			t.Errorf("CheckPayloadName(%q) = %v, want ErrPayloadName", name, err)
		}
	}
	for _, name := range []string{"sys-1.0-2.0.bsdiff", "modem_fw+2.bin", string(long[:MaxPayloadName])} {
		if err := CheckPayloadName(name); err != nil {
			t.Errorf("CheckPayloadName(%q) = %v, want nil", name, err)
		}
	}
}
