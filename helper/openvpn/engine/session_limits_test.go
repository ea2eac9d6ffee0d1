package engine

import (
	"errors"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/control/clocktest"
	"strings"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/control"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/datachan"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/push"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// limitsRig is one connected attempt with a fake clock, for the engine's
// own timers (the control session's are tested in package control).
type limitsRig struct {
	c     *Client
	a     *attempt
	clk   *clocktest.Fake
	start time.Time
}

func newLimitsRig(t *testing.T, pushedInactive, pushedSessionTimeout int, extra ...string) *limitsRig {
	t.Helper()
	testenv.RequireCommand(t, "openvpn") // the PKI's static keys
	text, err := testbed.PKI(t).Profile(testbed.VariantA)
	if err != nil {
		t.Fatal(err)
	}
	prof, err := profile.Parse(text + strings.Join(extra, "\n") + "\n")
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{Profile: prof, Tun: &nsTun{}})
	if err != nil {
		t.Fatal(err)
	}
	clk := clocktest.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	c.clock = clk
	ep := endpoint{host: "192.0.2.1", port: "1194", network: "udp", addr: "192.0.2.1:1194", pollTimeout: c.remotes[0].pollTimeout}
	a := newAttempt(c, newDataPlane(c), ep)
	a.connected = true
	a.startSessionTimers(clk.Now(), pushedInactive, pushedSessionTimeout)
	return &limitsRig{c: c, a: a, clk: clk, start: clk.Now()}
}

// at moves the clock to d after the connection came up and runs the
// session limits.
func (r *limitsRig) at(d time.Duration) error {
	r.clk.Set(r.start.Add(d))
	return r.a.checkSessionLimits(r.clk.Now())
}

func fatalState(err error) (State, bool) {
	var fe *fatalError
	if errors.As(err, &fe) {
		return fe.state, true
	}
	return 0, false
}

func TestTimerInactive(t *testing.T) {
	r := newLimitsRig(t, 0, 0, "inactive 5")
	if err := r.at(4 * time.Second); err != nil {
		t.Fatal(err)
	}
	r.c.ctr.TunBytesOut.Add(1) // one byte of tunnel traffic restarts it
	if err := r.at(4500 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := r.at(9 * time.Second); err != nil {
		t.Fatalf("inactive fired 4.5 s after traffic: %v", err)
	}
	err := r.at(9500 * time.Millisecond)
	if s, ok := fatalState(err); !ok || s != StateDone || !strings.Contains(err.Error(), "Inactive") {
		t.Fatalf("5 s without tunnel traffic: %v, want the session done (inactive)", err)
	}
}

func TestTimerInactiveByteThreshold(t *testing.T) {
	r := newLimitsRig(t, 0, 0, "inactive 5 1000")
	r.c.ctr.TunBytesIn.Add(600)
	if err := r.at(3 * time.Second); err != nil {
		t.Fatal(err)
	}
	// 600 bytes are below the threshold: the countdown was not restarted.
	err := r.at(5 * time.Second)
	if s, ok := fatalState(err); !ok || s != StateDone {
		t.Fatalf("600 bytes under 'inactive 5 1000': %v, want the session done", err)
	}

	r = newLimitsRig(t, 0, 0, "inactive 5 1000")
	r.c.ctr.TunBytesIn.Add(600)
	r.c.ctr.TunBytesOut.Add(400) // 1000 bytes both ways together
	if err := r.at(3 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := r.at(7 * time.Second); err != nil {
		t.Fatalf("1000 bytes at 3 s under 'inactive 5 1000' did not restart the countdown: %v", err)
	}
	if _, ok := fatalState(r.at(8 * time.Second)); !ok {
		t.Fatal("no end 5 s after the last sufficient traffic")
	}
}

func TestTimerInactivePushed(t *testing.T) {
	r := newLimitsRig(t, 7, 0)
	if err := r.at(6 * time.Second); err != nil {
		t.Fatal(err)
	}
	if s, ok := fatalState(r.at(7 * time.Second)); !ok || s != StateDone {
		t.Fatal("pushed inactive 7 did not end the session after 7 s")
	}
}

func TestTimerSessionTimeout(t *testing.T) {
	r := newLimitsRig(t, 0, 0, "session-timeout 10")
	for s := 1; s < 10; s++ {
		r.c.ctr.TunBytesIn.Add(100) // traffic does not matter
		if err := r.at(time.Duration(s) * time.Second); err != nil {
			t.Fatalf("at %d s: %v", s, err)
		}
	}
	err := r.at(10 * time.Second)
	if s, ok := fatalState(err); !ok || s != StateDone || !strings.Contains(err.Error(), "session-timeout") {
		t.Fatalf("session-timeout 10 after 10 s: %v, want the session done", err)
	}
}

// The control session's errors get the engine's weight: ping-exit and
// refused compression end the session (Failed); the rest reconnects; the
// engine's own fatal errors pass unchanged.
func TestSessionError(t *testing.T) {
	for _, tc := range []struct {
		err   error
		fatal bool
		state State
	}{
		{errors.New("ping-restart: nothing received"), false, 0},
		{errors.Join(errors.New("PUSH_REPLY"), push.ErrCompressionRefused), true, StateFailed},
		{errors.Join(control.ErrPingExit, errors.New("nothing received")), true, StateFailed},
		{control.ErrNoResponse, false, 0},
		{fatal(StateAuthFailed, "AUTH_FAILED"), true, StateAuthFailed},
		{fatal(StateCredentialsNeeded, "%w", control.ErrPingExit), true, StateCredentialsNeeded},
	} {
		err := sessionError(tc.err)
		if err.Error() != tc.err.Error() {
			t.Errorf("%v: text changed to %v", tc.err, err)
		}
		s, isFatal := fatalState(err)
		if isFatal != tc.fatal || s != tc.state {
			t.Errorf("%v: fatal %v state %v, want fatal %v state %v", tc.err, isFatal, s, tc.fatal, tc.state)
		}
	}
	if sessionError(nil) != nil {
		t.Error("nil error mapped to an error")
	}
}

// replay-window n t reaches the data keys: size and time.
func TestReplayWindowOption(t *testing.T) {
	r := newLimitsRig(t, 0, 0, "replay-window 128 5")
	if r.a.o.lim.ReplayWindow != 128 || r.a.o.lim.ReplayTime != 5*time.Second {
		t.Fatalf("replay-window 128 5 read as %d, %s", r.a.o.lim.ReplayWindow, r.a.o.lim.ReplayTime)
	}
	key := testDataKey(t, 0)
	key.SetReplayWindow(r.a.o.lim.ReplayWindow, r.a.o.lim.ReplayTime, r.c.now)
	srv := testServerKey(t, 0)
	var pkts [][]byte
	for range 200 {
		p, err := srv.Seal(nil, []byte("x"))
		if err != nil {
			t.Fatal(err)
		}
		pkts = append(pkts, p)
	}
	if _, err := key.Open(nil, pkts[199]); err != nil { // id 200
		t.Fatal(err)
	}
	if _, err := key.Open(nil, pkts[99]); err != nil { // id 100: 100 back, inside 128
		t.Fatalf("id 100 after 200 with a 128-packet window: %v", err)
	}
	if _, err := key.Open(nil, pkts[49]); !errors.Is(err, datachan.ErrReplay) { // 150 back
		t.Fatalf("id 50 after 200 with a 128-packet window: %v, want a replay error", err)
	}
	r.clk.Advance(6 * time.Second) // id 200 arrived more than 5 s ago
	if _, err := key.Open(nil, pkts[149]); !errors.Is(err, datachan.ErrReplay) {
		t.Fatalf("id 150, 6 s after id 200 with replay time 5: %v, want a replay error", err)
	}
	if _, err := key.Open(nil, pkts[199]); !errors.Is(err, datachan.ErrReplay) {
		t.Fatal("duplicate accepted")
	}
	p201, err := srv.Seal(nil, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := key.Open(nil, p201); err != nil {
		t.Fatalf("a newer packet after the time limit: %v", err)
	}
}

// AUTH_FAILED,TEMP: backoff and advance.
func TestAuthFailedTempAdvance(t *testing.T) {
	r := newLimitsRig(t, 0, 0)
	for _, tc := range []struct {
		body, advance string
		after         time.Duration
	}{
		{"TEMP:busy", "addr", defaultTempBackoff},
		{"TEMP[backoff 3,advance no]:busy", "no", 3 * time.Second},
		{"TEMP[advance remote]:busy", "remote", defaultTempBackoff},
		{"TEMP[backoff 5,advance addr]:busy", "addr", 5 * time.Second},
	} {
		err := r.a.authFailed(tc.body)
		var re *retryError
		if !errors.As(err, &re) || re.advance != tc.advance || re.after != tc.after {
			t.Errorf("AUTH_FAILED,%s: %#v, want advance %q after %s", tc.body, err, tc.advance, tc.after)
		}
	}
}

// testKeyBlock is the key block of testDataKey and testKeyMaterial.
func testKeyBlock(id uint8) []byte {
	block := make([]byte, datachan.KeyBlockLen)
	for i := range block {
		block[i] = byte(i) + id
	}
	return block
}

// testKeyMaterial is testDataKey as the control session hands it to a
// data plane.
func testKeyMaterial(t *testing.T, id uint8) *DataKey {
	t.Helper()
	k, err := control.NewDataKey("AES-256-GCM", "", id, testKeyBlock(id), 0)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func testDataKey(t *testing.T, id uint8) *datachan.Key {
	t.Helper()
	k, err := datachan.NewKey("AES-256-GCM", id, testKeyBlock(id), 0)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// testServerKey is the server's side of testDataKey: the same key block
// with the directions swapped.
func testServerKey(t *testing.T, id uint8) *datachan.Key {
	t.Helper()
	block := testKeyBlock(id)
	half := datachan.KeyBlockLen / 2
	swapped := append(append([]byte(nil), block[half:]...), block[:half]...)
	k, err := datachan.NewKey("AES-256-GCM", id, swapped, 0)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// The profile's timer options reach the control session's configuration
// (package control tests what the session does with them).
func TestSessionConfigFromProfile(t *testing.T) {
	a := newLimitsRig(t, 0, 0, "hand-window 20", "ping 10", "ping-restart 60", "ping-exit 30",
		"reneg-sec 100 60", "reneg-bytes 100000", "reneg-pkts 50", "tran-window 30", "tls-timeout 3").a
	cfg := a.sessionConfig(nil)
	l := cfg.Limits
	if cfg.HandWindow != 20*time.Second || cfg.Ping != 10*time.Second || cfg.PingRestart != 60*time.Second ||
		cfg.PingExit != 30*time.Second || cfg.TLSTimeout != 3*time.Second {
		t.Errorf("hand-window 20, ping 10, ping-restart 60, ping-exit 30, tls-timeout 3: %s %s %s %s %s",
			cfg.HandWindow, cfg.Ping, cfg.PingRestart, cfg.PingExit, cfg.TLSTimeout)
	}
	if l.RenegSec != 100*time.Second || l.RenegSecMin != 60*time.Second || l.RenegBytes != 100000 || l.RenegPkts != 50 ||
		l.TranWindow != 30*time.Second {
		t.Errorf("reneg-sec 100 60, reneg-bytes 100000, reneg-pkts 50, tran-window 30: %+v", l)
	}
	if cfg.Clock != a.c.clock || cfg.Plane != control.KeyPlane(a.user) || cfg.FirstResponse != a.ep.firstResponseTimeout() {
		t.Error("the session does not use the engine's clock, the userspace plane and the endpoint's poll timeout")
	}
	// Defaults: OpenVPN's.
	d := newLimitsRig(t, 0, 0).a.sessionConfig(nil)
	if d.HandWindow != 60*time.Second || d.PingRestart != 120*time.Second || d.Ping != 0 || d.PingExit != 0 ||
		d.Limits.RenegSec != 3600*time.Second || d.Limits.TranWindow != 3600*time.Second {
		t.Errorf("defaults: hand-window %s, ping-restart %s, ping %s, ping-exit %s, reneg-sec %s, tran-window %s",
			d.HandWindow, d.PingRestart, d.Ping, d.PingExit, d.Limits.RenegSec, d.Limits.TranWindow)
	}
}
