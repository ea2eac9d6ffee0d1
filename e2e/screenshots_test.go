package e2e

import (
	"context"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/internal/testbed"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// screenshotFiles are the pictures `make screenshots` writes and the README
// shows; the test fails when one is missing or blank.
var screenshotFiles = []string{
	"tray-panel.png", "credentials.png", "statistics.png", "log.png",
	"settings.png", "import.png", "main-window.png",
}

// TestScreenshots runs `make screenshots`' program (e2e/cmd/screenshots)
// into a temporary folder: the whole system under Xvfb with a real
// xfce4-panel, every window captured. Each PNG must decode and show more
// than a flat background, so a window that failed to draw fails the test.
func TestScreenshots(t *testing.T) {
	testenv.RequireRoot(t)
	for _, c := range []string{"Xvfb", "xfce4-panel", "gnome-keyring-daemon", "import", "xwininfo", "openvpn", "go"} {
		testenv.RequireCommand(t, c)
	}
	root, err := testbed.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 12*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "run", "./e2e/cmd/screenshots", "-out", out)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("screenshots: %v\n%s", err, b)
	}
	for _, name := range screenshotFiles {
		checkPicture(t, filepath.Join(out, name))
	}
}

// checkPicture fails unless path is a PNG of at least 32×16 pixels with at
// least four distinct colours.
func checkPicture(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Errorf("%s: %v", filepath.Base(path), err)
		return
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Errorf("%s: %v", filepath.Base(path), err)
		return
	}
	b := img.Bounds()
	if b.Dx() < 32 || b.Dy() < 16 {
		t.Errorf("%s: %dx%d pixels, too small to show anything", filepath.Base(path), b.Dx(), b.Dy())
	}
	if n := colours(img, 4); n < 4 {
		t.Errorf("%s: %d distinct colours: blank", filepath.Base(path), n)
	}
}

// colours counts the distinct colours of img, stopping at limit.
func colours(img image.Image, limit int) int {
	seen := map[[4]uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, a := img.At(x, y).RGBA()
			seen[[4]uint32{r, g, bl, a}] = true
			if len(seen) >= limit {
				return len(seen)
			}
		}
	}
	return len(seen)
}
