package packaging

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// makeVersion is the Makefile's VERSION, the one place the release is
// written (internal/version gets it at link time).
func makeVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^VERSION \?= (\S+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("Makefile: no VERSION ?= line")
	}
	return string(m[1])
}

// debianVersion maps a release to the Debian version the changelog must
// carry: a pre-release "-dev" becomes "~dev" so it sorts before the
// release (the package is native: no Debian revision).
func debianVersion(v string) string { return strings.Replace(v, "-", "~", 1) }

func TestVersionsAgree(t *testing.T) {
	v := makeVersion(t)
	cl, err := os.ReadFile("deb/debian/changelog")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`^ovpn3go \(([^)]+)\)`).FindSubmatch(cl)
	if m == nil {
		t.Fatal("debian/changelog: no first entry")
	}
	if got, want := string(m[1]), debianVersion(v); got != want {
		t.Errorf("debian/changelog version %s, Makefile VERSION %s wants %s", got, v, want)
	}
	release, _, _ := strings.Cut(v, "-")
	if got := fyneApp(t)["Version"]; got != `"`+release+`"` {
		t.Errorf("FyneApp.toml Version %s, want %q (Makefile VERSION %s)", got, release, v)
	}
}
