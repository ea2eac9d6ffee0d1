package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
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

// The daemon re-executes itself as "backend <token>"; in tests the
// executable is the test binary, so TestMain plays that role too.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "backend" {
		os.Exit(backendMain())
	}
	os.Exit(m.Run())
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{{"--log-level", "9"}, {"extra"}, {"--no-such-flag"}} {
		if rc := runDaemon(args, io.Discard); rc != 2 {
			t.Errorf("runDaemon(%q) = %d, want 2", args, rc)
		}
	}
	if rc := runBackend(nil, io.Discard); rc != 2 {
		t.Errorf("runBackend() = %d, want 2", rc)
	}
}

// TestBackendRefusesOtherRelease (issue 15): a backend started by a daemon
// of another release (its binary replaced under the daemon) exits before
// it reads its token or registers, saying why; the daemon passes its own
// release on every backend's command line.
func TestBackendRefusesOtherRelease(t *testing.T) {
	var stderr strings.Builder
	rc := runBackend([]string{"--token-fd", "0", "--daemon-version", version.Version + "-other"}, &stderr)
	if rc != 3 || !strings.Contains(stderr.String(), "refusing to run") || !strings.Contains(stderr.String(), version.Version+"-other") {
		t.Errorf("runBackend(other release) = %d, %q", rc, stderr.String())
	}
	args := backendArgs(3, "")
	if i := slices.Index(args, "--daemon-version"); i < 0 || i+1 >= len(args) || args[i+1] != version.Version {
		t.Errorf("backend args %q do not carry the daemon's release %q", args, version.Version)
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
	err = serve(context.Background(), t.TempDir(), backendArgs(3, ""), false, testDNS(t), defaultLimits(), backendUser(t), slog.New(slog.NewTextHandler(&logs, nil)))
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
	user, dnsOpts := backendUser(t), testDNS(t)
	go func() {
		served <- serve(ctx, t.TempDir(), backendArgs(3, ""), true, dnsOpts, defaultLimits(), user, logger)
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
// the daemon was started with --backend-cpuprofile, and a backend asked
// to writes a pprof profile into that directory.
func TestBackendCPUProfileOffByDefault(t *testing.T) {
	for _, a := range backendArgs(3, "") {
		if strings.Contains(a, "cpuprofile") {
			t.Fatalf("backend args %q enable profiling by default", backendArgs(3, ""))
		}
	}
	dir := t.TempDir()
	if got := backendArgs(3, dir); !slices.Contains(got, "--cpuprofile-dir") || got[len(got)-1] != dir {
		t.Fatalf("backend args %q lack --cpuprofile-dir %s", got, dir)
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

// TestRuntimeStats: --runtime-stats parses, and a process logs its
// goroutine count and memory classes in the form the soak test (e2e TestSoak, which also
// shows the backends get the flag) reads.
func TestRuntimeStats(t *testing.T) {
	var logs bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	logRuntimeStats(ctx, slog.New(slog.NewTextHandler(&logs, nil)), time.Second)
	if want := fmt.Sprintf(`msg="runtime stats" pid=%d goroutines=`, os.Getpid()); !strings.Contains(logs.String(), want) {
		t.Errorf("runtime stats logged %q, want %q", logs.String(), want)
	}
	// Where the anonymous memory goes, as the runtime sees it.
	if strings.Contains(logs.String(), " threads=0 ") || !strings.Contains(logs.String(), " threads=") {
		t.Errorf("runtime stats %q lack the thread count", logs.String())
	}
	for _, m := range memStats {
		if !strings.Contains(logs.String(), " "+m.key+"=") {
			t.Errorf("runtime stats %q lack %s", logs.String(), m.key)
		}
	}
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	d := statsFlag(fs)
	if err := fs.Parse([]string{"--runtime-stats", "2s"}); err != nil || *d != 2*time.Second {
		t.Errorf("--runtime-stats 2s: %v, %v", *d, err)
	}
}
