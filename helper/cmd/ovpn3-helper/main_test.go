package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/busobj/busobjtest"
	"github.com/ovpn3go/ovpn3go/helper/privsep"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
	"github.com/ovpn3go/ovpn3go/internal/version"
)

// backendDir holds the ovpn3-backend the daemon's tests start (built
// once per test binary by testBackend).
var backendDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ovpn3-helper-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	backendDir = dir
	rc := m.Run()
	os.RemoveAll(dir)
	os.Exit(rc)
}

var backendBuild struct {
	once sync.Once
	err  error
}

// testBackend is the backend program as runDaemon opens it: ovpn3-backend
// built from this tree.
func testBackend(t *testing.T) backendProgram {
	t.Helper()
	path := filepath.Join(backendDir, "ovpn3-backend")
	backendBuild.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		backendBuild.err = testbed.BuildProgram(ctx, path, "./helper/cmd/ovpn3-backend", false)
	})
	if backendBuild.err != nil {
		t.Fatal(backendBuild.err)
	}
	be, err := openBackend(path, nil, backendArgs(3, "", true))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.file.Close() })
	return be
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{{"--log-level", "9"}, {"extra"}, {"--no-such-flag"}} {
		if rc := runDaemon(args, io.Discard); rc != 2 {
			t.Errorf("runDaemon(%q) = %d, want 2", args, rc)
		}
	}
}

// The daemon passes its own release on every backend's command line (the
// backend refuses another one: ovpn3-backend's TestRefusesOtherRelease).
func TestBackendArgsCarryRelease(t *testing.T) {
	args := backendArgs(3, "", true)
	if i := slices.Index(args, "--daemon-version"); i < 0 || i+1 >= len(args) || args[i+1] != version.Version {
		t.Errorf("backend args %q do not carry the daemon's release %q", args, version.Version)
	}
	// --preconnect=false (an A/B switch) reaches every backend.
	if slices.Contains(args, "--preconnect=false") || !slices.Contains(backendArgs(3, "", false), "--preconnect=false") {
		t.Errorf("--preconnect: backend args %q with it on, %q off", args, backendArgs(3, "", false))
	}
}

// A daemon without its backend program does not start, and says where it
// looked: the --backend given, or each default place.
func TestMissingBackend(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "no-such-backend")
	var stderr strings.Builder
	if rc := runDaemon([]string{"--backend", missing}, &stderr); rc != 1 || !strings.Contains(stderr.String(), missing) {
		t.Errorf("runDaemon(--backend %s) = %d, %q; want 1 naming the path", missing, rc, stderr.String())
	}
	beside, installed := filepath.Join(dir, "bin", backendName), filepath.Join(dir, "libexec", backendName)
	_, err := openBackend("", []string{beside, installed}, nil)
	if err == nil || !strings.Contains(err.Error(), beside) || !strings.Contains(err.Error(), installed) {
		t.Errorf("openBackend without a backend: %v; want both places named", err)
	}
	// The first place that has it wins.
	if err := os.MkdirAll(filepath.Dir(installed), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(installed, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	be, err := openBackend("", []string{beside, installed}, nil)
	if err != nil || be.path != installed {
		t.Fatalf("openBackend with the installed backend: %+v, %v", be, err)
	}
	be.file.Close()
	// Defaults: beside the daemon's own program, then the installed path.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := backendCandidates(), []string{filepath.Join(filepath.Dir(exe), backendName), InstalledBackend}; !slices.Equal(got, want) {
		t.Errorf("backendCandidates() = %q, want %q", got, want)
	}
}

func TestNameTaken(t *testing.T) {
	testenv.RequireRoot(t)
	addr := busobjtest.StartBus(t)
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", addr)
	squatter, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer squatter.Close()
	if r, err := squatter.RequestName(api.ServiceSessions, dbus.NameFlagDoNotQueue); err != nil || r != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("squat: %v %v", r, err)
	}
	var logs bytes.Buffer
	err = serve(context.Background(), t.TempDir(), testBackend(t), false, testDNS(t), defaultLimits(), backendUser(t), slog.New(slog.NewTextHandler(&logs, nil)))
	if err == nil || !strings.Contains(err.Error(), api.ServiceSessions) || !strings.Contains(err.Error(), "taken") {
		t.Fatalf("serve with a taken name: %v", err)
	}
}

// SIGTERM (here: the context) disconnects every session before the daemon
// exits: the backend process ends and SESS_DESTROYED is broadcast.
func TestShutdownDisconnectsSessions(t *testing.T) {
	testenv.RequireRoot(t)
	addr := busobjtest.StartBus(t)
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", addr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	user, dnsOpts, be := backendUser(t), testDNS(t), testBackend(t)
	go func() {
		served <- serve(ctx, t.TempDir(), be, true, dnsOpts, defaultLimits(), user, logger)
	}()

	client, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	waitName(t, client, api.ServiceSessions, served)
	if err := client.AddMatchSignal(dbus.WithMatchInterface(api.InterfaceSessions)); err != nil {
		t.Fatal(err)
	}
	events := make(chan *dbus.Signal, 64)
	client.Signal(events)

	text, err := testbed.PKI(t).Profile(testbed.VariantA)
	if err != nil {
		t.Fatal(err)
	}
	var cfg, path dbus.ObjectPath
	if err := client.Object(api.ServiceConfiguration, api.PathConfiguration).Call(
		api.InterfaceConfiguration+".Import", 0, "shutdown-test", text, false, false).Store(&cfg); err != nil {
		t.Fatalf("Import: %v", err)
	}
	if err := client.Object(api.ServiceSessions, api.PathSessions).Call(
		api.InterfaceSessions+".NewTunnel", 0, cfg).Store(&path); err != nil {
		t.Fatalf("NewTunnel: %v", err)
	}
	var pid uint32
	if err := client.Object(api.ServiceSessions, path).Call(api.InterfaceProperties+".Get", 0,
		api.InterfaceSessions, "backend_pid").Store(&pid); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("serve did not return after shutdown")
	}
	if err := syscall.Kill(int(pid), 0); err == nil {
		t.Errorf("backend %d still running after shutdown", pid)
	}
	deadline := time.After(10 * time.Second)
	for {
		select {
		case s := <-events:
			if s.Name == api.InterfaceSessions+".SessionManagerEvent" && s.Body[0] == path &&
				s.Body[1] == uint16(api.SessionEventDestroyed) {
				return
			}
		case <-deadline:
			t.Fatal("no SESS_DESTROYED at shutdown")
		}
	}
}

func waitName(t *testing.T, c *dbus.Conn, name string, served <-chan error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var has bool
		if err := c.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, name).Store(&has); err == nil && has {
			return
		}
		select {
		case err := <-served:
			t.Fatalf("daemon ended: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("%s never owned", name)
}

// testDNS keeps the helper away from the host's /etc/resolv.conf.
func testDNS(t *testing.T) dnsFlags {
	return dnsFlags{resolvConf: filepath.Join(t.TempDir(), "resolv.conf")}
}

// backendUser creates the backends' system user if needed.
func backendUser(t *testing.T) privsep.User {
	t.Helper()
	testenv.EnsureBackendUser(t)
	u, err := privsep.LookupUser(testenv.BackendUser)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestBackendCPUProfileOffByDefault: backends profile themselves only when
// the daemon was started with --backend-cpuprofile (a profiling build of
// ovpn3-backend writes it, a production one refuses: ovpn3-backend's
// TestCPUProfile).
func TestBackendCPUProfileOffByDefault(t *testing.T) {
	for _, a := range backendArgs(3, "", true) {
		if strings.Contains(a, "cpuprofile") {
			t.Fatalf("backend args %q enable profiling by default", backendArgs(3, "", true))
		}
	}
	dir := t.TempDir()
	if got := backendArgs(3, dir, true); !slices.Contains(got, "--cpuprofile-dir") || got[len(got)-1] != dir {
		t.Fatalf("backend args %q lack --cpuprofile-dir %s", got, dir)
	}
}

// What package initialisation allocates stays on the daemon's heap (see
// testenv.CheckInitAllocations); this test binary links the daemon's
// packages.
func TestInitAllocations(t *testing.T) {
	testenv.CheckInitAllocations(t, 256<<10)
}
