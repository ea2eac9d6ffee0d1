package sessionmgr

import (
	"context"
	"fmt"
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
	"github.com/ovpn3go/ovpn3go/helper/busobj"
	"github.com/ovpn3go/ovpn3go/helper/logsvc"
	"github.com/ovpn3go/ovpn3go/helper/polkit"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
)

const testConfig dbus.ObjectPath = "/net/openvpn/v3/configuration/0000x1111"

// testConfigRestart has automatic-restart=on-failure.
const testConfigRestart dbus.ObjectPath = "/net/openvpn/v3/configuration/0000x3333"

// testConfigTransfer belongs to uid 2000 and has transfer_owner_session.
const testConfigTransfer dbus.ObjectPath = "/net/openvpn/v3/configuration/0000x2222"

type allowProfiles struct{}

func (allowProfiles) UseProfile(path dbus.ObjectPath, uid uint32) (ProfileInfo, error) {
	if uid == 4242 {
		return ProfileInfo{}, api.Error(api.DomainGDBusPP, "Access to the configuration profile is denied.")
	}
	if path == testConfigRestart {
		return ProfileInfo{Name: "profile", Owner: uid, AutoRestart: true}, nil
	}
	if path == testConfigTransfer {
		return ProfileInfo{Name: "profile", Owner: 2000, TransferOwnerSession: true}, nil
	}
	return ProfileInfo{Name: "profile", Owner: uid}, nil
}

// cleanups records CleanupPID calls.
type cleanups struct {
	mu   sync.Mutex
	pids []uint32
}

func (c *cleanups) add(pid uint32) { c.mu.Lock(); c.pids = append(c.pids, pid); c.mu.Unlock() }
func (c *cleanups) has(pid uint32) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Contains(c.pids, pid)
}

// polkitOnRigBus as Options.Polkit: ask polkit on the rig's own bus.
var polkitOnRigBus Authorizer = rigPolkit{}

type rigPolkit struct{}

func (rigPolkit) Require(context.Context, string, string, bool) error { panic("replaced by newRig") }

type testRig struct {
	m       *Manager
	addr    string
	events  chan *dbus.Signal
	cleaned *cleanups
	client  *dbus.Conn
	srv     *busobj.Server
	marker  string // the fake backends' marker file (fakeMarkerEnv)
}

func newRig(t *testing.T, mode string, opts Options) *testRig {
	t.Helper()
	return newRigWith(t, mode, opts, false)
}

// newRigWith: with realLog the rig runs the real log service (logsvc) on
// the manager's connection, as ovpn3-helper does; otherwise the watcher
// stands in for the log service.
func newRigWith(t *testing.T, mode string, opts Options, realLog bool) *testRig {
	t.Helper()
	addr := startBus(t)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := busobj.Connect(context.Background(), addr, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	conn := srv.Conn()
	watcher := dial(t, addr)
	if err := watcher.AddMatchSignal(dbus.WithMatchInterface(api.InterfaceSessions)); err != nil {
		t.Fatal(err)
	}
	if realLog {
		logs := logsvc.New(logger)
		if err := logs.Export(srv); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(logs.Close)
		if err := srv.RequestName(api.ServiceLog); err != nil {
			t.Fatal(err)
		}
		opts.Logs = logs
	} else if _, err := watcher.RequestName(api.ServiceLog, dbus.NameFlagDoNotQueue); err != nil {
		// The watcher stands in for the log service, which is the only
		// receiver of the session objects' StatusChange and Log.
		t.Fatal(err)
	}
	events := make(chan *dbus.Signal, 100)
	watcher.Signal(events)
	rig := &testRig{addr: addr, events: events, cleaned: &cleanups{}, srv: srv}
	opts.Conn = conn
	opts.Logger = logger
	if opts.Polkit == polkitOnRigBus {
		opts.Polkit = polkit.New(conn)
	}
	opts.Profiles = allowProfiles{}
	launcher := fakeLauncher(t, mode, addr)
	rig.marker = filepath.Join(backendDir(t), "crashed")
	launcher.Env = append(launcher.Env, fakeMarkerEnv+"="+rig.marker)
	opts.Launcher = launcher
	opts.CleanupPID = rig.cleaned.add
	if opts.Logs == nil {
		opts.Logs = newFakeLogs()
	}
	m, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Export(srv); err != nil {
		t.Fatal(err)
	}
	if err := srv.RequestName(api.ServiceSessions); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := m.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	rig.m = m
	rig.client = watcher
	return rig
}

// waitSignal waits for a signal for which match returns true.
func (r *testRig) waitSignal(t *testing.T, what string, match func(*dbus.Signal) bool) *dbus.Signal {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case s := <-r.events:
			if match(s) {
				return s
			}
		case <-deadline:
			t.Fatalf("no %s signal", what)
			return nil
		}
	}
}

func isSessionEvent(path dbus.ObjectPath, typ api.SessionEventType) func(*dbus.Signal) bool {
	return func(s *dbus.Signal) bool {
		return s.Name == api.InterfaceSessions+".SessionManagerEvent" && len(s.Body) == 3 &&
			s.Body[0] == path && s.Body[1] == uint16(typ)
	}
}

func isStatus(path dbus.ObjectPath, minor api.StatusMinor) func(*dbus.Signal) bool {
	return func(s *dbus.Signal) bool {
		return s.Path == path && s.Name == api.InterfaceSessions+".StatusChange" && len(s.Body) == 3 &&
			s.Body[1] == uint32(minor)
	}
}

func errText(err error) string {
	_, t, _ := api.ParseError(err)
	return t
}

func TestSessionLifecycle(t *testing.T) {
	r := newRig(t, "ok", Options{})
	path, err := r.m.NewTunnel(1000, testConfig)
	if err != nil {
		t.Fatalf("NewTunnel: %v", err)
	}
	ev := r.waitSignal(t, "SESS_CREATED", isSessionEvent(path, api.SessionEventCreated))
	if ev.Body[2] != uint32(1000) {
		t.Errorf("SESS_CREATED owner %v", ev.Body[2])
	}
	s := r.m.session(path)
	if s == nil {
		t.Fatal("no session object after NewTunnel returned")
	}
	if s.configName != "fake-profile" {
		t.Errorf("config name %q", s.configName)
	}
	s.mu.Lock()
	st := s.status
	s.mu.Unlock()
	if st.Minor != api.StatusMinorCfgOK || st.Message != "config_path="+string(testConfig) {
		t.Errorf("status after registration: %v", st)
	}
	if got := r.m.FetchAvailableSessions(1000); !slices.Equal(got, []dbus.ObjectPath{path}) {
		t.Errorf("FetchAvailableSessions(owner) = %v", got)
	}
	if got := r.m.FetchAvailableSessions(1001); len(got) != 0 {
		t.Errorf("FetchAvailableSessions(stranger) = %v", got)
	}
	if got := r.m.LookupConfigName(1000, "fake-profile"); !slices.Equal(got, []dbus.ObjectPath{path}) {
		t.Errorf("LookupConfigName = %v", got)
	}
	if got, err := r.m.LookupInterface(1000, "tunfake0"); err != nil || got != path {
		t.Errorf("LookupInterface = %v, %v", got, err)
	}
	if _, err := r.m.LookupInterface(1001, "tunfake0"); errText(err) != "Interface not found" {
		t.Errorf("LookupInterface(stranger) err = %v", err)
	}
	if _, err := r.m.NewTunnel(1000, testConfig); errText(err) != textAlreadyRunning {
		t.Errorf("second NewTunnel err = %v", err)
	}
	if err := r.m.Ready(s); err != nil {
		t.Errorf("Ready: %v", err)
	}
	if err := r.m.Connect(s); err != nil {
		t.Fatalf("Connect: %v", err)
	}
	r.waitSignal(t, "CONN_CONNECTED", isStatus(path, api.StatusMinorConnConnected))
	ct, err := r.m.connectedTo(s)
	if err != nil || ct != (connectedTo{"udpv4", "198.18.0.1", 1194}) {
		t.Errorf("connected_to = %+v, %v", ct, err)
	}
	stats, err := r.m.statistics(s)
	if err != nil || stats["BYTES_OUT"] != 20 {
		t.Errorf("statistics = %v, %v", stats, err)
	}
	if err := r.m.Disconnect(s); err != nil {
		t.Fatalf("Disconnect: %v", err)
	}
	if r.m.session(path) != nil {
		t.Error("session object still there after Disconnect returned")
	}
	r.waitSignal(t, "SESS_DESTROYED", isSessionEvent(path, api.SessionEventDestroyed))
	if !r.cleaned.has(s.backendPID) {
		t.Errorf("CleanupPID(%d) not called", s.backendPID)
	}
	if s.status.Minor != api.StatusMinorProcStopped {
		t.Errorf("final status %v", s.status)
	}
}

func TestBackendKilled(t *testing.T) {
	r := newRig(t, "ok", Options{})
	path, err := r.m.NewTunnel(1000, testConfig)
	if err != nil {
		t.Fatalf("NewTunnel: %v", err)
	}
	s := r.m.session(path)
	if err := syscall.Kill(int(s.backendPID), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	r.waitSignal(t, "SESS_DESTROYED", isSessionEvent(path, api.SessionEventDestroyed))
	if r.m.session(path) != nil {
		t.Error("session still listed")
	}
	if !r.cleaned.has(s.backendPID) {
		t.Errorf("CleanupPID(%d) not called", s.backendPID)
	}
	if s.status.Minor != api.StatusMinorProcKilled || !strings.Contains(s.status.Message, "killed") {
		t.Errorf("final status %v", s.status)
	}
	if err := r.m.Ready(s); errText(err) != textStopped {
		t.Errorf("Ready on a dead session: %v", err)
	}
}

func TestBackendFailsToStart(t *testing.T) {
	for _, mode := range []string{"exit", "silent", "badpid", "refuse"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, mode, Options{StartTimeout: 3 * time.Second})
			_, err := r.m.NewTunnel(1000, testConfig)
			if !api.IsDomain(err, api.DomainRequest) || errText(err) != textCouldNotStart {
				t.Fatalf("NewTunnel err = %v, want %q", err, textCouldNotStart)
			}
			if got := r.m.FetchAvailableSessions(1000); len(got) != 0 {
				t.Errorf("sessions after failure: %v", got)
			}
			// The backend process must be gone (and cleaned up) too.
			deadline := time.Now().Add(20 * time.Second)
			for {
				r.m.mu.Lock()
				n := len(r.m.procs)
				r.m.mu.Unlock()
				if n == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("backend process still running after a failed start")
				}
				time.Sleep(20 * time.Millisecond)
			}
			r.cleaned.mu.Lock()
			n := len(r.cleaned.pids)
			r.cleaned.mu.Unlock()
			if n != 1 {
				t.Errorf("CleanupPID called %d times, want 1", n)
			}
		})
	}
}

func TestNewTunnelRefusesProfile(t *testing.T) {
	r := newRig(t, "ok", Options{})
	if _, err := r.m.NewTunnel(4242, testConfig); errText(err) != "Access to the configuration profile is denied." {
		t.Errorf("NewTunnel err = %v", err)
	}
	if _, err := r.m.NewTunnel(1000, "/not/a/config"); err == nil {
		t.Error("NewTunnel accepted a path outside the configuration tree")
	}
}

func TestNotReadyKeepsDomain(t *testing.T) {
	r := newRig(t, "notready", Options{})
	path, err := r.m.NewTunnel(1000, testConfig)
	if err != nil {
		t.Fatal(err)
	}
	err = r.m.Ready(r.m.session(path))
	if !api.IsDomain(err, api.DomainReady) || errText(err) != "Missing user credentials" {
		t.Errorf("Ready err = %v", err)
	}
}

func TestStubbornBackendIsKilled(t *testing.T) {
	r := newRig(t, "stubborn", Options{StopTimeout: time.Second})
	path, err := r.m.NewTunnel(1000, testConfig)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.m.Disconnect(r.m.session(path)); err != nil {
		t.Fatal(err)
	}
	if r.m.session(path) != nil {
		t.Error("session survived Disconnect of a backend that would not exit")
	}
}

func TestLastSignalsOfADyingBackend(t *testing.T) {
	r := newRig(t, "failexit", Options{})
	path, err := r.m.NewTunnel(1000, testConfig)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.m.Connect(r.m.session(path)); err != nil {
		t.Fatal(err)
	}
	failed := false
	r.waitSignal(t, "SESS_DESTROYED", func(s *dbus.Signal) bool {
		if isStatus(path, api.StatusMinorConnFailed)(s) {
			failed = s.Body[2] == "fake failure"
		}
		return isSessionEvent(path, api.SessionEventDestroyed)(s)
	})
	if !failed {
		t.Error("CONN_FAILED sent just before the backend exited was not re-emitted before SESS_DESTROYED")
	}
}

// A backend that does not answer is killed by the next method call, which
// fails with "Backend VPN process did not respond"; the session is closed
// with PROC_KILLED. A method the manager handles itself (AccessGrant)
// finds out with a Ping (its last answer, the registration's, is older
// than freshAnswer by then); a forwarded one (Ready) with the call itself.
func TestUnresponsiveBackendIsClosed(t *testing.T) {
	for _, method := range []string{"AccessGrant", "Ready"} {
		t.Run(method, func(t *testing.T) {
			clk := newTestClock()
			r := newRig(t, "deaf", Options{CallTimeout: time.Second, Now: clk.Now})
			path, err := r.m.NewTunnel(0, testConfig)
			if err != nil {
				t.Fatal(err)
			}
			clk.Advance(freshAnswer)
			var args []any
			if method == "AccessGrant" {
				args = []any{uint32(4321)}
			}
			err = r.client.Object(api.ServiceSessions, path).Call(api.InterfaceSessions+"."+method, 0, args...).Err
			if !api.IsDomain(err, api.DomainGDBusPP) || errText(err) != "Backend VPN process did not respond" {
				t.Errorf("%s on a hung backend: %v", method, err)
			}
			st := r.waitSignal(t, "PROC_KILLED", isStatus(path, api.StatusMinorProcKilled))
			if st.Body[2] != "Session closed, killed backend client" {
				t.Errorf("final status %v", st.Body)
			}
			r.waitSignal(t, "SESS_DESTROYED", isSessionEvent(path, api.SessionEventDestroyed))
		})
	}
}

// TestRecentAnswerSparesPing: a backend that answered one of the manager's
// calls within freshAnswer is not pinged before a method the manager
// handles itself (the front-end's LogForward right after NewTunnel and
// Ready waited for a Ping the backend, busy with its handshake, answered
// late); once its last answer is older, the Ping goes again, and a backend
// that stopped answering meanwhile is found out and its session closed.
func TestRecentAnswerSparesPing(t *testing.T) {
	clk := newTestClock()
	r, path, mon := newMonitoredSession(t, "deaf", Options{CallTimeout: time.Second, Now: clk.Now})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	obj := r.client.Object(api.ServiceSessions, path)
	// The registration's answer was just now: AccessGrant goes on without
	// a Ping (the deaf backend would never answer one).
	clk.Advance(freshAnswer - time.Millisecond)
	if err := obj.CallWithContext(ctx, api.InterfaceSessions+".AccessGrant", 0, uint32(4321)).Err; err != nil {
		t.Fatalf("AccessGrant right after the registration's answer: %v", err)
	}
	if err := mon.Sync(ctx, r.client); err != nil {
		t.Fatal(err)
	}
	for _, c := range mon.Calls() {
		if c.Member == "Ping" {
			t.Errorf("the backend was pinged although it answered %v ago", freshAnswer-time.Millisecond)
		}
	}
	// Its answer is stale now: the next call pings, the deaf backend is
	// killed and the session closed.
	clk.Advance(time.Millisecond)
	err := obj.CallWithContext(ctx, api.InterfaceSessions+".AccessRevoke", 0, uint32(4321)).Err
	if !api.IsDomain(err, api.DomainGDBusPP) || errText(err) != "Backend VPN process did not respond" {
		t.Errorf("AccessRevoke on a backend silent for freshAnswer: %v", err)
	}
	r.waitSignal(t, "PROC_KILLED", isStatus(path, api.StatusMinorProcKilled))
	r.waitSignal(t, "SESS_DESTROYED", isSessionEvent(path, api.SessionEventDestroyed))
}

// newMonitoredSession starts a rig and a session on it, then a monitor of
// every call on the rig's bus (closed with the test).
func newMonitoredSession(t *testing.T, mode string, opts Options) (*testRig, dbus.ObjectPath, *testbed.CallMonitor) {
	t.Helper()
	r := newRig(t, mode, opts)
	path, err := r.m.NewTunnel(0, testConfig)
	if err != nil {
		t.Fatal(err)
	}
	mon, err := testbed.MonitorCalls(r.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mon.Close() })
	return r, path, mon
}

// testClock is the manager's clock in tests that move it (Options.Now).
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock() *testClock { return &testClock{now: time.Unix(1_700_000_000, 0)} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// TestBackendRoundTrips counts the calls the session manager makes for a
// front-end's call (a monitor on the bus sees them all): a forwarded call
// costs one call to the backend, Connect two at once (the log level is
// read meanwhile), LogForward a Ping unless the backend answered within
// freshAnswer; nothing goes to the bus driver.
func TestBackendRoundTrips(t *testing.T) {
	clk := newTestClock()
	r, path, mon := newMonitoredSession(t, "ok", Options{Now: clk.Now})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	obj := r.client.Object(api.ServiceSessions, path)
	// The manager learns the caller's credentials on its first call.
	if _, err := obj.GetProperty(api.InterfaceSessions + ".status"); err != nil {
		t.Fatal(err)
	}
	// Re-emitting the backend's first status made the manager look up
	// the log service's owner; wait until it has, so that lookup cannot
	// fall into a count below.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		r.m.mu.Lock()
		known := r.m.logOwner != ""
		r.m.mu.Unlock()
		if known {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the manager never learnt the log service's owner")
		}
	}
	manager := r.srv.Conn().Names()[0]
	for _, tc := range []struct {
		method string
		args   []any
		stale  bool // the backend's last answer older than freshAnswer
		want   []string
	}{
		{"Ready", nil, true, []string{"Ready"}},
		{"LogForward", []any{true}, false, nil}, // Ready was answered just now
		{"LogForward", []any{true}, true, []string{"Ping"}},
		{"Connect", nil, true, []string{"Connect", "Get log_level"}},
		{"Pause", []any{"test"}, true, []string{"Pause"}},
		{"Resume", nil, true, []string{"Resume"}},
	} {
		if tc.stale {
			clk.Advance(freshAnswer)
		}
		if err := mon.Sync(ctx, r.client); err != nil {
			t.Fatal(err)
		}
		mon.Reset()
		if err := obj.CallWithContext(ctx, api.InterfaceSessions+"."+tc.method, 0, tc.args...).Err; err != nil {
			t.Fatalf("%s: %v", tc.method, err)
		}
		if err := mon.Sync(ctx, r.client); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, c := range mon.Calls() {
			if c.Sender != manager {
				continue
			}
			what := c.Member
			if c.Member == "Get" && len(c.Body) == 2 {
				what += fmt.Sprint(" ", c.Body[1])
			}
			got = append(got, what)
		}
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: the manager called %q, want %q", tc.method, got, tc.want)
		}
	}
}

// TestCallerLeavingDuringPing: a caller that leaves the bus while the
// manager pings the backend for its call ends that call only; the backend
// is neither killed nor its session closed. (A CLI command interrupted at
// the wrong moment once killed the user's VPN session: the cancelled ping
// read as a backend that did not answer.)
func TestCallerLeavingDuringPing(t *testing.T) {
	clk := newTestClock()
	r := newRig(t, "pingwait", Options{CallTimeout: 10 * time.Minute, Now: clk.Now})
	path, err := r.m.NewTunnel(0, testConfig)
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(freshAnswer) // the registration's answer no longer spares the Ping
	caller := dial(t, r.addr)
	// AccessGrant: the manager handles it itself, so a Ping goes first
	// (a forwarded call such as Ready needs none, see forwardedMethods).
	call := caller.Object(api.ServiceSessions, path).Go(api.InterfaceSessions+".AccessGrant", 0, nil, uint32(4321))
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(r.marker + ".ping"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the backend was never pinged (call: %v)", call.Err)
		}
	}
	_ = caller.Close()
	for deadline := time.Now().Add(30 * time.Second); r.srv.PendingSenders() > 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the call of a caller that left never ended")
		}
	}
	s := r.m.session(path)
	if s == nil {
		t.Fatal("the session is gone after a caller left during the ping")
	}
	s.mu.Lock()
	killed := s.killed
	s.mu.Unlock()
	if killed {
		t.Fatal("the backend was killed because a caller left during the ping")
	}
	if err := os.WriteFile(r.marker+".release", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.client.Object(api.ServiceSessions, path).Call(api.InterfaceSessions+".Ready", 0).Err; err != nil {
		t.Errorf("Ready from another caller afterwards: %v", err)
	}
}

// automatic-restart=on-failure: a backend that dies is started again after
// the backoff under the same session path (no SESS_DESTROYED), ready and
// connected again, with the LogForward subscriptions re-created.
func TestAutomaticRestart(t *testing.T) {
	r := newRig(t, "crashonce", Options{RestartDelay: 50 * time.Millisecond})
	path, err := r.m.NewTunnel(0, testConfigRestart)
	if err != nil {
		t.Fatal(err)
	}
	first := r.m.session(path)
	if err := r.m.LogForward(context.Background(), first, r.client.Names()[0], 0, true); err != nil {
		t.Fatal(err)
	}
	if err := r.m.Connect(first); err != nil {
		t.Fatal(err)
	}
	r.waitSignal(t, "restart announced", func(s *dbus.Signal) bool {
		if isSessionEvent(path, api.SessionEventDestroyed)(s) {
			t.Fatal("SESS_DESTROYED for a session that restarts")
		}
		return isStatus(path, api.StatusMinorProcKilled)(s) && strings.Contains(s.Body[2].(string), "restarting")
	})
	deadline := time.Now().Add(20 * time.Second) // a hung restart, not a speed check
	for {
		s := r.m.session(path)
		if s != nil && s != first {
			s.mu.Lock()
			st, fw := s.status, len(s.forwards)
			s.mu.Unlock()
			if st.Minor == api.StatusMinorConnConnected {
				if s.backendPID == first.backendPID {
					t.Error("same backend pid after a restart")
				}
				if fw != 1 {
					t.Errorf("%d log forwards after the restart, want 1", fw)
				}
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("session not connected again after the backend died")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := r.m.Disconnect(r.m.session(path)); err != nil {
		t.Fatal(err)
	}
	r.waitSignal(t, "SESS_DESTROYED", isSessionEvent(path, api.SessionEventDestroyed))
}

// Disconnect while a restart is pending abandons it and removes the
// session.
func TestDisconnectDuringRestartWait(t *testing.T) {
	r := newRig(t, "crashonce", Options{RestartDelay: time.Hour})
	path, err := r.m.NewTunnel(0, testConfigRestart)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.m.Connect(r.m.session(path)); err != nil {
		t.Fatal(err)
	}
	r.waitSignal(t, "restart announced", func(s *dbus.Signal) bool {
		return isStatus(path, api.StatusMinorProcKilled)(s) && strings.Contains(s.Body[2].(string), "restarting")
	})
	obj := r.client.Object(api.ServiceSessions, path)
	if err := obj.Call(api.InterfaceSessions+".Ready", 0).Err; errText(err) != textStopped {
		t.Errorf("Ready while restarting: %v", err)
	}
	if err := obj.Call(api.InterfaceSessions+".Disconnect", 0).Err; err != nil {
		t.Fatalf("Disconnect while restarting: %v", err)
	}
	r.waitSignal(t, "SESS_DESTROYED", isSessionEvent(path, api.SessionEventDestroyed))
	if r.m.session(path) != nil {
		t.Error("session kept after Disconnect")
	}
}

// busyHooks is Options.Busy in tests: how many starts hold it now.
type busyHooks struct {
	mu   sync.Mutex
	held int
}

func (b *busyHooks) busy() func() {
	b.mu.Lock()
	b.held++
	b.mu.Unlock()
	return func() {
		b.mu.Lock()
		b.held--
		b.mu.Unlock()
	}
}

func (b *busyHooks) holders() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.held
}

// TestSessionStartIsBusy: a session start holds Options.Busy (the daemon's
// GOGC 100, process.Busy) from NewTunnel until the session is connected,
// waits for the user, or is gone; a start that fails releases it at once.
// Each release is counted once.
func TestSessionStartIsBusy(t *testing.T) {
	// start makes a rig whose backend behaves as mode says and starts a
	// session on it.
	start := func(t *testing.T, mode string) (*testRig, dbus.ObjectPath, *busyHooks) {
		t.Helper()
		b := new(busyHooks)
		r := newRig(t, mode, Options{Busy: b.busy})
		path, err := r.m.NewTunnel(0, testConfig)
		if err != nil {
			t.Fatal(err)
		}
		return r, path, b
	}
	t.Run("connected", func(t *testing.T) {
		r, path, b := start(t, "ok")
		if n := b.holders(); n != 1 {
			t.Fatalf("after NewTunnel %d starts hold Busy, want 1", n)
		}
		if err := r.m.Connect(r.m.session(path)); err != nil {
			t.Fatal(err)
		}
		r.waitSignal(t, "CONN_CONNECTED", isStatus(path, api.StatusMinorConnConnected))
		if n := b.holders(); n != 0 {
			t.Errorf("connected: %d starts hold Busy, want 0", n)
		}
		if err := r.m.Disconnect(r.m.session(path)); err != nil {
			t.Fatal(err)
		}
		if n := b.holders(); n != 0 {
			t.Errorf("released twice: %d", n)
		}
	})
	t.Run("waits for the user", func(t *testing.T) {
		r, path, b := start(t, "needsuser")
		r.waitSignal(t, "CFG_REQUIRE_USER", isStatus(path, api.StatusMinorCfgRequireUser))
		if n := b.holders(); n != 0 {
			t.Errorf("waiting for the user: %d starts hold Busy, want 0", n)
		}
	})
	t.Run("disconnected before connecting", func(t *testing.T) {
		r, path, b := start(t, "ok")
		if err := r.m.Disconnect(r.m.session(path)); err != nil {
			t.Fatal(err)
		}
		if n := b.holders(); n != 0 {
			t.Errorf("session gone: %d starts hold Busy, want 0", n)
		}
	})
	t.Run("refused", func(t *testing.T) {
		var b busyHooks
		r := newRig(t, "refuse", Options{Busy: b.busy})
		if _, err := r.m.NewTunnel(0, testConfig); err == nil {
			t.Fatal("NewTunnel of a refusing backend succeeded")
		}
		if n := b.holders(); n != 0 {
			t.Errorf("failed start: %d starts hold Busy, want 0", n)
		}
	})
}
