package engine

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/ctlmsg"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/ctlwrap"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/datachan"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/push"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/reliable"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/wire"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// fakeClock is the injected Clock: time moves only when a test says so.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

func (f *fakeClock) advance(d time.Duration) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.t = f.t.Add(d)
	return f.t
}

// timerRig is one attempt with a fake clock and a recording transport,
// either still handshaking or connected with key 0 as primary.
type timerRig struct {
	c   *Client
	a   *attempt
	clk *fakeClock
	tr  *recordingTransport
	k0  *keyState
}

func newTimerRig(t *testing.T, connected bool, extra ...string) *timerRig {
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
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	c.clock = clk
	tr := &recordingTransport{closed: make(chan struct{})}
	ep := endpoint{host: "192.0.2.1", port: "1194", network: "udp", addr: "192.0.2.1:1194", pollTimeout: c.remotes[0].pollTimeout}
	a := newAttempt(c, newDataPlane(c), ep)
	a.ctx, a.cancel = context.WithCancel(context.Background())
	a.tr = tr
	a.wrap = ctlwrap.NewPlain()
	a.localSID = wire.SessionID{1, 1, 1, 1, 1, 1, 1, 1}
	a.remoteSID = wire.SessionID{2, 2, 2, 2, 2, 2, 2, 2}
	a.gotReset = true
	now := clk.Now()
	a.started = now
	a.renegAfter = a.o.lim.renegAfter(rand.New(rand.NewPCG(1, 2)))
	k0 := &keyState{id: 0, rel: reliable.New(reliable.Config{Timeout: 2 * time.Second}), started: now,
		conn: newCtlConn(a.wake, tr.RemoteAddr(), tr.RemoteAddr())}
	a.keys[0], a.cur = k0, k0
	t.Cleanup(a.shutdown)
	r := &timerRig{c: c, a: a, clk: clk, tr: tr, k0: k0}
	if connected {
		a.heard = true
		a.lastRecv.Store(now.UnixNano())
		r.connect(t, 0, 0)
	}
	return r
}

// connect makes key 0 the primary key (what establish does after the push
// reply), with pushed inactive and session-timeout values.
func (r *timerRig) connect(t *testing.T, pushedInactive, pushedSessionTimeout int) {
	t.Helper()
	a := r.a
	r.k0.established = r.clk.Now()
	r.k0.server = &ctlmsg.ServerKeyMethod2{}
	a.comp = framingOf(push.CompressionNone)
	if err := a.installKey(SlotPrimary, r.k0, testKeyMaterial(t, 0)); err != nil {
		t.Fatal(err)
	}
	a.primary = r.k0
	a.dp.lastSent.Store(r.clk.Now().UnixNano())
	a.connected = true
	a.startSessionTimers(r.clk.Now(), pushedInactive, pushedSessionTimeout)
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
	k, err := newDataKey("AES-256-GCM", "", id, testKeyBlock(id), 0)
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

// at moves the clock to d after the rig's start and runs the timers.
func (r *timerRig) at(d time.Duration) error {
	r.clk.mu.Lock()
	r.clk.t = r.a.started.Add(d)
	r.clk.mu.Unlock()
	return r.a.checkTimers(r.clk.Now())
}

// atHeard is at with a packet from the server arriving just before.
func (r *timerRig) atHeard(d time.Duration) error {
	r.clk.mu.Lock()
	r.clk.t = r.a.started.Add(d)
	r.clk.mu.Unlock()
	r.received()
	return r.a.checkTimers(r.clk.Now())
}

// drain forgets what was written.
func (r *timerRig) drain() {
	r.tr.mu.Lock()
	r.tr.written = nil
	r.tr.mu.Unlock()
}

// received pretends a packet from the server arrived now.
func (r *timerRig) received() { r.a.lastRecv.Store(r.clk.Now().UnixNano()) }

func fatalState(err error) (State, bool) {
	var fe *fatalError
	if errors.As(err, &fe) {
		return fe.state, true
	}
	return 0, false
}

func TestTimerPing(t *testing.T) {
	r := newTimerRig(t, true, "ping 10")
	if err := r.at(9 * time.Second); err != nil {
		t.Fatal(err)
	}
	if n := len(r.tr.written); n != 0 {
		t.Fatalf("%d packets sent before the ping interval", n)
	}
	if err := r.at(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	r.tr.mu.Lock()
	sent := r.tr.written
	r.tr.written = nil
	r.tr.mu.Unlock()
	if len(sent) != 1 {
		t.Fatalf("%d packets sent at the ping interval, want one keepalive", len(sent))
	}
	if op, _ := wire.SplitHeader(sent[0][0]); !op.IsData() {
		t.Fatalf("keepalive went out as %v, want a data packet", op)
	}
	// The keepalive counts as sending: the next one is due 10 s later.
	if err := r.at(19 * time.Second); err != nil {
		t.Fatal(err)
	}
	if len(r.tr.written) != 0 {
		t.Fatal("second keepalive before its interval")
	}
}

func TestTimerPingRestart(t *testing.T) {
	r := newTimerRig(t, true) // default ping-restart 120
	if err := r.at(100 * time.Second); err != nil {
		t.Fatal(err)
	}
	r.received() // any packet restarts the countdown
	if err := r.at(219 * time.Second); err != nil {
		t.Fatalf("ping-restart fired 119 s after the last packet: %v", err)
	}
	err := r.at(220 * time.Second)
	if err == nil || !strings.Contains(err.Error(), "ping-restart") {
		t.Fatalf("120 s without a packet: %v, want ping-restart", err)
	}
	if _, isFatal := fatalState(err); isFatal {
		t.Fatal("ping-restart ended the session; it must reconnect")
	}
}

func TestTimerPingExit(t *testing.T) {
	r := newTimerRig(t, true, "ping-exit 30")
	if err := r.at(29 * time.Second); err != nil {
		t.Fatal(err)
	}
	err := r.at(30 * time.Second)
	if s, ok := fatalState(err); !ok || s != StateFailed || !strings.Contains(err.Error(), "ping-exit") {
		t.Fatalf("30 s without a packet under ping-exit 30: %v, want the session to end (failed)", err)
	}
}

// A pushed ping-restart replaces the profile's ping-exit (one timeout
// action, the last one set wins, as in OpenVPN).
func TestTimerPushedPingRestartReplacesPingExit(t *testing.T) {
	r := newTimerRig(t, false, "ping-exit 30")
	r.a.heard = true
	r.a.lastRecv.Store(r.clk.Now().UnixNano())
	r.connect(t, 0, 0)
	r.a.pingExit, r.a.pingRst = 0, 60*time.Second // what establish does with a pushed "ping-restart 60"
	err := r.at(60 * time.Second)
	if _, isFatal := fatalState(err); err == nil || isFatal {
		t.Fatalf("pushed ping-restart 60: %v, want a reconnect", err)
	}
}

func TestTimerInactive(t *testing.T) {
	r := newTimerRig(t, true, "inactive 5")
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
	r := newTimerRig(t, true, "inactive 5 1000")
	r.c.ctr.TunBytesIn.Add(600)
	if err := r.at(3 * time.Second); err != nil {
		t.Fatal(err)
	}
	// 600 bytes are below the threshold: the countdown was not restarted.
	err := r.at(5 * time.Second)
	if s, ok := fatalState(err); !ok || s != StateDone {
		t.Fatalf("600 bytes under 'inactive 5 1000': %v, want the session done", err)
	}

	r = newTimerRig(t, true, "inactive 5 1000")
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
	r := newTimerRig(t, false)
	r.a.heard = true
	r.a.lastRecv.Store(r.clk.Now().UnixNano())
	r.connect(t, 7, 0)
	r.received()
	if err := r.at(6 * time.Second); err != nil {
		t.Fatal(err)
	}
	if s, ok := fatalState(r.at(7 * time.Second)); !ok || s != StateDone {
		t.Fatal("pushed inactive 7 did not end the session after 7 s")
	}
}

func TestTimerSessionTimeout(t *testing.T) {
	r := newTimerRig(t, true, "session-timeout 10")
	for s := 1; s < 10; s++ {
		r.c.ctr.TunBytesIn.Add(100) // traffic does not matter
		r.clk.advance(0)
		if err := r.at(time.Duration(s) * time.Second); err != nil {
			t.Fatalf("at %d s: %v", s, err)
		}
		r.received()
	}
	err := r.at(10 * time.Second)
	if s, ok := fatalState(err); !ok || s != StateDone || !strings.Contains(err.Error(), "session-timeout") {
		t.Fatalf("session-timeout 10 after 10 s: %v, want the session done", err)
	}
}

func TestTimerHandWindow(t *testing.T) {
	r := newTimerRig(t, false, "hand-window 20")
	r.a.heard = true
	if err := r.at(19 * time.Second); err != nil {
		t.Fatal(err)
	}
	err := r.at(20 * time.Second)
	if err == nil || !strings.Contains(err.Error(), "hand-window") {
		t.Fatalf("no key after hand-window 20: %v", err)
	}
	if _, isFatal := fatalState(err); isFatal {
		t.Fatal("hand-window ended the session; the reconnect policy must try again")
	}
}

// A renegotiated key must also complete within hand-window.
func TestTimerHandWindowRenegotiation(t *testing.T) {
	r := newTimerRig(t, true, "hand-window 20", "reneg-sec 0")
	if _, err := r.a.startRenegotiation(1); err != nil {
		t.Fatal(err)
	}
	r.received()
	if err := r.at(19 * time.Second); err != nil {
		t.Fatal(err)
	}
	r.received()
	if err := r.at(20 * time.Second); err == nil || !strings.Contains(err.Error(), "renegotiation of key 1") {
		t.Fatalf("renegotiation not done within hand-window: %v", err)
	}
}

func TestTimerServerPollTimeout(t *testing.T) {
	for _, tc := range []struct {
		line string
		want time.Duration
	}{
		{"", defaultServerPoll},
		{"server-poll-timeout 4", 4 * time.Second},
		{"connect-timeout 7", 7 * time.Second},
	} {
		r := newTimerRig(t, false, tc.line)
		if err := r.at(tc.want - time.Second); err != nil {
			t.Fatalf("%q: %v before the timeout", tc.line, err)
		}
		err := r.at(tc.want)
		if !errors.Is(err, errNoResponse) {
			t.Fatalf("%q: nothing heard for %s: %v, want no response", tc.line, tc.want, err)
		}
		if _, isFatal := fatalState(err); isFatal {
			t.Fatalf("%q: no response ended the session; the policy decides", tc.line)
		}
	}
}

// soft reset sent on key 1 by the client?
func (r *timerRig) renegotiating(t *testing.T) bool {
	t.Helper()
	if err := r.a.flush(); err != nil {
		t.Fatal(err)
	}
	r.tr.mu.Lock()
	defer r.tr.mu.Unlock()
	found := false
	for _, b := range r.tr.written {
		if op, _ := wire.SplitHeader(b[0]); op.IsData() {
			continue
		}
		p, err := wire.ParseControlPlain(b)
		if err != nil {
			t.Fatalf("unparsable control packet %x: %v", b, err)
		}
		if p.Opcode == wire.OpControlSoftResetV1 && p.KeyID == 1 {
			found = true
		}
	}
	r.tr.written = nil
	return found
}

func TestKeyLimitRenegSecDefault(t *testing.T) {
	r := newTimerRig(t, true)
	if err := r.atHeard(3599 * time.Second); err != nil {
		t.Fatal(err)
	}
	if r.renegotiating(t) {
		t.Fatal("renegotiated before 3600 s")
	}
	if err := r.atHeard(3600 * time.Second); err != nil {
		t.Fatal(err)
	}
	if !r.renegotiating(t) || r.a.cur.id != 1 {
		t.Fatal("no SOFT_RESET on key 1 after the default reneg-sec 3600")
	}
}

func TestKeyLimitRenegSecOff(t *testing.T) {
	r := newTimerRig(t, true, "reneg-sec 0")
	if err := r.atHeard(100 * time.Hour); err != nil {
		t.Fatal(err)
	}
	if r.renegotiating(t) {
		t.Fatal("reneg-sec 0 renegotiated")
	}
}

// "reneg-sec max min" draws the lifetime between min and max, once per
// connection; a client without min uses max exactly (OpenVPN only
// jitters by default on servers).
func TestKeyLimitRenegSecJitter(t *testing.T) {
	l := limitOptions{renegSec: 3600 * time.Second}
	rng := rand.New(rand.NewPCG(7, 8))
	if got := l.renegAfter(rng); got != 3600*time.Second {
		t.Fatalf("reneg-sec 3600 without min: %s", got)
	}
	l.renegSecMin = 3000 * time.Second
	seen := map[time.Duration]bool{}
	for range 2000 {
		d := l.renegAfter(rng)
		if d <= 3000*time.Second || d > 3600*time.Second || d%time.Second != 0 {
			t.Fatalf("reneg-sec 3600 3000 drew %s", d)
		}
		seen[d] = true
	}
	if len(seen) < 300 {
		t.Fatalf("only %d distinct lifetimes in 2000 draws: no jitter", len(seen))
	}
	// From the profile, drawn per connection.
	r := newTimerRig(t, true, "reneg-sec 100 60")
	if r.a.renegAfter <= 60*time.Second || r.a.renegAfter > 100*time.Second {
		t.Fatalf("reneg-sec 100 60: key lifetime %s", r.a.renegAfter)
	}
	if err := r.at(r.a.renegAfter - time.Second); err != nil {
		t.Fatal(err)
	}
	r.received()
	if r.renegotiating(t) {
		t.Fatal("renegotiated before the drawn lifetime")
	}
	if err := r.at(r.a.renegAfter); err != nil {
		t.Fatal(err)
	}
	if !r.renegotiating(t) {
		t.Fatal("no renegotiation at the drawn lifetime")
	}
}

func TestKeyLimitRenegBytes(t *testing.T) {
	r := newTimerRig(t, true, "reneg-bytes 100000")
	payload := make([]byte, 1000)
	for r.k0.dataKey.Usage().Bytes < 99000 {
		if err := r.a.dp.send(payload[:60]); err != nil {
			t.Fatal(err)
		}
	}
	for r.k0.dataKey.Usage().Bytes+100 < 100000 {
		if err := r.a.dp.send(payload[:60]); err != nil {
			t.Fatal(err)
		}
	}
	r.drain()
	if err := r.at(time.Second); err != nil {
		t.Fatal(err)
	}
	if r.renegotiating(t) {
		t.Fatalf("renegotiated at %d bytes, under reneg-bytes 100000", r.k0.dataKey.Usage().Bytes)
	}
	for r.k0.dataKey.Usage().Bytes < 100000 {
		if err := r.a.dp.send(payload[:60]); err != nil {
			t.Fatal(err)
		}
	}
	r.drain()
	r.received()
	if err := r.at(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	if !r.renegotiating(t) {
		t.Fatalf("no renegotiation at %d bytes with reneg-bytes 100000", r.k0.dataKey.Usage().Bytes)
	}
}

func TestKeyLimitRenegPkts(t *testing.T) {
	r := newTimerRig(t, true, "reneg-pkts 50")
	// Received packets count too: 20 from the server, 29 sent.
	srv := testServerKey(t, 0)
	for range 20 {
		pkt, err := srv.Seal(nil, []byte("hello"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.k0.dataKey.Open(nil, pkt); err != nil {
			t.Fatal(err)
		}
	}
	for range 29 {
		if err := r.a.dp.sendPing(); err != nil {
			t.Fatal(err)
		}
	}
	r.drain()
	if err := r.at(time.Second); err != nil {
		t.Fatal(err)
	}
	if r.renegotiating(t) {
		t.Fatal("renegotiated after 49 packets with reneg-pkts 50")
	}
	if err := r.a.dp.sendPing(); err != nil {
		t.Fatal(err)
	}
	r.drain()
	if err := r.at(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	if !r.renegotiating(t) {
		t.Fatal("no renegotiation after 50 packets with reneg-pkts 50")
	}
}

// testServerKey is the server's side of testDataKey: the same key block
// with the directions swapped.
func testServerKey(t *testing.T, id uint8) *datachan.Key {
	t.Helper()
	block := make([]byte, datachan.KeyBlockLen)
	for i := range block {
		block[i] = byte(i) + id
	}
	half := datachan.KeyBlockLen / 2
	swapped := append(append([]byte(nil), block[half:]...), block[:half]...)
	k, err := datachan.NewKey("AES-256-GCM", id, swapped, 0)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// The AEAD usage limit: AES-GCM keys are replaced at 7/8 of 2^36-1
// plaintext blocks plus packets in either direction; ChaCha20-Poly1305
// has no such limit.
func TestKeyLimitAEAD(t *testing.T) {
	l := limitOptions{}
	under := datachan.Usage{SentBlocks: aeadBlockLimit - 1000, SentID: 1000}
	if why := l.renegReason(0, 0, under, "AES-256-GCM"); why != "" {
		t.Fatalf("at the limit exactly: %q", why)
	}
	over := datachan.Usage{SentBlocks: aeadBlockLimit - 1000, SentID: 1001}
	if why := l.renegReason(0, 0, over, "AES-256-GCM"); why != "AEAD usage limit" {
		t.Fatalf("send side over the limit: %q", why)
	}
	recv := datachan.Usage{RecvBlocks: aeadBlockLimit, RecvID: 1}
	if why := l.renegReason(0, 0, recv, "AES-128-GCM"); why != "AEAD usage limit" {
		t.Fatalf("receive side over the limit: %q", why)
	}
	if why := l.renegReason(0, 0, recv, "CHACHA20-POLY1305"); why != "" {
		t.Fatalf("ChaCha20-Poly1305 has no usage limit: %q", why)
	}
	if aeadBlockLimit != 60129542137 {
		t.Fatalf("limit %d, want OpenVPN's (2^36-1)/8*7", aeadBlockLimit)
	}
	// And the rig: a key whose counters reach the limit is replaced.
	r := newTimerRig(t, true)
	srv := testServerKey(t, 0)
	pkt, err := srv.Seal(nil, make([]byte, 1400))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.k0.dataKey.Open(nil, pkt); err != nil {
		t.Fatal(err)
	}
	if u := r.k0.dataKey.Usage(); u.RecvBlocks != 88 || u.RecvID != 1 || u.Packets != 1 {
		t.Fatalf("usage after one 1400-byte packet: %+v", u)
	}
	if exhausted := (datachan.Usage{SentID: datachan.RenegotiateAt}); l.renegReason(0, 0, exhausted, "CHACHA20-POLY1305") == "" {
		t.Fatal("packet ids running out did not call for a new key")
	}
}

// tran-window: the previous key decrypts until tran-window after the
// renegotiation started, then it is dropped.
func TestKeyLimitTranWindow(t *testing.T) {
	r := newTimerRig(t, true, "tran-window 30", "reneg-sec 0")
	r.clk.advance(100 * time.Second)
	r.received()
	k1, err := r.a.startRenegotiation(1)
	if err != nil {
		t.Fatal(err)
	}
	r.clk.advance(2 * time.Second) // the handshake took 2 s
	if err := r.a.useKey(k1, testKeyMaterial(t, 1)); err != nil {
		t.Fatal(err)
	}
	if r.a.conn.RecvKey(0) == nil || r.a.conn.RecvKey(1) == nil || r.a.primary != k1 || r.a.lame != r.k0 {
		t.Fatal("after the switch both keys must decrypt, key 1 primary")
	}
	r.received()
	if err := r.at(129 * time.Second); err != nil {
		t.Fatal(err)
	}
	if r.a.conn.RecvKey(0) == nil {
		t.Fatal("lame duck dropped before tran-window")
	}
	r.received()
	if err := r.at(130 * time.Second); err != nil {
		t.Fatal(err)
	}
	if r.a.conn.RecvKey(0) != nil || r.a.conn.RecvKey(1) == nil || r.a.keys[0] != nil || r.a.lame != nil {
		t.Fatal("lame duck still decrypting 30 s after the renegotiation started (tran-window 30)")
	}
}

// A SOFT_RESET for the primary key's id while another key is being
// negotiated is a late retransmission: it must not replace the primary.
func TestSoftResetOnPrimaryIDKeepsPrimary(t *testing.T) {
	r := newTimerRig(t, true, "reneg-sec 0")
	k1, err := r.a.startRenegotiation(1)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.a.useKey(k1, testKeyMaterial(t, 1)); err != nil {
		t.Fatal(err)
	}
	k2, err := r.a.startRenegotiation(2)
	if err != nil {
		t.Fatal(err)
	}
	if r.a.cur != k2 || r.a.primary != k1 {
		t.Fatal("setup: want key 2 negotiating, key 1 primary")
	}
	late := wire.ControlPacket{Opcode: wire.OpControlSoftResetV1, KeyID: 1, SessionID: r.a.remoteSID, PacketID: 0}
	if err := r.a.handlePacket(late.AppendPlain(nil)); err != nil {
		t.Fatal(err)
	}
	if r.a.keys[1] != k1 || r.a.primary != k1 || r.a.cur != k2 || k1.retired {
		t.Fatal("a SOFT_RESET on the primary's key id replaced the primary key")
	}
	if r.a.conn.RecvKey(1) == nil {
		t.Fatal("primary key no longer decrypts")
	}
	// A SOFT_RESET on a key id nobody uses still starts a renegotiation.
	fresh := wire.ControlPacket{Opcode: wire.OpControlSoftResetV1, KeyID: 3, SessionID: r.a.remoteSID, PacketID: 0}
	if err := r.a.handlePacket(fresh.AppendPlain(nil)); err != nil {
		t.Fatal(err)
	}
	if r.a.keys[3] == nil || r.a.cur != r.a.keys[3] {
		t.Fatal("a server SOFT_RESET on a new key id did not start a renegotiation")
	}
}

// replay-window n t reaches the data keys: size and time.
func TestReplayWindowOption(t *testing.T) {
	r := newTimerRig(t, true, "replay-window 128 5")
	if r.a.o.lim.replayWindow != 128 || r.a.o.lim.replayTime != 5*time.Second {
		t.Fatalf("replay-window 128 5 read as %d, %s", r.a.o.lim.replayWindow, r.a.o.lim.replayTime)
	}
	key := testDataKey(t, 0)
	key.SetReplayWindow(r.a.o.lim.replayWindow, r.a.o.lim.replayTime, r.c.now)
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
	r.clk.advance(6 * time.Second) // id 200 arrived more than 5 s ago
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

// A huge AUTH_PENDING timeout must not overflow time.Duration: the wait
// is OpenVPN's max(reneg-sec/2, hand-window).
func TestAuthPendingHugeTimeout(t *testing.T) {
	r := newTimerRig(t, false)
	r.a.heard = true
	r.a.authPending("timeout 9223372036854775807")
	if want := 1800 * time.Second; r.a.handWindow != want {
		t.Fatalf("hand window after a huge AUTH_PENDING timeout: %s, want %s", r.a.handWindow, want)
	}
	if err := r.at(1799 * time.Second); err != nil {
		t.Fatalf("handshake ended while the server said auth is pending: %v", err)
	}
	if err := r.at(1800 * time.Second); err == nil {
		t.Fatal("handshake never times out")
	}
	r = newTimerRig(t, false)
	r.a.heard = true
	r.a.authPending("timeout 90")
	if r.a.handWindow != 90*time.Second {
		t.Fatalf("AUTH_PENDING timeout 90: hand window %s", r.a.handWindow)
	}
}

// AUTH_FAILED,TEMP: backoff and advance.
func TestAuthFailedTempAdvance(t *testing.T) {
	r := newTimerRig(t, false)
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
