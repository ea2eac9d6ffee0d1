package main

import (
	"debug/buildinfo"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ovpn3go/ovpn3go/internal/testbed"
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
// directory when it is the profiling build (-tags cpuprofile); the
// production build refuses, naming that build. Under the default build
// this test also runs itself under the profiling one, so make test
// covers both.
func TestCPUProfile(t *testing.T) {
	dir := t.TempDir()
	if !profilerBuilt {
		var stderr strings.Builder
		if rc := run([]string{"--token-fd", "0", "--cpuprofile-dir", dir}, &stderr); rc != 1 || !strings.Contains(stderr.String(), "-tags "+profileTag) {
			t.Errorf("production build with --cpuprofile-dir: rc %d, %q; want 1 and the build to use", rc, stderr.String())
		}
		if ents, err := os.ReadDir(dir); err != nil || len(ents) != 0 {
			t.Errorf("production build left %v in the profile directory (%v)", ents, err)
		}
		testenv.RequireCommand(t, "go")
		out, err := exec.Command("go", "test", "-tags", profileTag, "-count=1", "-v", "-run", "^TestCPUProfile$", ".").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestCPUProfile") {
			t.Fatalf("TestCPUProfile under -tags %s: %v\n%s", profileTag, err, out)
		}
		return
	}
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
// the HTTP proxy's CONNECT does not need, nor runtime/pprof (only the
// profiling build, -tags cpuprofile, links it: make bench's profile run).
func TestLinksOnlyWhatABackendRuns(t *testing.T) {
	testenv.RequireCommand(t, "go")
	deps := listDeps(t)
	if !slices.Contains(listDeps(t, "-tags", profileTag), "runtime/pprof") {
		t.Errorf("the profiling build (-tags %s) does not link runtime/pprof: this test's name for it is stale", profileTag)
	}
	const mod = "github.com/ovpn3go/ovpn3go/"
	for _, pkg := range []string{"runtime/pprof", "helper/netcfg", "helper/netcfg/dns", "helper/netcfg/journal", "helper/netcfg/sharedroute",
		"helper/netcfg/sysrec", "helper/netcfg/tundev", "helper/sessionmgr", "helper/configmgr", "helper/logsvc", "helper/polkit",
		"net/http", "mime", "vendor/golang.org/x/net/idna"} {
		for _, d := range deps {
			if d == pkg || d == mod+pkg {
				t.Errorf("ovpn3-backend links %s", d)
			}
		}
	}
}

// listDeps is `go list -deps` of this package with the extra go arguments.
func listDeps(t *testing.T, extra ...string) []string {
	t.Helper()
	out, err := exec.Command("go", append(append([]string{"list", "-deps"}, extra...), ".")...).CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps %q: %v\n%s", extra, err, out)
	}
	if !strings.Contains(string(out), "github.com/ovpn3go/ovpn3go/helper/backend\n") {
		t.Fatalf("go list -deps %q printed no backend:\n%s", extra, out)
	}
	return strings.Fields(string(out))
}

// What package initialisation allocates stays on every backend's heap
// (see testenv.CheckInitAllocations); this test binary links the
// backend's packages.
func TestInitAllocations(t *testing.T) {
	testenv.CheckInitAllocations(t, 256<<10)
}

// The daemon and the backend are built with testbed.ServiceGOEXPERIMENT
// (Go 1.26's previous collector: 0.3 MB less resident memory per
// connected backend, docs/bench/memory.md), both by the Makefile's build
// target (the Debian package's build too) and by testbed's builds, which
// the e2e tests, make bench and memprobe run; the CLI is not.
func TestBuiltWithServiceCollector(t *testing.T) {
	testenv.RequireCommand(t, "go")
	testenv.RequireCommand(t, "make")
	root, err := testbed.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("make", "-s", "-n", "-C", root, "build").CombinedOutput()
	if err != nil {
		t.Fatalf("make -n build: %v\n%s", err, out)
	}
	want := "GOEXPERIMENT=" + testbed.ServiceGOEXPERIMENT + " "
	for _, prog := range []string{"ovpn3-helper", "ovpn3-backend", "ovpn3"} {
		var line string
		for l := range strings.Lines(string(out)) {
			if strings.Contains(l, "-o bin/"+prog+" ") {
				line = l
			}
		}
		if line == "" {
			t.Fatalf("make -n build builds no bin/%s:\n%s", prog, out)
		}
		if got := strings.Contains(line, want); got != testbed.ServiceProgram("./helper/cmd/"+prog) {
			t.Errorf("make build's line for %s has %q: %v\n%s", prog, want, got, line)
		}
	}
	bin := filepath.Join(t.TempDir(), "ovpn3-backend")
	if err := testbed.BuildProgram(t.Context(), bin, "./helper/cmd/ovpn3-backend", false); err != nil {
		t.Fatal(err)
	}
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	var exp string
	for _, s := range info.Settings {
		if s.Key == "GOEXPERIMENT" {
			exp = s.Value
		}
	}
	if exp != testbed.ServiceGOEXPERIMENT {
		t.Errorf("testbed's backend build has GOEXPERIMENT %q, want %q", exp, testbed.ServiceGOEXPERIMENT)
	}
}
