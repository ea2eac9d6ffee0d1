package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ovpn3go/ovpn3go/internal/testenv"
	"github.com/ovpn3go/ovpn3go/internal/version"
)

func TestUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"--token-fd", "3", "extra"}, {"--no-such-flag"}} {
		if rc := run(args, io.Discard); rc != 2 {
			t.Errorf("run(%q) = %d, want 2", args, rc)
		}
	}
}

// TestRefusesOtherRelease (issue 15): a backend started by a daemon of
// another release (its binary replaced under the daemon) exits before it
// reads its token or registers, saying why.
func TestRefusesOtherRelease(t *testing.T) {
	var stderr strings.Builder
	rc := run([]string{"--token-fd", "0", "--daemon-version", version.Version + "-other"}, &stderr)
	if rc != 3 || !strings.Contains(stderr.String(), "refusing to run") || !strings.Contains(stderr.String(), version.Version+"-other") {
		t.Errorf("run(other release) = %d, %q", rc, stderr.String())
	}
}

// A backend asked to (--cpuprofile-dir) writes a pprof profile into that
// directory.
func TestCPUProfile(t *testing.T) {
	dir := t.TempDir()
	stop, err := startCPUProfile(dir)
	if err != nil {
		t.Fatal(err)
	}
	stop()
	b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("backend-%d.pprof", os.Getpid())))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Errorf("profile of %d bytes is not gzipped pprof", len(b))
	}
}

// The backend is its own program so that every session's process maps
// only what a backend runs (docs/bench/memory.md): it links none of the
// daemon's services, whose package init would touch their code in every
// backend, nor net/http (with its MIME, IDNA and Unicode tables), which
// the HTTP proxy's CONNECT does not need.
func TestLinksOnlyWhatABackendRuns(t *testing.T) {
	testenv.RequireCommand(t, "go")
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	const mod = "github.com/ovpn3go/ovpn3go/"
	deps := strings.Fields(string(out))
	if len(deps) < 10 || !strings.Contains(string(out), mod+"helper/backend\n") {
		t.Fatalf("go list -deps printed no backend:\n%s", out)
	}
	for _, pkg := range []string{"helper/netcfg", "helper/netcfg/dns", "helper/netcfg/journal", "helper/netcfg/sharedroute",
		"helper/netcfg/sysrec", "helper/netcfg/tundev", "helper/sessionmgr", "helper/configmgr", "helper/logsvc", "helper/polkit",
		"net/http", "mime", "vendor/golang.org/x/net/idna"} {
		for _, d := range deps {
			if d == pkg || d == mod+pkg {
				t.Errorf("ovpn3-backend links %s", d)
			}
		}
	}
}

// What package initialisation allocates stays on every backend's heap
// (see testenv.CheckInitAllocations); this test binary links the
// backend's packages.
func TestInitAllocations(t *testing.T) {
	testenv.CheckInitAllocations(t, 256<<10)
}
