package assets

import (
	"bytes"
	"encoding/xml"
	"flag"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the committed tray icons from StateIcon")

// TestTrayIconsMatchDrawing keeps the committed PNGs and the drawing code in
// step: each state has a PNG, it decodes, it is what StateIcon draws, and no
// two states look alike.
func TestTrayIconsMatchDrawing(t *testing.T) {
	seen := map[string]string{}
	for _, st := range States {
		want := StateIcon(st, TrayIconSize)
		if want == nil {
			t.Fatalf("StateIcon(%q) = nil", st)
		}
		if *update {
			var buf bytes.Buffer
			if err := png.Encode(&buf, want); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join("tray", st+".png"), buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		b, err := TrayIcon(st)
		if err != nil {
			t.Fatal(err)
		}
		got, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s.png: %v", st, err)
		}
		if got.Bounds() != want.Bounds() {
			t.Fatalf("%s.png is %v, want %v", st, got.Bounds(), want.Bounds())
		}
		for y := 0; y < TrayIconSize; y++ {
			for x := 0; x < TrayIconSize; x++ {
				r1, g1, b1, a1 := got.At(x, y).RGBA()
				r2, g2, b2, a2 := want.At(x, y).RGBA()
				if r1 != r2 || g1 != g2 || b1 != b2 || a1 != a2 {
					t.Fatalf("%s.png differs from StateIcon at (%d,%d); run go test ./assets -update", st, x, y)
				}
			}
		}
		if other, dup := seen[string(want.Pix)]; dup {
			t.Errorf("states %s and %s draw the same icon", other, st)
		}
		seen[string(want.Pix)] = st
		// visible: the glyph (white) and the disc both cover a fair share
		var white, disc int
		for i := 0; i < len(want.Pix); i += 4 {
			p := want.Pix[i : i+4]
			switch {
			case p[3] == 255 && p[0] == 255 && p[1] == 255 && p[2] == 255:
				white++
			case p[3] == 255:
				disc++
			}
		}
		if n := TrayIconSize * TrayIconSize; white < n/40 || disc < n/4 {
			t.Errorf("%s: %d glyph and %d disc pixels of %d: not a readable icon", st, white, disc, n)
		}
	}
	if StateIcon("bogus", 16) != nil {
		t.Error("StateIcon of an unknown state is not nil")
	}
}

func TestAppIcon(t *testing.T) {
	cfg, err := png.DecodeConfig(bytes.NewReader(AppIcon()))
	if err != nil || cfg.Width != 256 {
		t.Fatalf("app icon: %v %+v", err, cfg)
	}
	var _ image.Image = StateIcon("connected", 8)
}

// TestDesktopEntryOpensProfiles: the desktop file registers the tray for
// application/x-openvpn-profile and passes the file (ovpn3-tray FILE is
// --import FILE), and the MIME file defines that type for *.ovpn.
func TestDesktopEntryOpensProfiles(t *testing.T) {
	d, err := os.ReadFile("net.ovpn3go.tray.desktop")
	if err != nil {
		t.Fatal(err)
	}
	lines := map[string]string{}
	for _, l := range strings.Split(string(d), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			lines[k] = v
		}
	}
	if !strings.Contains(lines["MimeType"], "application/x-openvpn-profile;") {
		t.Errorf("MimeType=%q", lines["MimeType"])
	}
	if !strings.HasPrefix(lines["Exec"], "ovpn3-tray ") || !strings.Contains(lines["Exec"], "%f") {
		t.Errorf("Exec=%q: a MimeType entry needs a file field code", lines["Exec"])
	}
	var mi struct {
		Types []struct {
			Type  string `xml:"type,attr"`
			Globs []struct {
				Pattern string `xml:"pattern,attr"`
			} `xml:"glob"`
		} `xml:"mime-type"`
	}
	x, err := os.ReadFile("net.ovpn3go.tray-mime.xml")
	if err != nil {
		t.Fatal(err)
	}
	if err := xml.Unmarshal(x, &mi); err != nil {
		t.Fatal(err)
	}
	if len(mi.Types) != 1 || mi.Types[0].Type != "application/x-openvpn-profile" || len(mi.Types[0].Globs) == 0 || mi.Types[0].Globs[0].Pattern != "*.ovpn" {
		t.Errorf("MIME definition %+v", mi)
	}
}
