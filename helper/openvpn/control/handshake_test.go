package control

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/ctlmsg"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/datachan"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/push"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/reliable"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/wire"
)

// fakeServer is the server side of the control channel, in process: its
// own reliability layer and a crypto/tls server per key_id, the
// key-method 2 reply and a PUSH_REPLY. It exchanges packets with the
// session only through the test's calls (no socket), and stays silent
// until told to answer.
type fakeServer struct {
	t        *testing.T
	clk      Clock
	tls      *tls.Config
	sid      wire.SessionID
	client   wire.SessionID
	keys     [8]*serverKey
	push     string // PUSH_REPLY options; "" never answers PUSH_REQUEST
	answer   bool   // answers the client's reset
	tlsOK    bool   // completes TLS handshakes
	wake     chan struct{}
	done     chan struct{}
	wg       sync.WaitGroup
	mu       sync.Mutex
	blocks   map[uint8][]byte // EKM key block per key_id, once its key-method 2 is done
	requests int              // PUSH_REQUESTs seen
	// turn counts the client's bursts handed to receive; hsTurn and
	// km2Turn are the turns in which key 0's TLS handshake finished and
	// the client's key-method 2 arrived (0: not yet).
	turn, hsTurn, km2Turn int
}

type serverKey struct {
	id   uint8
	rel  *reliable.Layer
	conn *ctlConn
}

func newFakeServer(t *testing.T, clk Clock) *fakeServer {
	t.Helper()
	f := &fakeServer{t: t, clk: clk, sid: wire.SessionID{9, 9, 9, 9, 9, 9, 9, 9}, answer: true, tlsOK: true,
		wake: make(chan struct{}, 1), done: make(chan struct{}), blocks: map[uint8][]byte{}, tls: serverTLS(t)}
	t.Cleanup(func() {
		close(f.done)
		for _, k := range f.keys {
			if k != nil {
				k.conn.Close()
			}
		}
		f.wg.Wait()
	})
	return f
}

// serverTLS is a TLS server configuration with a fresh self-signed
// certificate.
func serverTLS(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "server"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// receive takes the packets the session wrote.
func (f *fakeServer) receive(pkts []wire.ControlPacket) {
	f.mu.Lock()
	f.turn++
	f.mu.Unlock()
	now := f.clk.Now()
	for _, p := range pkts {
		k := f.keys[p.KeyID]
		switch {
		case p.Opcode == wire.OpControlHardResetClientV2 && k == nil:
			if !f.answer {
				continue
			}
			f.client = p.SessionID
			k = f.newKey(p.KeyID)
			k.rel.Send(wire.OpControlHardResetServerV2, nil)
		case p.Opcode == wire.OpControlSoftResetV1 && k == nil:
			k = f.newKey(p.KeyID)
			k.rel.Send(wire.OpControlSoftResetV1, nil)
		}
		if k == nil {
			continue
		}
		if _, err := k.rel.Receive(&p, now); err != nil {
			continue
		}
		for m, ok := k.rel.Next(); ok; m, ok = k.rel.Next() {
			if m.Opcode == wire.OpControlV1 {
				k.conn.deliver(m.Payload)
			}
		}
	}
}

// softReset starts a renegotiation from the server's side on key_id id.
func (f *fakeServer) softReset(id uint8) {
	k := f.newKey(id)
	k.rel.Send(wire.OpControlSoftResetV1, nil)
}

func (f *fakeServer) newKey(id uint8) *serverKey {
	k := &serverKey{id: id, rel: reliable.New(reliable.Config{Timeout: 2 * time.Second}),
		conn: newCtlConn(f.wake, nil, nil)}
	f.keys[id] = k
	if f.tlsOK {
		f.wg.Add(1)
		go f.serve(k)
	}
	return k
}

// serve is one key's TLS server: handshake, the client's key-method 2,
// the reply, then PUSH_REPLY to every PUSH_REQUEST.
func (f *fakeServer) serve(k *serverKey) {
	defer f.wg.Done()
	defer k.conn.readerGone()
	c := tls.Server(k.conn, f.tls)
	if err := c.Handshake(); err != nil {
		return
	}
	f.noteTurn(k.id, &f.hsTurn)
	buf := make([]byte, 64<<10)
	n, err := c.Read(buf)
	if err != nil || n < 5+48+64 || !bytes.Equal(buf[:5], []byte{0, 0, 0, 0, 2}) {
		return // not a client key-method 2 message
	}
	f.noteTurn(k.id, &f.km2Turn)
	// The key is known before the reply goes out: the client may use it
	// as soon as the reply arrives.
	cs := c.ConnectionState()
	block, err := cs.ExportKeyingMaterial(datachan.EKMLabel, nil, datachan.KeyBlockLen)
	if err != nil {
		return
	}
	f.mu.Lock()
	f.blocks[k.id] = block
	f.mu.Unlock()
	reply := []byte{0, 0, 0, 0, 2}
	reply = append(reply, make([]byte, 64)...)              // the server's randoms (unused with EKM)
	reply = append(reply, 0, 6, 'V', '4', ',', 'x', 'y', 0) // options string
	if _, err := c.Write(reply); err != nil {
		return
	}
	for {
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		if m, err := ctlmsg.ParseMessage(buf[:n]); err == nil && m.Kind == ctlmsg.PushRequest {
			f.mu.Lock()
			f.requests++
			f.mu.Unlock()
			if f.push != "" {
				c.Write(ctlmsg.Marshal(ctlmsg.PushReply, f.push))
			}
		}
	}
}

// output returns the server's due packets, wire-encoded.
func (f *fakeServer) output() [][]byte {
	now := f.clk.Now()
	var out [][]byte
	for _, k := range f.keys {
		if k == nil {
			continue
		}
		for _, b := range k.conn.takeOutput() {
			for len(b) > 0 {
				n := min(len(b), 1000)
				k.rel.Send(wire.OpControlV1, b[:n])
				b = b[n:]
			}
		}
		for _, p := range k.rel.Output(now, nil) {
			p.KeyID, p.SessionID, p.RemoteSessionID = k.id, f.sid, f.client
			out = append(out, p.AppendPlain(nil))
		}
	}
	return out
}

// noteTurn records the current turn in *at for key 0.
func (f *fakeServer) noteTurn(id uint8, at *int) {
	if id != 0 {
		return
	}
	f.mu.Lock()
	*at = f.turn
	f.mu.Unlock()
}

// handshakeDone says key 0's TLS handshake ended on the server.
func (f *fakeServer) handshakeDone() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hsTurn != 0
}

// settle waits until the server's TLS sides have ended their turn: read
// all the client sent and wait for more (or returned).
func (f *fakeServer) settle(t *testing.T) {
	t.Helper()
	stall := time.NewTimer(10 * time.Second)
	defer stall.Stop()
	for {
		over := true
		for _, k := range f.keys {
			if k != nil && !k.conn.idle() {
				over = false
			}
		}
		if over {
			return
		}
		select {
		case <-f.wake:
		case <-stall.C:
			t.Fatal("the fake server's TLS side never ended its turn")
		}
	}
}

func (f *fakeServer) block(id uint8) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.blocks[id]
}

// exchange runs session and server against each other, as the engine's
// loop would, until done says so or nothing happened for a while (the
// TLS goroutines work in the background). Time does not move.
func exchange(t *testing.T, r *rig, f *fakeServer, done func() bool) {
	t.Helper()
	// A stall (nothing moved for that long, while the TLS goroutines
	// should be working) fails the test instead of hanging it.
	const stall = 10 * time.Second
	lastMove := time.Now()
	for !done() {
		if err := r.s.Flush(); err != nil {
			t.Fatal(err)
		}
		f.receive(r.conn.take(t))
		moved := false
		for _, b := range f.output() {
			moved = true
			if err := r.s.HandlePacket(b); err != nil {
				t.Fatal(err)
			}
		}
		select {
		case ev := <-r.s.Events():
			moved = true
			if err := r.s.HandleTLS(ev); err != nil {
				t.Fatal(err)
			}
		case <-r.s.Wake():
			moved = true
		case <-f.wake:
			moved = true
		case <-time.After(20 * time.Millisecond):
		}
		if moved {
			lastMove = time.Now()
		} else if time.Since(lastMove) > stall {
			t.Fatal("the exchange stalled")
		}
	}
}

// newHandshakeRig is a session that has not started, with a fake server.
func newHandshakeRig(t *testing.T, configure ...func(*Config)) (*rig, *fakeServer) {
	t.Helper()
	r := newRig(t, false, configure...)
	// Start from scratch: no key, no server session yet.
	r.k0.conn.Close()
	r.s.keys[0], r.s.cur, r.k0 = nil, nil, nil
	r.s.remoteSID, r.s.gotReset = wire.SessionID{}, false
	f := newFakeServer(t, r.clk)
	return r, f
}

// connectVia makes the handler bring the connection up as the engine does:
// the first key from FirstKey into Activate. It keeps a copy of the key.
func (h *fakeHandler) connectVia(s *Session, keys *[]*DataKey) {
	h.onPush = func(*push.Reply) error {
		dk, err := s.FirstKey()
		if err != nil {
			return err
		}
		*keys = append(*keys, &DataKey{KeyID: dk.KeyID, Cipher: dk.Cipher, block: bytes.Clone(dk.block)})
		return s.Activate(dk)
	}
}

// connectedRig is a session connected through the whole handshake with a
// fake server that pushes a TLS-EKM AES-256-GCM key and the extra options;
// keys collects copies of the first key.
func connectedRig(t *testing.T, extraPush string, configure ...func(*Config)) (*rig, *fakeServer, []*DataKey) {
	t.Helper()
	r, f := newHandshakeRig(t, configure...)
	f.push = "ifconfig 10.8.0.2 255.255.255.0,peer-id 0,cipher AES-256-GCM,key-derivation tls-ekm"
	if extraPush != "" {
		f.push += "," + extraPush
	}
	var keys []*DataKey
	r.h.connectVia(r.s, &keys)
	if err := r.s.Start(); err != nil {
		t.Fatal(err)
	}
	exchange(t, r, f, r.s.Connected)
	return r, f, keys
}

// The whole handshake, with no socket and no OpenVPN server: reset, TLS,
// key-method 2, PUSH_REQUEST/PUSH_REPLY, the first key installed as
// primary and equal to the server's (TLS-EKM); then the server
// renegotiates: a second TLS session on key_id 1 becomes primary, key 0
// the lame duck.
func TestHandshakeAndServerRenegotiation(t *testing.T) {
	r, f, keys := connectedRig(t, "ping 10,ping-restart 60")
	if !r.s.Heard() || len(r.h.replies) != 1 || r.plane.primaryID() != 0 {
		t.Fatalf("connected: heard %v, %d push replies, primary key %d", r.s.Heard(), len(r.h.replies), r.plane.primaryID())
	}
	if srv := f.block(0); srv == nil || !bytes.Equal(keys[0].block, srv) {
		t.Fatal("the client's data key differs from the server's TLS-EKM key block")
	}
	if ping, timeout, _ := r.s.Keepalive(); ping != 10*time.Second || timeout != 60*time.Second {
		t.Fatalf("pushed keepalive not applied: %s %s", ping, timeout)
	}
	if r.h.lastRecv.IsZero() && r.s.lastCtl.IsZero() {
		t.Fatal("the server's packets did not count as heard")
	}

	f.softReset(1)
	exchange(t, r, f, func() bool { return r.h.rotations == 1 })
	if r.plane.primaryID() != 1 || !r.plane.decrypts(0) || r.s.lame == nil || r.s.lame.id != 0 {
		t.Fatalf("after the server's renegotiation: primary %d, key 0 decrypts %v", r.plane.primaryID(), r.plane.decrypts(0))
	}
	if r.plane.slots[SlotPrimary].Cipher != "AES-256-GCM" {
		t.Fatalf("renegotiated key's cipher %q", r.plane.slots[SlotPrimary].Cipher)
	}
	if f.block(1) == nil {
		t.Fatal("the server never completed key 1")
	}
	if !r.s.Connected() || r.s.primary.id != 1 || r.s.cur.id != 1 {
		t.Fatal("session state after the renegotiation")
	}
}

// The client's reset goes out at once and is repeated every tls-timeout,
// without backing off, while the server is silent; nothing heard for
// server-poll-timeout ends the session with ErrNoResponse.
func TestHandshakeNoResponse(t *testing.T) {
	r, f := newHandshakeRig(t, func(c *Config) { c.FirstResponse = 10 * time.Second })
	f.answer = false
	if err := r.s.Start(); err != nil {
		t.Fatal(err)
	}
	resets := func() int {
		if err := r.s.Flush(); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, p := range r.conn.take(t) {
			if p.Opcode == wire.OpControlHardResetClientV2 {
				n++
			}
		}
		return n
	}
	if n := resets(); n != 1 {
		t.Fatalf("%d resets at the start, want 1", n)
	}
	for i := 1; i <= 4; i++ {
		if err := r.at(time.Duration(i)*2*time.Second - time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if n := resets(); n != 0 {
			t.Fatalf("reset repeated before tls-timeout (round %d)", i)
		}
		if err := r.at(time.Duration(i) * 2 * time.Second); err != nil {
			t.Fatal(err)
		}
		if n := resets(); n != 1 {
			t.Fatalf("round %d: %d resets after tls-timeout 2s, want 1 (no back-off)", i, n)
		}
	}
	if err := r.at(10 * time.Second); !errors.Is(err, ErrNoResponse) {
		t.Fatalf("silent server for server-poll-timeout: %v, want no response", err)
	}
}

// The server answers the reset but the TLS handshake never completes:
// hand-window ends the session.
func TestHandshakeHandWindow(t *testing.T) {
	r, f := newHandshakeRig(t, func(c *Config) { c.HandWindow = 30 * time.Second })
	f.tlsOK = false
	if err := r.s.Start(); err != nil {
		t.Fatal(err)
	}
	exchange(t, r, f, func() bool { return r.s.gotReset })
	if err := r.at(29 * time.Second); err != nil {
		t.Fatalf("before hand-window: %v", err)
	}
	err := r.at(30 * time.Second)
	if err == nil || !strings.Contains(err.Error(), "hand-window") || errors.Is(err, ErrNoResponse) {
		t.Fatalf("TLS not done after hand-window 30: %v", err)
	}
}

// Without a PUSH_REPLY the session asks again and, within hand-window,
// fails.
func TestHandshakeNoPushReply(t *testing.T) {
	r, f := newHandshakeRig(t, func(c *Config) { c.HandWindow = 20 * time.Second })
	if err := r.s.Start(); err != nil {
		t.Fatal(err)
	}
	requested := func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.requests >= 1
	}
	exchange(t, r, f, requested)
	r.clk.Advance(time.Second)
	if err := r.s.CheckTimers(r.clk.Now()); err != nil {
		t.Fatal(err)
	}
	exchange(t, r, f, func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.requests >= 2
	})
	if err := r.at(20 * time.Second); err == nil || !strings.Contains(err.Error(), "hand-window") {
		t.Fatalf("no PUSH_REPLY within hand-window: %v", err)
	}
	if r.s.Connected() || len(r.h.replies) != 0 {
		t.Fatal("connected without a PUSH_REPLY")
	}
}

// The client's own renegotiation end to end: at reneg-sec the session
// sends SOFT_RESET on key_id 1, the server answers, a second TLS session
// and key-method 2 make key 1 primary (equal to the server's), and key 0
// decrypts until tran-window after the renegotiation started, then goes.
func TestHandshakeRenegSecAndLameDuck(t *testing.T) {
	r, f, _ := connectedRig(t, "", func(c *Config) {
		c.Limits.RenegSec, c.Limits.TranWindow = 100*time.Second, 30*time.Second
	})

	if err := r.atHeard(99 * time.Second); err != nil || r.s.cur.id != 0 {
		t.Fatalf("renegotiation before reneg-sec 100: key %d, %v", r.s.cur.id, err)
	}
	if err := r.atHeard(100 * time.Second); err != nil || r.s.cur.id != 1 {
		t.Fatalf("no renegotiation at reneg-sec 100: key %d, %v", r.s.cur.id, err)
	}
	r.clk.Advance(time.Second) // the second handshake takes a second
	exchange(t, r, f, func() bool { return r.h.rotations == 1 })
	k1 := r.s.primary
	if k1.id != 1 || r.plane.primaryID() != 1 || !r.plane.decrypts(0) || k1.established.Sub(k1.started) != time.Second {
		t.Fatalf("after reneg-sec: primary %d, key 0 decrypts %v", r.plane.primaryID(), r.plane.decrypts(0))
	}
	if srv := f.block(1); srv == nil {
		t.Fatal("the server never completed key 1")
	}
	// tran-window counts from the renegotiation's start (100 s).
	if err := r.atHeard(129 * time.Second); err != nil || !r.plane.decrypts(0) {
		t.Fatalf("lame duck gone before tran-window 30 ended: %v", err)
	}
	if err := r.atHeard(130 * time.Second); err != nil || r.plane.decrypts(0) || !r.plane.decrypts(1) {
		t.Fatalf("lame duck still decrypting when tran-window 30 ended: %v", err)
	}
	// Key 1's age counts from when it came into use: the next one at 201 s.
	if err := r.atHeard(200 * time.Second); err != nil || r.s.cur.id != 1 {
		t.Fatalf("second renegotiation early: key %d, %v", r.s.cur.id, err)
	}
	if err := r.atHeard(201 * time.Second); err != nil || r.s.cur.id != 2 {
		t.Fatalf("no second renegotiation 100 s after key 1 came into use: key %d, %v", r.s.cur.id, err)
	}
}
