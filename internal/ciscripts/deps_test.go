package ciscripts

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/ovpn3go/ovpn3go/internal/testbed"
)

// makeVar is the value of a variable of the repository's Makefile as make
// expands it.
func makeVar(t *testing.T, name string) []string {
	t.Helper()
	repo, err := testbed.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), "make", "-s", "--no-print-directory", "-C", repo,
		"--eval", "print-var: ; @echo $("+name+")", "print-var")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make print-var %s: %v\n%s", name, err, out)
	}
	return strings.Fields(string(out))
}

// TestDepsInstallsEveryList: make deps installs APT_PACKAGES, which takes
// in the tray's and the Debian packaging's lists. A list defined after
// APT_PACKAGES's := is empty there, and a fresh machine then lacks the
// tray's X headers (go vet fails in glfw) and lintian.
func TestDepsInstallsEveryList(t *testing.T) {
	apt := map[string]bool{}
	for _, p := range makeVar(t, "APT_PACKAGES") {
		apt[p] = true
	}
	for _, list := range []string{"TRAY_PACKAGES", "DEB_PACKAGES"} {
		pkgs := makeVar(t, list)
		if len(pkgs) == 0 {
			t.Errorf("%s is empty", list)
		}
		for _, p := range pkgs {
			if !apt[p] {
				t.Errorf("%s's %s is not in APT_PACKAGES: make deps would not install it", list, p)
			}
		}
	}
}
