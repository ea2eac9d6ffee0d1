package control

import (
	"context"
	"crypto/tls"
	"errors"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/control/clocktest"
	"math"
	"math/rand/v2"
	"net"
	"slices"
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
)

// recordingConn keeps what the session writes.
type recordingConn struct {
	mu      sync.Mutex
	written [][]byte
}

func (r *recordingConn) WritePacket(p []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.written = append(r.written, slices.Clone(p))
	return nil
}

func (r *recordingConn) RemoteAddr() net.Addr {
	return &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 1194}
}

// take returns the control packets written since the last call.
func (r *recordingConn) take(t *testing.T) []wire.ControlPacket {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []wire.ControlPacket
	for _, b := range r.written {
		p, err := wire.ParseControlPlain(b)
		if err != nil {
			t.Fatalf("session wrote an unparsable packet %x: %v", b, err)
		}
		out = append(out, p)
	}
	r.written = nil
	return out
}

// fakeHandler is the connection around the session: a data channel whose
// activity the test sets, and a record of what the session asked for.
type fakeHandler struct {
	clk                *clocktest.Fake
	lastRecv, lastSent time.Time
	pings, rotations   int
	replies            []*push.Reply
	messages           []ctlmsg.Message
	onPush             func(*push.Reply) error // what the engine does next; nil: nothing
}

func (h *fakeHandler) KeyMethod2(*ctlmsg.KeyMethod2) error { return nil }
func (h *fakeHandler) DataCipher(pushed string) (string, error) {
	if pushed == "" {
		return "AES-256-GCM", nil
	}
	return pushed, nil
}
func (h *fakeHandler) PushReply(r *push.Reply) error {
	h.replies = append(h.replies, r)
	if h.onPush != nil {
		return h.onPush(r)
	}
	return nil
}
func (h *fakeHandler) Message(m ctlmsg.Message) error {
	h.messages = append(h.messages, m)
	return nil
}
func (h *fakeHandler) KeyRotated()             { h.rotations++ }
func (h *fakeHandler) LastReceived() time.Time { return h.lastRecv }
func (h *fakeHandler) LastSent() time.Time     { return h.lastSent }

// SendPing is a keepalive on the data channel: it counts as sending.
func (h *fakeHandler) SendPing() error {
	h.pings++
	h.lastSent = h.clk.Now()
	return nil
}

// fakeMeter is a data key's usage as the test sets it.
type fakeMeter struct{ u datachan.Usage }

func (m *fakeMeter) Usage() datachan.Usage { return m.u }

// fakePlane is a metered key plane holding key ids by slot.
type fakePlane struct {
	slots   [2]*DataKey // copies (the session clears what it hands over)
	meters  map[uint8]*fakeMeter
	deletes int
}

func (p *fakePlane) InstallKey(slot KeySlot, k *DataKey) error {
	c := *k
	p.slots[slot] = &c
	if p.meters == nil {
		p.meters = map[uint8]*fakeMeter{}
	}
	p.meters[k.KeyID] = &fakeMeter{}
	return nil
}

func (p *fakePlane) SwapKeys() error {
	if p.slots[SlotSecondary] == nil {
		return errors.New("secondary slot empty")
	}
	p.slots[0], p.slots[1] = p.slots[1], p.slots[0]
	return nil
}

func (p *fakePlane) DeleteKey(slot KeySlot) error {
	p.slots[slot] = nil
	p.deletes++
	return nil
}

func (p *fakePlane) Meter(id uint8) Meter {
	if m, ok := p.meters[id]; ok {
		return m
	}
	return nil
}

// decrypts reports the key ids the plane holds, primary first.
func (p *fakePlane) decrypts(id uint8) bool {
	for _, k := range p.slots {
		if k != nil && k.KeyID == id {
			return true
		}
	}
	return false
}

func (p *fakePlane) primaryID() int {
	if k := p.slots[SlotPrimary]; k != nil {
		return int(k.KeyID)
	}
	return -1
}

// rig is one session with a fake clock, a recording transport, a fake
// handler and key plane, either still handshaking or connected with key 0
// as primary. No socket, no TLS peer and no server.
type rig struct {
	s     *Session
	clk   *clocktest.Fake
	conn  *recordingConn
	h     *fakeHandler
	plane *fakePlane
	k0    *key
}

// testConfig is the session configuration of a rig: OpenVPN's defaults.
func testConfig(clk *clocktest.Fake, conn Conn, plane KeyPlane) Config {
	return Config{
		Clock:         clk,
		Conn:          conn,
		Wrap:          ctlwrap.NewPlain(),
		NewTLS:        func() (*tls.Config, error) { return &tls.Config{InsecureSkipVerify: true}, nil },
		Server:        "192.0.2.1:1194/udp",
		Started:       clk.Now(),
		FirstResponse: 120 * time.Second,
		TLSTimeout:    2 * time.Second,
		HandWindow:    60 * time.Second,
		MaxPacket:     1250,
		Limits:        LimitsFromProfile(&profile.Profile{}),
		PingRestart:   120 * time.Second,
		Push:          &push.Assembler{},
		Plane:         plane,
	}
}

func newRig(t *testing.T, connected bool, configure ...func(*Config)) *rig {
	t.Helper()
	clk := clocktest.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	conn := &recordingConn{}
	plane := &fakePlane{}
	h := &fakeHandler{clk: clk}
	cfg := testConfig(clk, conn, plane)
	for _, f := range configure {
		f(&cfg)
	}
	s, err := New(context.Background(), cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	s.localSID = wire.SessionID{1, 1, 1, 1, 1, 1, 1, 1}
	s.remoteSID = wire.SessionID{2, 2, 2, 2, 2, 2, 2, 2}
	s.gotReset = true
	now := clk.Now()
	// Key 0 as the reset exchange leaves it, without a TLS session: the
	// timers do not need one.
	k0 := &key{id: 0, rel: reliable.New(reliable.Config{Timeout: 2 * time.Second}), started: now,
		conn: newCtlConn(s.wake, conn.RemoteAddr(), conn.RemoteAddr())}
	k0.conn.readerGone() // no TLS reader: nothing holds its acknowledgements
	s.keys[0], s.cur = k0, k0
	t.Cleanup(s.Close)
	r := &rig{s: s, clk: clk, conn: conn, h: h, plane: plane, k0: k0}
	if connected {
		r.received()
		r.connect(t)
	}
	return r
}

// connect makes key 0 the primary key, as FirstKey and Activate do after
// the push reply.
func (r *rig) connect(t *testing.T) {
	t.Helper()
	r.s.heard = true
	r.k0.established = r.clk.Now()
	r.k0.server = &ctlmsg.ServerKeyMethod2{}
	if err := r.s.Activate(testKeyMaterial(t, 0)); err != nil {
		t.Fatal(err)
	}
	r.h.lastSent = r.clk.Now()
}

// testKeyMaterial is a data key as the session derives one.
func testKeyMaterial(t *testing.T, id uint8) *DataKey {
	t.Helper()
	block := make([]byte, datachan.KeyBlockLen)
	for i := range block {
		block[i] = byte(i) + id
	}
	k, err := NewDataKey("AES-256-GCM", "", id, block, 0)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// at moves the clock to d after the rig's start and runs the timers.
func (r *rig) at(d time.Duration) error {
	r.clk.Set(r.s.started.Add(d))
	return r.s.CheckTimers(r.clk.Now())
}

// atHeard is at with a data packet from the server arriving just before.
func (r *rig) atHeard(d time.Duration) error {
	r.clk.Set(r.s.started.Add(d))
	r.received()
	return r.s.CheckTimers(r.clk.Now())
}

// received pretends a data packet from the server arrived now.
func (r *rig) received() { r.h.lastRecv = r.clk.Now() }

// renegotiatesAt runs the timers at d with a packet just received and
// says whether that started a renegotiation on key 1.
func (r *rig) renegotiatesAt(t *testing.T, d time.Duration) bool {
	t.Helper()
	if err := r.atHeard(d); err != nil {
		t.Fatal(err)
	}
	return r.renegotiating(t)
}

// renegotiating flushes and says whether the client sent a SOFT_RESET
// on key 1.
func (r *rig) renegotiating(t *testing.T) bool {
	t.Helper()
	if err := r.s.Flush(); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range r.conn.take(t) {
		if p.Opcode == wire.OpControlSoftResetV1 && p.KeyID == 1 {
			found = true
		}
	}
	return found
}

func TestTimerPing(t *testing.T) {
	r := newRig(t, true, func(c *Config) { c.Ping = 10 * time.Second })
	if err := r.atHeard(9 * time.Second); err != nil {
		t.Fatal(err)
	}
	if r.h.pings != 0 {
		t.Fatalf("%d pings before the ping interval", r.h.pings)
	}
	if err := r.atHeard(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if r.h.pings != 1 {
		t.Fatalf("%d pings at the ping interval, want one keepalive", r.h.pings)
	}
	// The keepalive counts as sending: the next one is due 10 s later.
	if err := r.atHeard(19 * time.Second); err != nil {
		t.Fatal(err)
	}
	if r.h.pings != 1 {
		t.Fatal("second keepalive before its interval")
	}
	// Data sent by the tunnel postpones it too.
	r.h.lastSent = r.clk.Now()
	if err := r.atHeard(28 * time.Second); err != nil || r.h.pings != 1 {
		t.Fatalf("keepalive 9 s after tunnel traffic: %d pings, %v", r.h.pings, err)
	}
	if err := r.atHeard(29 * time.Second); err != nil || r.h.pings != 2 {
		t.Fatalf("no keepalive 10 s after tunnel traffic: %d pings, %v", r.h.pings, err)
	}
}

// An offloaded data channel keeps itself alive: no pings, no
// ping-restart from the session.
func TestTimerKeepaliveOffloaded(t *testing.T) {
	r := newRig(t, false, func(c *Config) { c.Ping = 10 * time.Second })
	r.received()
	r.s.Offload(r.plane)
	r.connect(t)
	if err := r.at(500 * time.Second); err != nil {
		t.Fatalf("offloaded session after 500 s of silence: %v", err)
	}
	if r.h.pings != 0 {
		t.Fatalf("%d pings from the session of an offloaded data channel", r.h.pings)
	}
	if ping, timeout, exit := r.s.Keepalive(); ping != 10*time.Second || timeout != 120*time.Second || exit {
		t.Fatalf("keepalive for the offloaded peer: %s %s exit %v", ping, timeout, exit)
	}
}

func TestTimerPingRestart(t *testing.T) {
	r := newRig(t, true) // default ping-restart 120
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
	if errors.Is(err, ErrPingExit) {
		t.Fatal("ping-restart ended the session; it must reconnect")
	}
}

// A control packet from the server counts as hearing from it, as a data
// packet does.
func TestTimerPingRestartControlPacket(t *testing.T) {
	r := newRig(t, true)
	r.clk.Set(r.s.started.Add(100 * time.Second))
	msg := wire.ControlPacket{Opcode: wire.OpControlV1, KeyID: 0, SessionID: r.s.remoteSID, Payload: []byte{0x17}}
	if err := r.s.HandlePacket(msg.AppendPlain(nil)); err != nil {
		t.Fatal(err)
	}
	if err := r.at(219 * time.Second); err != nil {
		t.Fatalf("ping-restart fired 119 s after a control packet: %v", err)
	}
	if err := r.at(220 * time.Second); err == nil {
		t.Fatal("no ping-restart 120 s after the last control packet")
	}
}

func TestTimerPingExit(t *testing.T) {
	r := newRig(t, true, func(c *Config) { c.PingExit = 30 * time.Second })
	if err := r.at(29 * time.Second); err != nil {
		t.Fatal(err)
	}
	err := r.at(30 * time.Second)
	if !errors.Is(err, ErrPingExit) || !strings.Contains(err.Error(), "ping-exit") {
		t.Fatalf("30 s without a packet under ping-exit 30: %v, want the session to end", err)
	}
}

// A pushed ping-restart replaces the profile's ping-exit (one timeout
// action, the last one set wins, as in OpenVPN); a pushed ping changes the
// interval.
func TestTimerPushedPingRestartReplacesPingExit(t *testing.T) {
	r := newRig(t, false, func(c *Config) { c.PingExit = 30 * time.Second })
	r.received()
	r.k0.server = &ctlmsg.ServerKeyMethod2{}
	if err := r.s.handleMessage(ctlmsg.Message{Kind: ctlmsg.PushReply,
		Body: "PUSH_REPLY,ping 10,ping-restart 60,ifconfig 10.8.0.2 255.255.255.0,peer-id 0,cipher AES-256-GCM"}); err != nil {
		t.Fatal(err)
	}
	if len(r.h.replies) != 1 {
		t.Fatalf("%d push replies handed on, want 1", len(r.h.replies))
	}
	if ping, timeout, exit := r.s.Keepalive(); ping != 10*time.Second || timeout != 60*time.Second || exit {
		t.Fatalf("after the push: ping %s, timeout %s, exit %v; want 10s, 60s, ping-restart", ping, timeout, exit)
	}
	r.connect(t)
	if err := r.atHeard(59 * time.Second); err != nil {
		t.Fatal(err)
	}
	err := r.at(119 * time.Second)
	if err == nil || errors.Is(err, ErrPingExit) {
		t.Fatalf("pushed ping-restart 60: %v, want a reconnect", err)
	}
}

// The PUSH_REPLY is asked for again until it comes: 1 s after the first
// PUSH_REQUEST, then every 2 s.
func TestTimerPushRequestRepeated(t *testing.T) {
	r := newRig(t, false)
	r.received()
	r.s.heard = true
	r.s.pushNext = r.clk.Now().Add(time.Second) // what the first request set
	r.s.pushTries = 1
	r.k0.server = &ctlmsg.ServerKeyMethod2{}
	// A TLS session over a closed conn: the request cannot be written
	// (no server), but it is counted and rescheduled: the timer under
	// test.
	r.k0.tls = tls.Client(r.k0.conn, &tls.Config{InsecureSkipVerify: true})
	r.k0.conn.Close()
	if next := r.s.NextWake(r.clk.Now()); !next.Equal(r.s.pushNext) {
		t.Fatalf("next wake %s, want the PUSH_REQUEST retry at %s", next, r.s.pushNext)
	}
	if err := r.at(999 * time.Millisecond); err != nil || r.s.pushTries != 1 {
		t.Fatalf("PUSH_REQUEST repeated early: tries %d, %v", r.s.pushTries, err)
	}
	if err := r.at(time.Second); err != nil || r.s.pushTries != 2 {
		t.Fatalf("PUSH_REQUEST not repeated after 1 s: tries %d, %v", r.s.pushTries, err)
	}
	if err := r.at(2999 * time.Millisecond); err != nil || r.s.pushTries != 2 {
		t.Fatalf("second repeat before 2 s: tries %d, %v", r.s.pushTries, err)
	}
	if err := r.at(3 * time.Second); err != nil || r.s.pushTries != 3 {
		t.Fatalf("no second repeat 2 s later: tries %d, %v", r.s.pushTries, err)
	}
}

func TestTimerHandWindow(t *testing.T) {
	r := newRig(t, false, func(c *Config) { c.HandWindow = 20 * time.Second })
	r.s.heard = true
	if err := r.at(19 * time.Second); err != nil {
		t.Fatal(err)
	}
	err := r.at(20 * time.Second)
	if err == nil || !strings.Contains(err.Error(), "hand-window") {
		t.Fatalf("no key after hand-window 20: %v", err)
	}
	if errors.Is(err, ErrPingExit) || errors.Is(err, ErrNoResponse) {
		t.Fatalf("hand-window: %v, want a plain failure the reconnect policy retries", err)
	}
}

// A renegotiated key must also complete within hand-window.
func TestTimerHandWindowRenegotiation(t *testing.T) {
	r := newRig(t, true, func(c *Config) { c.HandWindow = 20 * time.Second; c.Limits.RenegSec = 0 })
	if _, err := r.s.startRenegotiation(1); err != nil {
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

// server-poll-timeout: nothing heard from the server at all.
func TestTimerServerPollTimeout(t *testing.T) {
	for _, d := range []time.Duration{4 * time.Second, 7 * time.Second, 120 * time.Second} {
		r := newRig(t, false, func(c *Config) { c.FirstResponse = d; c.HandWindow = time.Hour })
		if err := r.at(d - time.Second); err != nil {
			t.Fatalf("%s: %v before the timeout", d, err)
		}
		err := r.at(d)
		if !errors.Is(err, ErrNoResponse) {
			t.Fatalf("nothing heard for %s: %v, want no response", d, err)
		}
	}
	// Once heard, the timeout is over: the hand-window decides.
	r := newRig(t, false, func(c *Config) { c.FirstResponse = 4 * time.Second })
	r.s.heard = true
	if err := r.at(10 * time.Second); err != nil {
		t.Fatalf("server answered, 10 s in: %v", err)
	}
}

func TestKeyLimitRenegSecDefault(t *testing.T) {
	r := newRig(t, true)
	if err := r.atHeard(3599 * time.Second); err != nil {
		t.Fatal(err)
	}
	if r.renegotiating(t) {
		t.Fatal("renegotiated before 3600 s")
	}
	if err := r.atHeard(3600 * time.Second); err != nil {
		t.Fatal(err)
	}
	if !r.renegotiating(t) || r.s.cur.id != 1 {
		t.Fatal("no SOFT_RESET on key 1 after the default reneg-sec 3600")
	}
}

func TestKeyLimitRenegSecOff(t *testing.T) {
	r := newRig(t, true, func(c *Config) { c.Limits.RenegSec = 0 })
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
	l := Limits{RenegSec: 3600 * time.Second}
	rng := rand.New(rand.NewPCG(7, 8))
	if got := l.RenegAfter(rng); got != 3600*time.Second {
		t.Fatalf("reneg-sec 3600 without min: %s", got)
	}
	l.RenegSecMin = 3000 * time.Second
	seen := map[time.Duration]bool{}
	for range 2000 {
		d := l.RenegAfter(rng)
		if d <= 3000*time.Second || d > 3600*time.Second || d%time.Second != 0 {
			t.Fatalf("reneg-sec 3600 3000 drew %s", d)
		}
		seen[d] = true
	}
	if len(seen) < 300 {
		t.Fatalf("only %d distinct lifetimes in 2000 draws: no jitter", len(seen))
	}
	// From the profile, drawn per session.
	limits := LimitsFromProfile(&profile.Profile{RenegSec: 100, RenegSecSet: true, RenegSecMin: 60})
	r := newRig(t, true, func(c *Config) { c.Limits = limits })
	if r.s.renegAfter <= 60*time.Second || r.s.renegAfter > 100*time.Second {
		t.Fatalf("reneg-sec 100 60: key lifetime %s", r.s.renegAfter)
	}
	if err := r.atHeard(r.s.renegAfter - time.Second); err != nil {
		t.Fatal(err)
	}
	if r.renegotiating(t) {
		t.Fatal("renegotiated before the drawn lifetime")
	}
	if err := r.atHeard(r.s.renegAfter); err != nil {
		t.Fatal(err)
	}
	if !r.renegotiating(t) {
		t.Fatal("no renegotiation at the drawn lifetime")
	}
}

// reneg-bytes and reneg-pkts: data of both directions on the primary
// key, as its meter counts it.
func TestKeyLimitRenegUsage(t *testing.T) {
	for _, tc := range []struct {
		name  string
		limit func(*Limits)
		use   func(u *datachan.Usage, n uint64)
		at    uint64
	}{
		{"reneg-bytes 100000", func(l *Limits) { l.RenegBytes = 100000 }, func(u *datachan.Usage, n uint64) { u.Bytes = n }, 100000},
		{"reneg-pkts 50", func(l *Limits) { l.RenegPkts = 50 }, func(u *datachan.Usage, n uint64) { u.Packets = n }, 50},
	} {
		r := newRig(t, true, func(c *Config) { tc.limit(&c.Limits) })
		m := r.plane.meters[0]
		tc.use(&m.u, tc.at-1)
		if r.renegotiatesAt(t, time.Second) {
			t.Fatalf("%s: renegotiated at %d", tc.name, tc.at-1)
		}
		tc.use(&m.u, tc.at)
		if !r.renegotiatesAt(t, 2*time.Second) {
			t.Fatalf("%s: no renegotiation at %d", tc.name, tc.at)
		}
	}
}

// An offloaded plane has no meter: reneg-bytes does not apply (the kernel
// asks for a new key itself).
func TestKeyLimitOffloadedNoUsage(t *testing.T) {
	r := newRig(t, false, func(c *Config) { c.Limits.RenegBytes = 1; c.Limits.RenegSec = 0 })
	r.received()
	r.s.Offload(unmeteredPlane{r.plane})
	r.connect(t)
	r.plane.meters[0].u.Bytes = 1 << 40
	if err := r.at(time.Second); err != nil {
		t.Fatal(err)
	}
	if r.renegotiating(t) {
		t.Fatal("an offloaded key was renegotiated by reneg-bytes")
	}
}

// unmeteredPlane hides the meter of a plane, as an offloaded one has none.
type unmeteredPlane struct{ KeyPlane }

// The AEAD usage limit: AES-GCM keys are replaced at 7/8 of 2^36-1
// plaintext blocks plus packets in either direction; ChaCha20-Poly1305
// has no such limit.
func TestKeyLimitAEAD(t *testing.T) {
	l := Limits{}
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
	if exhausted := (datachan.Usage{SentID: datachan.RenegotiateAt}); l.renegReason(0, 0, exhausted, "CHACHA20-POLY1305") == "" {
		t.Fatal("packet ids running out did not call for a new key")
	}
	// And the session: a key whose counters pass the limit is replaced.
	r := newRig(t, true, func(c *Config) { c.Limits.RenegSec = 0 })
	r.plane.meters[0].u = over
	if err := r.atHeard(time.Second); err != nil {
		t.Fatal(err)
	}
	if !r.renegotiating(t) {
		t.Fatal("no renegotiation over the AEAD usage limit")
	}
}

// tran-window: the previous key decrypts until tran-window after the
// renegotiation started, then it is dropped.
func TestKeyLimitTranWindow(t *testing.T) {
	r := newRig(t, true, func(c *Config) { c.Limits.TranWindow = 30 * time.Second; c.Limits.RenegSec = 0 })
	r.clk.Advance(100 * time.Second)
	r.received()
	k1, err := r.s.startRenegotiation(1)
	if err != nil {
		t.Fatal(err)
	}
	r.clk.Advance(2 * time.Second) // the handshake took 2 s
	if err := r.s.useKey(k1, testKeyMaterial(t, 1)); err != nil {
		t.Fatal(err)
	}
	if !r.plane.decrypts(0) || r.plane.primaryID() != 1 || r.s.primary != k1 || r.s.lame != r.k0 || r.h.rotations != 1 {
		t.Fatal("after the switch both keys must decrypt, key 1 primary, one rotation")
	}
	r.received()
	if err := r.at(129 * time.Second); err != nil {
		t.Fatal(err)
	}
	if !r.plane.decrypts(0) {
		t.Fatal("lame duck dropped before tran-window")
	}
	r.received()
	if err := r.at(130 * time.Second); err != nil {
		t.Fatal(err)
	}
	if r.plane.decrypts(0) || !r.plane.decrypts(1) || r.s.keys[0] != nil || r.s.lame != nil {
		t.Fatal("lame duck still decrypting 30 s after the renegotiation started with tran-window 30")
	}
}

// A second renegotiation before tran-window ends drops the lame duck
// first: only two keys decrypt at a time.
func TestRenegotiationReplacesLameDuck(t *testing.T) {
	r := newRig(t, true, func(c *Config) { c.Limits.RenegSec = 0 })
	k1, err := r.s.startRenegotiation(1)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.s.useKey(k1, testKeyMaterial(t, 1)); err != nil {
		t.Fatal(err)
	}
	k2, err := r.s.startRenegotiation(2)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.s.useKey(k2, testKeyMaterial(t, 2)); err != nil {
		t.Fatal(err)
	}
	if r.plane.decrypts(0) || !r.plane.decrypts(1) || r.plane.primaryID() != 2 || r.s.lame != k1 || !k1.retired {
		t.Fatalf("after two renegotiations: want key 2 primary, key 1 the lame duck, key 0 gone; slots %v", r.plane.slots)
	}
}

// A SOFT_RESET for the primary key's id while another key is being
// negotiated is a late retransmission: it must not replace the primary.
func TestSoftResetOnPrimaryIDKeepsPrimary(t *testing.T) {
	r := newRig(t, true, func(c *Config) { c.Limits.RenegSec = 0 })
	k1, err := r.s.startRenegotiation(1)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.s.useKey(k1, testKeyMaterial(t, 1)); err != nil {
		t.Fatal(err)
	}
	k2, err := r.s.startRenegotiation(2)
	if err != nil {
		t.Fatal(err)
	}
	if r.s.cur != k2 || r.s.primary != k1 {
		t.Fatal("setup: want key 2 negotiating, key 1 primary")
	}
	late := wire.ControlPacket{Opcode: wire.OpControlSoftResetV1, KeyID: 1, SessionID: r.s.remoteSID, PacketID: 0}
	if err := r.s.HandlePacket(late.AppendPlain(nil)); err != nil {
		t.Fatal(err)
	}
	if r.s.keys[1] != k1 || r.s.primary != k1 || r.s.cur != k2 || k1.retired {
		t.Fatal("a SOFT_RESET on the primary's key id replaced the primary key")
	}
	if !r.plane.decrypts(1) {
		t.Fatal("primary key no longer decrypts")
	}
	// A SOFT_RESET on a key id nobody uses still starts a renegotiation.
	fresh := wire.ControlPacket{Opcode: wire.OpControlSoftResetV1, KeyID: 3, SessionID: r.s.remoteSID, PacketID: 0}
	if err := r.s.HandlePacket(fresh.AppendPlain(nil)); err != nil {
		t.Fatal(err)
	}
	if r.s.keys[3] == nil || r.s.cur != r.s.keys[3] {
		t.Fatal("a server SOFT_RESET on a new key id did not start a renegotiation")
	}
}

// A huge AUTH_PENDING timeout must not overflow time.Duration: the wait
// is OpenVPN's max(reneg-sec/2, hand-window).
func TestAuthPendingHugeTimeout(t *testing.T) {
	r := newRig(t, false)
	r.s.heard = true
	r.s.AuthPending(math.MaxInt)
	if want := 1800 * time.Second; r.s.handWindow != want {
		t.Fatalf("hand window after a huge AUTH_PENDING timeout: %s, want %s", r.s.handWindow, want)
	}
	if err := r.at(1799 * time.Second); err != nil {
		t.Fatalf("handshake ended while the server said auth is pending: %v", err)
	}
	if err := r.at(1800 * time.Second); err == nil {
		t.Fatal("handshake never times out")
	}
	r = newRig(t, false)
	r.s.heard = true
	r.s.AuthPending(90)
	if r.s.handWindow != 90*time.Second {
		t.Fatalf("AUTH_PENDING timeout 90: hand window %s", r.s.handWindow)
	}
}

// A push reply the client cannot use fails the session naming the
// PUSH_REPLY; refused compression is recognisable (the engine ends the
// session for it: retrying cannot help).
func TestPushReplyFailures(t *testing.T) {
	for _, tc := range []struct {
		body       string
		compressed bool
	}{
		{"PUSH_REPLY,route 10.0.0.0 255.0.0.1,ifconfig 10.8.0.2 255.255.255.0", false},
		{"PUSH_REPLY,topology star", false},
		{"PUSH_REPLY,push-continuation 9", false},
		{"PUSH_REPLY,compress lz4-v2", true},
	} {
		r := newRig(t, false)
		err := r.s.handleMessage(ctlmsg.Message{Kind: ctlmsg.PushReply, Body: tc.body})
		if err == nil {
			t.Errorf("%q accepted", tc.body)
			continue
		}
		if errors.Is(err, push.ErrCompressionRefused) != tc.compressed {
			t.Errorf("%q: %v, want compression refused %v", tc.body, err, tc.compressed)
		}
		if !strings.Contains(err.Error(), "PUSH_REPLY") {
			t.Errorf("%q: %v does not name the push reply", tc.body, err)
		}
		if len(r.h.replies) != 0 {
			t.Errorf("%q: handed on as a usable reply", tc.body)
		}
	}
	// Other messages, and a PUSH_REPLY after the first, go to the handler.
	r := newRig(t, false)
	r.s.reply = &push.Reply{}
	for _, m := range []ctlmsg.Message{{Kind: ctlmsg.PushReply, Body: "PUSH_REPLY,auth-token x"}, {Kind: ctlmsg.AuthFailed}} {
		if err := r.s.handleMessage(m); err != nil {
			t.Fatal(err)
		}
	}
	if len(r.h.messages) != 2 {
		t.Fatalf("handler got %d messages, want 2", len(r.h.messages))
	}
}
