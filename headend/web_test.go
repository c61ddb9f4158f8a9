package headend

import (
	"context"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"meterupd/internal/realtool"
	"meterupd/shadow"
)

// TestWebPage renders the read-only page in headless Chromium (Debian's)
// and checks the fleet table in its DOM and the row colours in a
// screenshot.
func TestWebPage(t *testing.T) {
	chromium := realtool.Need(t, "chromium", "chromium")
	ctx := context.Background()
	srv, err := Serve(ctx, Config{DB: filepath.Join(t.TempDir(), "h.db"), Packages: t.TempDir(),
		HTTPAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0", Log: testLog(t), Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	for i, st := range []struct {
		id, state, version string
		result             shadow.Result
	}{{"m-001", "committed", "2.0", shadow.ResultSuccess}, {"m-002", "rolled-back", "1.0", shadow.ResultRolledBack}, {"m-003", "idle", "1.0", 0}} {
		r, raw := report(1, st.state, st.version, st.result)
		r.DeviceType = "em300"
		if _, err := srv.Store.RecordReport(ctx, st.id, uint64(i+1), r, raw, t0); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(srv.Campaigns.Packages.Dir, "em300-2.0.pkg"), []byte("pkg"), 0o644)
	if _, err := srv.Campaigns.Create(ctx, Campaign{ID: "em300-2.0", Package: "em300-2.0.pkg", Waves: []float64{50, 100}}); err != nil {
		t.Fatal(err)
	}
	url := "http://" + srv.HTTPAddr.String() + "/"
	chrome := func(args ...string) []byte {
		t.Helper()
		dir := t.TempDir()
		base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=" + dir, "--virtual-time-budget=5000"}
		cmd := exec.Command(chromium, append(append(base, args...), url)...)
		cmd.Dir = dir
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("chromium %v: %v", args, err)
		}
		return out
	}
	dom := string(chrome("--dump-dom"))
	for _, want := range []string{`data-node="m-001"`, `data-node="m-002"`, `data-node="m-003"`, "<td>em300</td>", "<td>rolled-back</td>", "<td>100</td>",
		`data-campaign="em300-2.0"`, "<td>created</td>", "<td>1/2</td>", " 0/3"} {
		if !strings.Contains(dom, want) {
			t.Errorf("page DOM lacks %s", want)
		}
	}
	if t.Failed() {
		t.Fatalf("DOM:\n%s", dom)
	}

	shot := filepath.Join(t.TempDir(), "page.png")
	chrome("--screenshot="+shot, "--window-size=900,600", "--hide-scrollbars")
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	// The committed row's green (#dfd) and the rolled-back row's red
	// (#fdd) are on screen: the table rendered with its data.
	count := map[color.RGBA]int{}
	green, red := color.RGBA{0xdd, 0xff, 0xdd, 0xff}, color.RGBA{0xff, 0xdd, 0xdd, 0xff}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)
			if c == green || c == red {
				count[c]++
			}
		}
	}
	t.Logf("screenshot: %d green and %d red pixels", count[green], count[red])
	if count[green] < 500 || count[red] < 500 {
		t.Fatalf("screenshot has %d green and %d red pixels, want the two rows (500+ each)", count[green], count[red])
	}
}
