package sessionmgr

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/ratelimit"
)

// configN is a distinct profile path per n (one session per profile and
// user is allowed anyway).
func configN(n int) dbus.ObjectPath {
	return dbus.ObjectPath(fmt.Sprintf("%s%d", testConfig, n))
}

// TestSessionCapPerUser: a user's running and starting sessions together
// stop at MaxSessionsPerUser with a request error naming the limit;
// starting ones count (two held before registration leave no room for a
// third); another user and root are not held back; root is not capped;
// an ended session makes room again.
func TestSessionCapPerUser(t *testing.T) {
	r := newRig(t, "slowreg", Options{MaxSessionsPerUser: 2})
	marker := ""
	for _, e := range r.m.launcher.(*ExecLauncher).Env {
		if v, ok := strings.CutPrefix(e, fakeMarkerEnv+"="); ok {
			marker = v
		}
	}
	type result struct {
		path dbus.ObjectPath
		err  error
	}
	started := make(chan result, 2)
	for i := range 2 {
		go func() {
			p, err := r.m.NewTunnel(1000, configN(i))
			started <- result{p, err}
		}()
	}
	// Both backends are launched and wait for the marker to register.
	for deadline := time.Now().Add(30 * time.Second); ; {
		if time.Now().After(deadline) {
			t.Fatal("the two backends never were both starting")
		}
		r.m.mu.Lock()
		n := r.m.sessionsOfLocked(1000)
		r.m.mu.Unlock()
		if n == 2 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	want := "Too many VPN sessions for this user: 2 running or starting (limit 2)"
	if _, err := r.m.NewTunnel(1000, configN(2)); !api.IsDomain(err, api.DomainRequest) || errText(err) != want {
		t.Errorf("third NewTunnel while two start: %v, want %s: %s", err, api.DomainRequest, want)
	}
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var mine []dbus.ObjectPath
	for range 2 {
		res := <-started
		if res.err != nil {
			t.Fatalf("NewTunnel within the cap: %v", res.err)
		}
		mine = append(mine, res.path)
	}
	if _, err := r.m.NewTunnel(1000, configN(3)); errText(err) != want {
		t.Errorf("third NewTunnel with two running: %v, want %s", err, want)
	}
	if _, err := r.m.NewTunnel(1001, configN(0)); err != nil {
		t.Errorf("another user's NewTunnel: %v", err)
	}
	for i := range 3 {
		if _, err := r.m.NewTunnel(0, configN(10+i)); err != nil {
			t.Errorf("root NewTunnel %d (root is not capped): %v", i, err)
		}
	}
	if err := r.m.Disconnect(r.m.session(mine[0])); err != nil {
		t.Fatal(err)
	}
	if _, err := r.m.NewTunnel(1000, configN(4)); err != nil {
		t.Errorf("NewTunnel after a session ended: %v", err)
	}
}

// reapRig is a rig whose UsableWithin timers the test fires itself.
func reapRig(t *testing.T, mode string) (r *testRig, timers chan chan time.Time, decided chan string) {
	r = newRig(t, mode, Options{UsableWithin: 42 * time.Second})
	timers = make(chan chan time.Time, 8)
	decided = make(chan string, 8)
	r.m.reapTimer = func(d time.Duration) <-chan time.Time {
		if d != 42*time.Second {
			t.Errorf("reap timer of %v, want the configured 42s", d)
		}
		ch := make(chan time.Time)
		timers <- ch
		return ch
	}
	r.m.reapDecided = func(p dbus.ObjectPath, reaped bool) { decided <- fmt.Sprint(p, " ", reaped) }
	return r, timers, decided
}

// TestUnusableSessionReaped: a session that is neither connected nor
// waiting for the user when its bound fires is ended: its backend exits,
// SESS_DESTROYED follows and the final status says why.
func TestUnusableSessionReaped(t *testing.T) {
	r, timers, decided := reapRig(t, "ok")
	path, err := r.m.NewTunnel(1000, testConfig)
	if err != nil {
		t.Fatal(err)
	}
	s := r.m.session(path)
	(<-timers) <- time.Now() // nobody called Connect
	if got := <-decided; got != string(path)+" true" {
		t.Errorf("decision %q, want reaped", got)
	}
	r.waitSignal(t, "SESS_DESTROYED", isSessionEvent(path, api.SessionEventDestroyed))
	if r.m.session(path) != nil {
		t.Error("session still there after SESS_DESTROYED")
	}
	<-s.gone
	s.mu.Lock()
	st := s.status
	s.mu.Unlock()
	if st.Minor != api.StatusMinorProcStopped || st.Message != "Session closed: it neither connected nor asked for user input within 42s" {
		t.Errorf("final status %v", st)
	}
	if !r.cleaned.has(s.backendPID) {
		t.Errorf("backend %d not cleaned up", s.backendPID)
	}
}

// TestUsableSessionsKept: a connected session and one waiting for
// credentials are left alone when their bound fires.
func TestUsableSessionsKept(t *testing.T) {
	for _, tc := range []struct {
		mode  string
		minor api.StatusMinor
	}{{"ok", api.StatusMinorConnConnected}, {"needsuser", api.StatusMinorCfgRequireUser}} {
		t.Run(tc.mode, func(t *testing.T) {
			r, timers, decided := reapRig(t, tc.mode)
			path, err := r.m.NewTunnel(1000, testConfig)
			if err != nil {
				t.Fatal(err)
			}
			timer := <-timers
			if tc.mode == "ok" {
				if err := r.m.Connect(r.m.session(path)); err != nil {
					t.Fatal(err)
				}
			}
			// The manager records the state before it passes the
			// StatusChange on to the log service (the rig's watcher).
			r.waitSignal(t, "status", isStatus(path, tc.minor))
			timer <- time.Now()
			if got := <-decided; got != string(path)+" false" {
				t.Errorf("decision %q, want kept", got)
			}
			if s := r.m.session(path); s == nil {
				t.Fatal("session gone")
			}
		})
	}
}

// TestConcurrentNewTunnelOneBackend: while a user's NewTunnel of a profile
// waits for its backend, a second NewTunnel of the same profile by the
// same user is refused as already running (the duplicate check used to
// see registered sessions only, so each call started a backend); another
// user may still start it.
func TestConcurrentNewTunnelOneBackend(t *testing.T) {
	r := newRig(t, "slowreg", Options{})
	marker := ""
	for _, e := range r.m.launcher.(*ExecLauncher).Env {
		if v, ok := strings.CutPrefix(e, fakeMarkerEnv+"="); ok {
			marker = v
		}
	}
	first := make(chan error, 1)
	go func() {
		_, err := r.m.NewTunnel(1000, testConfig)
		first <- err
	}()
	for deadline := time.Now().Add(30 * time.Second); ; {
		if time.Now().After(deadline) {
			t.Fatal("the first backend never was starting")
		}
		r.m.mu.Lock()
		n := len(r.m.procs)
		r.m.mu.Unlock()
		if n == 1 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := r.m.NewTunnel(1000, testConfig); errText(err) != textAlreadyRunning {
		t.Errorf("second NewTunnel while the first starts: %v, want %q", err, textAlreadyRunning)
	}
	second := make(chan error, 1)
	go func() {
		_, err := r.m.NewTunnel(1001, testConfig)
		second <- err
	}()
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := <-first; err != nil {
		t.Errorf("first NewTunnel: %v", err)
	}
	if err := <-second; err != nil {
		t.Errorf("another user's NewTunnel: %v", err)
	}
	r.m.mu.Lock()
	n := len(r.m.sessions)
	r.m.mu.Unlock()
	if n != 2 {
		t.Errorf("%d sessions, want 2 (one per user)", n)
	}
}

// TestNewTunnelRateLimit: a user's NewTunnel calls beyond NewTunnelRate's
// burst are refused with a request error naming the limit, before the
// profile is even looked at; another user has a bucket of their own and
// root is not limited.
func TestNewTunnelRateLimit(t *testing.T) {
	r := newRig(t, "ok", Options{NewTunnelRate: ratelimit.Rate{PerMinute: 1, Burst: 2}})
	const bad = dbus.ObjectPath("/not/a/profile")
	isRate := func(err error) bool {
		return api.IsDomain(err, api.DomainRequest) && strings.HasPrefix(errText(err), "Too many NewTunnel calls from this user (limit 1 a minute, bursts of 2); try again in ")
	}
	for i := range 2 {
		if _, err := r.m.NewTunnel(1000, bad); err == nil || isRate(err) {
			t.Fatalf("call %d within the burst: %v", i, err)
		}
	}
	if _, err := r.m.NewTunnel(1000, bad); !isRate(err) {
		t.Errorf("call over the burst: %v, want the rate-limit error", err)
	}
	if _, err := r.m.NewTunnel(1001, bad); isRate(err) {
		t.Errorf("another user limited by the first one's calls: %v", err)
	}
	for range 5 {
		if _, err := r.m.NewTunnel(0, bad); isRate(err) {
			t.Fatalf("root limited: %v", err)
		}
	}
}

// TestLogForwardsBounded: a session keeps at most MaxForwardsPerSession
// LogForward subscribers (a known one may re-subscribe), and the entry of
// a subscriber that leaves the bus is dropped.
func TestLogForwardsBounded(t *testing.T) {
	r := newRig(t, "ok", Options{})
	path, err := r.m.NewTunnel(0, testConfig)
	if err != nil {
		t.Fatal(err)
	}
	s := r.m.session(path)
	ctx := context.Background()
	leaver := dial(t, r.addr)
	name := leaver.Names()[0]
	if err := r.m.LogForward(ctx, s, name, 0, true); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < MaxForwardsPerSession; i++ {
		if err := r.m.LogForward(ctx, s, fmt.Sprintf(":9.%d", i), 0, true); err != nil {
			t.Fatalf("forward %d within the bound: %v", i, err)
		}
	}
	want := fmt.Sprintf("Too many log forwards on this session: %d (limit %d)", MaxForwardsPerSession, MaxForwardsPerSession)
	if err := r.m.LogForward(ctx, s, ":9.999", 0, true); !api.IsDomain(err, api.DomainRequest) || errText(err) != want {
		t.Errorf("forward over the bound: %v, want %s", err, want)
	}
	if err := r.m.LogForward(ctx, s, ":9.1", 0, true); err != nil {
		t.Errorf("a subscriber renewing its forward: %v", err)
	}
	_ = leaver.Close()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		s.mu.Lock()
		_, still := s.forwards[name]
		s.mu.Unlock()
		if !still {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the forward of a subscriber that left the bus is still kept")
		}
	}
	if err := r.m.LogForward(ctx, s, ":9.999", 0, true); err != nil {
		t.Errorf("forward after a subscriber left: %v", err)
	}
}

// TestNewTunnelCallerLeaves: a caller that leaves the bus while its
// NewTunnel waits for the backend's registration ends that start: the
// backend is killed and nothing is left pending (long before the start
// timeout, which would end it too).
func TestNewTunnelCallerLeaves(t *testing.T) {
	r := newRig(t, "slowreg", Options{StartTimeout: 10 * time.Minute})
	caller := dial(t, r.addr)
	call := caller.Object(api.ServiceSessions, api.PathSessions).Go(api.InterfaceSessions+".NewTunnel", 0, nil, testConfig)
	var proc Process
	for deadline := time.Now().Add(30 * time.Second); proc == nil; time.Sleep(10 * time.Millisecond) {
		r.m.mu.Lock()
		for _, ps := range r.m.pending {
			proc = ps.proc
		}
		r.m.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("the backend was never launched (call: %v)", call.Err)
		}
	}
	_ = caller.Close()
	select {
	case <-proc.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("the backend of a start whose caller left is still running")
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		r.m.mu.Lock()
		n, sessions := len(r.m.pending), len(r.m.sessions)
		r.m.mu.Unlock()
		if n == 0 && sessions == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d starts pending, %d sessions after the caller left", n, sessions)
		}
	}
}
