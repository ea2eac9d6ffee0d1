// Package e2e holds the end-to-end tests of ovpn3go: the real binaries
// (ovpn3-helper, ovpn3) on a private dbus-daemon, the helper inside a
// network namespace, and the Debian OpenVPN 2.6 server in another one.
// They need root; run them alone with
//
//	go test -v -count=1 ./e2e/
package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// The binaries are built once per test binary, on first use.
var (
	buildOnce sync.Once
	buildDir  string
	built     testbed.Binaries
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	if trayBin != "" {
		os.RemoveAll(filepath.Dir(trayBin))
	}
	os.Exit(code)
}

// binaries returns the freshly built ovpn3-helper and ovpn3.
func binaries(t testing.TB) testbed.Binaries {
	t.Helper()
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "go")
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "ovpn3go-e2e-bin-"); buildErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		built, buildErr = testbed.BuildBinaries(ctx, buildDir)
	})
	if buildErr != nil {
		t.Fatalf("build: %v", buildErr)
	}
	return built
}

// watch records the session manager's signals for the rest of the test.
func watch(t testing.TB, st *testbed.Stack) *testbed.Watcher {
	t.Helper()
	w, err := testbed.WatchSignals(st.Bus.Address, "type='signal',interface='"+api.InterfaceSessions+"'")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, s := range w.Signals() {
				t.Logf("signal: %s", testbed.FormatSignal(s))
			}
		}
		w.Close()
	})
	return w
}

func isStatus(major api.StatusMajor, minor api.StatusMinor) func(*dbus.Signal) bool {
	return func(s *dbus.Signal) bool {
		if s.Name != api.InterfaceSessions+".StatusChange" || len(s.Body) != 3 {
			return false
		}
		ma, _ := s.Body[0].(uint32)
		mi, _ := s.Body[1].(uint32)
		return ma == uint32(major) && mi == uint32(minor)
	}
}

func isSessionEvent(path dbus.ObjectPath, typ api.SessionEventType) func(*dbus.Signal) bool {
	return func(s *dbus.Signal) bool {
		if s.Name != api.InterfaceSessions+".SessionManagerEvent" || len(s.Body) != 3 {
			return false
		}
		p, _ := s.Body[0].(dbus.ObjectPath)
		ty, _ := s.Body[1].(uint16)
		return (path == "" || p == path) && ty == uint16(typ)
	}
}

func waitSignal(t testing.TB, w *testbed.Watcher, timeout time.Duration, what string, match func(*dbus.Signal) bool) *dbus.Signal {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	s, err := w.Wait(ctx, match)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return s
}

// importProfile writes the variant's profile and imports it under name.
func importProfile(t testing.TB, st *testbed.Stack, v testbed.Variant, name string, extra ...string) {
	t.Helper()
	path, err := st.WriteProfile(v)
	if err != nil {
		t.Fatal(err)
	}
	if len(extra) > 0 {
		f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.WriteString(f, strings.Join(extra, "\n")+"\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := st.CLI(ctx, "config-import", "--config", path, "--name", name); err != nil {
		t.Fatal(err)
	}
}

// connect starts a session from an imported profile and waits until the
// session manager reports CONNECTION / CONN_CONNECTED.
func connect(t *testing.T, st *testbed.Stack, w *testbed.Watcher, name string) dbus.ObjectPath {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	t0 := time.Now()
	if _, err := st.CLI(ctx, "session-start", "--config", name); err != nil {
		t.Fatal(err)
	}
	waitSignal(t, w, 60*time.Second, "StatusChange CONNECTION/CONN_CONNECTED",
		isStatus(api.StatusMajorConnection, api.StatusMinorConnConnected))
	t.Logf("session-start to CONN_CONNECTED: %v", time.Since(t0).Round(time.Millisecond))
	path, err := st.SessionByConfig(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// netState describes what a tunnel leaves in a namespace: links other
// than lo and the veth, and IPv4 routes (all tables) into 198.19.0.0/16.
type netState struct{ extraLinks, tunnelRoutes []string }

func (n netState) clean() bool { return len(n.extraLinks) == 0 && len(n.tunnelRoutes) == 0 }

func readNetState(t *testing.T, pair *testbed.Pair) netState {
	t.Helper()
	ctx := context.Background()
	var n netState
	out, err := testbed.Run(ctx, pair.ClientNS, "ip", "-o", "link", "show")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		// "2: name@peer: <…> …"
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		if name != "lo" && name != pair.ClientLink {
			n.extraLinks = append(n.extraLinks, name)
		}
	}
	out, err = testbed.Run(ctx, pair.ClientNS, "ip", "-4", "route", "show", "table", "all")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "198.19.") {
			n.tunnelRoutes = append(n.tunnelRoutes, strings.TrimSpace(line))
		}
	}
	return n
}

// waitClean polls until the client namespace holds no tunnel leftovers.
func waitClean(t *testing.T, pair *testbed.Pair, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		n := readNetState(t, pair)
		if n.clean() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v the client namespace still has links %v and routes %v", timeout, n.extraLinks, n.tunnelRoutes)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// transfer sends n bytes over TCP from the client namespace to a listener
// on the LAN host in the server namespace, i.e. through the tunnel, and
// returns once the receiver has counted all of them.
func transfer(t *testing.T, pair *testbed.Pair, n int64) {
	t.Helper()
	var ln net.Listener
	if err := testbed.InNamespace(pair.ServerNS, func() (err error) {
		ln, err = net.Listen("tcp", net.JoinHostPort(testbed.LANHost4, "5201"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	deadline := time.Now().Add(3 * time.Minute)
	got := make(chan error, 1)
	go func() { // ends when the sender closes or the deadline passes
		c, err := ln.Accept()
		if err != nil {
			got <- err
			return
		}
		defer c.Close()
		c.SetDeadline(deadline)
		m, err := io.Copy(io.Discard, c)
		if err == nil && m != n {
			err = fmt.Errorf("received %d bytes, want %d", m, n)
		}
		got <- err
	}()
	var c net.Conn
	if err := testbed.InNamespace(pair.ClientNS, func() (err error) {
		c, err = net.DialTimeout("tcp", ln.Addr().String(), 10*time.Second)
		return err
	}); err != nil {
		t.Fatalf("dial through the tunnel: %v", err)
	}
	c.SetDeadline(deadline)
	t0 := time.Now()
	_, err := io.CopyN(c, zeroReader{}, n)
	c.Close()
	if err != nil {
		t.Fatalf("send through the tunnel: %v", err)
	}
	if err := <-got; err != nil {
		t.Fatalf("receive through the tunnel: %v", err)
	}
	d := time.Since(t0)
	t.Logf("moved %d MiB through the tunnel in %v (%.0f Mbit/s)", n>>20, d.Round(time.Millisecond), float64(n)*8/d.Seconds()/1e6)
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestConnectTrafficDisconnect is the walking skeleton of issue 2: import,
// connect to variant a, ping and move 50 MiB through the tunnel, read the
// statistics, introspect, disconnect, and find nothing left behind.
func TestConnectTrafficDisconnect(t *testing.T) {
	t.Parallel()
	bin := binaries(t)
	testenv.RequireCommand(t, "busctl")
	testenv.RequireCommand(t, "ping")
	st := testbed.NewStack(t, bin, testbed.VariantA)
	w := watch(t, st)
	importProfile(t, st, testbed.VariantA, "e2e-a")
	path := connect(t, st, w, "e2e-a")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	for _, addr := range []string{testbed.TunnelServer4, testbed.LANHost4} {
		if err := testbed.Ping(ctx, st.Pair.ClientNS, addr, 3); err != nil {
			t.Errorf("ping %s through the tunnel: %v", addr, err)
		}
	}

	// While connected, the TUN device and the pushed route exist, so the
	// "nothing left behind" check at the end means something.
	devName, err := st.SessionProperty(ctx, path, "device_name")
	if err != nil {
		t.Fatal(err)
	}
	dev, _ := devName.Value().(string)
	during := readNetState(t, st.Pair)
	if dev == "" || !slices.Contains(during.extraLinks, dev) {
		t.Errorf("device_name %q, links in the client namespace %v", dev, during.extraLinks)
	}
	if !anyContains(during.tunnelRoutes, "198.19.1.0/24") {
		t.Errorf("pushed route 198.19.1.0/24 missing in the client namespace: %v", during.tunnelRoutes)
	}

	before, err := st.Statistics(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	const volume = 50 << 20
	transfer(t, st.Pair, volume)
	// Counters may be published with a delay; give them a few seconds.
	var after map[string]int64
	for i := 0; i < 50; i++ {
		if after, err = st.Statistics(ctx, path); err != nil {
			t.Fatal(err)
		}
		if after["BYTES_OUT"]-before["BYTES_OUT"] >= volume {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("statistics after the transfer: %v", after)
	if d := after["BYTES_OUT"] - before["BYTES_OUT"]; d < volume {
		t.Errorf("BYTES_OUT rose by %d, want at least %d", d, volume)
	}
	// Which of the two TUN counters means "read from the TUN" differs
	// between conventions; the payload passed the TUN in one direction.
	dIn := after["TUN_BYTES_IN"] - before["TUN_BYTES_IN"]
	dOut := after["TUN_BYTES_OUT"] - before["TUN_BYTES_OUT"]
	if max(dIn, dOut) < volume {
		t.Errorf("TUN_BYTES_IN rose by %d and TUN_BYTES_OUT by %d, want one of them at least %d", dIn, dOut, volume)
	}
	out, err := st.CLI(ctx, "session-stats", "--config", "e2e-a")
	if err != nil {
		t.Error(err)
	} else if !strings.Contains(out, "BYTES_OUT") {
		t.Errorf("session-stats does not show BYTES_OUT:\n%s", out)
	}

	for _, tc := range []struct {
		path dbus.ObjectPath
		want []string
	}{
		{api.PathSessions, []string{api.InterfaceSessions, ".NewTunnel", ".LookupConfigName", ".SessionManagerEvent"}},
		{path, []string{api.InterfaceSessions, ".Disconnect", ".StatusChange", ".statistics", ".status", ".backend_pid", ".device_name", ".config_name"}},
	} {
		out, err := exec.CommandContext(ctx, "busctl", "--address="+st.Bus.Address, "--no-pager",
			"introspect", api.ServiceSessions, string(tc.path)).CombinedOutput()
		if err != nil {
			t.Errorf("busctl introspect %s: %v\n%s", tc.path, err, out)
			continue
		}
		for _, want := range tc.want {
			if !strings.Contains(string(out), want) {
				t.Errorf("busctl introspect %s lacks %q:\n%s", tc.path, want, out)
			}
		}
	}

	if _, err := st.CLI(ctx, "session-manage", "--config", "e2e-a", "--disconnect"); err != nil {
		t.Fatal(err)
	}
	waitSignal(t, w, 30*time.Second, "SessionManagerEvent SESS_DESTROYED", isSessionEvent(path, api.SessionEventDestroyed))
	waitClean(t, st.Pair, 10*time.Second)
	select {
	case <-st.Helper.Done():
		t.Errorf("ovpn3-helper exited after the disconnect: %v", st.Helper.ExitErr())
	default:
	}
}

// TestImportRejectsBrokenProfile: a profile that does not parse is refused
// by config-import with an error naming the line, and nothing is stored.
func TestImportRejectsBrokenProfile(t *testing.T) {
	t.Parallel()
	bin := binaries(t)
	st := testbed.NewStack(t, bin, "")
	for _, tc := range []struct {
		name, text, wantLine string
	}{
		{"unclosed-inline", "client\ndev tun\nremote 198.18.0.1 1194\n<ca>\n-----BEGIN CERTIFICATE-----\nAAAA\n", "line 4"},
		{"stray-close-tag", "client\ndev tun\n</ca>\nremote 198.18.0.1 1194\n", "line 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(st.Dir, tc.name+".ovpn")
			if err := os.WriteFile(path, []byte(tc.text), 0o600); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := st.CLI(ctx, "config-import", "--config", path, "--name", tc.name)
			var exitErr *exec.ExitError
			if !errors.As(err, &exitErr) {
				t.Fatalf("config-import of a broken profile: err = %v, want a non-zero exit; output:\n%s", err, out)
			}
			if !strings.Contains(out, tc.wantLine) {
				t.Errorf("config-import error does not name %q:\n%s", tc.wantLine, out)
			}
		})
	}
	var paths []dbus.ObjectPath
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := st.Conn.Object(api.ServiceConfiguration, api.PathConfiguration).
		CallWithContext(ctx, api.InterfaceConfiguration+".FetchAvailableConfigs", 0).Store(&paths); err != nil {
		t.Fatal(err)
	}
	if len(paths) != 0 {
		t.Errorf("broken profiles were stored: %v", paths)
	}
}

// TestUnansweredServerFails: with no server listening, the session ends in
// CONN_FAILED with a reason and is closed, instead of hanging.
func TestUnansweredServerFails(t *testing.T) {
	t.Parallel()
	bin := binaries(t)
	st := testbed.NewStack(t, bin, "") // a PKI and a pair, no server
	w := watch(t, st)
	// Standard options bounding the attempt; a client must honour them.
	importProfile(t, st, testbed.VariantA, "e2e-noserver", "server-poll-timeout 5", "connect-retry-max 1")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	t0 := time.Now()
	out, err := st.CLI(ctx, "session-start", "--config", "e2e-noserver")
	if ctx.Err() != nil {
		t.Fatalf("session-start still running after 90 s (a hang); output:\n%s", out)
	}
	if err == nil {
		t.Errorf("session-start succeeded without a server; output:\n%s", out)
	}
	s := waitSignal(t, w, 60*time.Second, "StatusChange CONNECTION/CONN_FAILED",
		isStatus(api.StatusMajorConnection, api.StatusMinorConnFailed))
	if msg, _ := s.Body[2].(string); strings.TrimSpace(msg) == "" {
		t.Errorf("CONN_FAILED without a reason: %s", testbed.FormatSignal(s))
	}
	t.Logf("failed after %v: %s", time.Since(t0).Round(time.Millisecond), testbed.FormatSignal(s))
	waitSignal(t, w, 30*time.Second, "SessionManagerEvent SESS_DESTROYED", isSessionEvent("", api.SessionEventDestroyed))
	waitClean(t, st.Pair, 10*time.Second)
}

// TestBackendKilled: a backend killed with SIGKILL leaves no TUN device or
// route behind, and the session manager announces SESS_DESTROYED.
func TestBackendKilled(t *testing.T) {
	t.Parallel()
	bin := binaries(t)
	st := testbed.NewStack(t, bin, testbed.VariantA)
	w := watch(t, st)
	importProfile(t, st, testbed.VariantA, "e2e-kill")
	path := connect(t, st, w, "e2e-kill")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if n := readNetState(t, st.Pair); len(n.extraLinks) == 0 {
		t.Fatalf("connected, but no TUN device in the client namespace")
	}
	v, err := st.SessionProperty(ctx, path, "backend_pid")
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := v.Value().(uint32)
	if pid == 0 || int(pid) == st.Helper.PID() {
		t.Fatalf("backend_pid = %v (helper pid %d)", v, st.Helper.PID())
	}
	// The backend is a child of the helper we started, inside our namespace.
	if !strings.Contains(mustRun(t, "ip", "netns", "pids", st.Pair.ClientNS), fmt.Sprint(pid)) {
		t.Fatalf("backend pid %d is not in namespace %s", pid, st.Pair.ClientNS)
	}
	if err := syscall.Kill(int(pid), syscall.SIGKILL); err != nil {
		t.Fatalf("kill backend %d: %v", pid, err)
	}
	waitSignal(t, w, 30*time.Second, "SessionManagerEvent SESS_DESTROYED", isSessionEvent(path, api.SessionEventDestroyed))
	waitClean(t, st.Pair, 15*time.Second)
}

func mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func anyContains(s []string, sub string) bool {
	for _, x := range s {
		if strings.Contains(x, sub) {
			return true
		}
	}
	return false
}

// BenchmarkSessionConnect measures ovpn3go's connect time against variant
// a: from running `ovpn3 session-start` (a new process: NewTunnel starts
// a backend process, which connects) to the session's CONN_CONNECTED signal. Compare with BenchmarkReferenceConnect in internal/testbed (the
// openvpn 2.6 client) in the same run:
//
//	go test -run '^$' -bench Connect ./internal/testbed/ ./e2e/
func BenchmarkSessionConnect(b *testing.B) {
	bin := binaries(b)
	st := testbed.NewStack(b, bin, testbed.VariantA)
	importProfile(b, st, testbed.VariantA, "bench-a")
	for b.Loop() {
		w, err := testbed.WatchSignals(st.Bus.Address, "type='signal',interface='"+api.InterfaceSessions+"'")
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		if _, err := st.CLI(ctx, "session-start", "--config", "bench-a"); err != nil {
			b.Fatal(err)
		}
		s := waitSignal(b, w, 60*time.Second, "CONN_CONNECTED", isStatus(api.StatusMajorConnection, api.StatusMinorConnConnected))
		b.StopTimer()
		path := s.Path
		if _, err := st.CLI(ctx, "session-manage", "--config", "bench-a", "--disconnect"); err != nil {
			b.Fatal(err)
		}
		waitSignal(b, w, 30*time.Second, "SESS_DESTROYED", isSessionEvent(path, api.SessionEventDestroyed))
		w.Close()
		cancel()
		b.StartTimer()
	}
}
