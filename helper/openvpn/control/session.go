// Package control is one connection's OpenVPN control session, as a state
// machine driven by its caller: the reset handshake, TLS over the
// reliability layer (one per key_id), the key-method 2 exchange,
// PUSH_REQUEST/PUSH_REPLY, renegotiation (either side's SOFT_RESET, or
// reneg-sec/bytes/pkts and the AEAD limits), the lame-duck key until
// tran-window ends, hand-window and keepalive.
//
// The caller (the engine) owns the socket and the loop: it hands in the
// control packets it reads (HandlePacket, which also reads and answers the
// server's messages once a key's handshake is done), the end of each TLS
// handshake (Events, HandleTLS), calls Flush to put due packets on the
// wire through Conn and CheckTimers at NextWake. Time comes only from the injected Clock. What
// the session cannot decide alone goes to its Handler: the key-method 2
// contents, the connection's bring-up once the server's PUSH_REPLY is in,
// the server's other messages (AUTH_FAILED, RESTART, …) and keepalive
// pings on the data channel. Keys reach the data plane only through
// KeyPlane. The package knows nothing of remotes, retries, TUN devices or
// the backend.
package control

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/ctlmsg"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/ctlwrap"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/datachan"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/push"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/reliable"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/wire"
	"github.com/ovpn3go/ovpn3go/internal/stackreserve"
)

// ErrNoResponse marks a session that never heard from the server.
var ErrNoResponse = errors.New("no response from server")

// ErrPingExit marks the end of a session by ping-exit: nothing received
// for that long ends the session rather than reconnecting.
var ErrPingExit = errors.New("ping-exit")

// Conn is where the session's control packets go: the connection's
// transport.
type Conn interface {
	WritePacket(b []byte) error
	RemoteAddr() net.Addr
}

// Handler is what the session needs from the connection around it. Its
// methods are called from the caller's goroutine, inside HandleTLS,
// HandlePacket or CheckTimers; an error they return ends the session and
// is returned unchanged.
type Handler interface {
	// KeyMethod2 fills in the options string, the credentials and the
	// peer info of the client's key-method 2 message (the randoms are
	// set) and checks it.
	KeyMethod2(m *ctlmsg.KeyMethod2) error
	// DataCipher is the data cipher to use when the server pushed
	// "cipher pushed" ("" when it pushed none).
	DataCipher(pushed string) (string, error)
	// PushReply: the server's PUSH_REPLY for the first key is complete.
	// The handler brings the connection up and calls FirstKey and
	// Activate; returning nil without Activate leaves the session
	// unconnected (the caller is shutting down).
	PushReply(r *push.Reply) error
	// Message is a control message the session does not handle itself:
	// AUTH_FAILED, AUTH_PENDING, INFO, RESTART, HALT, EXIT, and a
	// PUSH_REPLY after the first (a renewed auth-token).
	Message(m ctlmsg.Message) error
	// KeyRotated: a renegotiated key became the primary key.
	KeyRotated()
	// LastReceived and LastSent are when the data channel last received
	// and sent a packet (keepalive; zero: never). SendPing sends a
	// keepalive on it.
	LastReceived() time.Time
	LastSent() time.Time
	SendPing() error
}

// Config configures a Session.
type Config struct {
	Clock Clock
	Log   *slog.Logger // optional
	Conn  Conn
	// Wrap protects the control packets (plain, tls-auth, tls-crypt,
	// tls-crypt-v2); it is this connection's own (its replay state).
	Wrap       ctlwrap.Wrapper
	TLSCryptV2 bool // the reset is HARD_RESET_CLIENT_V3 and may ask for WKc
	// NewTLS returns a fresh TLS client configuration for each key.
	NewTLS func() (*tls.Config, error)
	// ExplainTLS may add a hint to a failed first handshake; nil: none.
	ExplainTLS func(error) error
	// Server names the server in errors and logs.
	Server string
	// Started is when the connection began (the transport's dial
	// included): the first-response and hand-window timers count from it.
	Started time.Time
	// FirstResponse: nothing heard from the server for that long ends
	// the session with ErrNoResponse (server-poll-timeout).
	FirstResponse time.Duration
	TLSTimeout    time.Duration
	HandWindow    time.Duration
	MaxPacket     int // max-packet-size of a wrapped control packet
	Limits        Limits
	Auth          string // the data channel's digest (legacy CBC ciphers)
	// Keepalive as configured; a PUSH_REPLY may change it. PingExit > 0:
	// ping-exit instead of ping-restart.
	Ping, PingRestart, PingExit time.Duration
	// Push collects the PUSH_REPLY (the profile's pull-filter rules).
	Push *push.Assembler
	// Plane is where keys go until Offload replaces it.
	Plane KeyPlane
	// HoldKeyMethod2: the first key's TLS handshake runs to its end (the
	// client's Finished leaves) but key-method 2, which carries the
	// credentials and makes the server authenticate the client, waits for
	// ReleaseKeyMethod2 (a connection begun before the user asked for it).
	HoldKeyMethod2 bool
}

// key is one key_id's control session: its reliability layer, the
// TLS session running over it and the key-method 2 exchange.
type key struct {
	id       uint8
	rel      *reliable.Layer
	conn     *ctlConn
	tls      *tls.Conn
	gateOpen bool        // TLS output may go on the wire
	firstOp  wire.Opcode // opcode of the first TLS packet (CONTROL_WKC_V1 when asked)
	km2      ctlmsg.KeyMethod2
	server   *ctlmsg.ServerKeyMethod2
	tlsDone  bool
	km2Held  bool // the handshake is done, key-method 2 waits for ReleaseKeyMethod2
	retired  bool // replaced by a renegotiated key; its TLS session was closed on purpose
	started  time.Time
	// established: when its data key came into use (the reneg-sec age);
	// mustDie: when a lame-duck key stops decrypting (tran-window).
	established, mustDie time.Time
	// meter counts the use of the userspace data key (nil when
	// offloaded); cipher names the data cipher either way.
	meter  Meter
	cipher string
}

// TLSEvent is what a key's TLS handshake goroutine reports: the
// handshake's end (err says how). The caller passes it to HandleTLS.
type TLSEvent struct {
	k   *key
	err error
}

// Session is one connection's control session. Its methods are called
// from one goroutine (the caller's loop); the TLS readers it starts stop
// when Close returns.
type Session struct {
	cfg Config
	h   Handler
	log *slog.Logger
	clk Clock

	localSID  wire.SessionID
	remoteSID wire.SessionID
	gotReset  bool

	wake   chan struct{}
	events chan TLSEvent
	done   chan struct{}
	wg     sync.WaitGroup
	ctx    context.Context

	keys    [8]*key
	cur     *key // newest key (being negotiated or active)
	primary *key // key the data channel sends with
	lame    *key // previous primary, still decrypting until lame.mustDie
	plane   KeyPlane
	offload bool

	started   time.Time
	lastCtl   time.Time // last authentic control packet
	heard     bool
	connected bool

	asm        *push.Assembler
	reply      *push.Reply
	pushNext   time.Time
	pushTries  int
	handWindow time.Duration
	ping       time.Duration
	pingRst    time.Duration
	pingExit   time.Duration // > 0: ping-exit instead of ping-restart
	renegAfter time.Duration

	wbuf []byte
	rbuf []byte // one TLS record's plaintext, read in the caller's goroutine
	out  []wire.ControlPacket

	holdKM2 bool // key 0's key-method 2 waits for ReleaseKeyMethod2
}

// New prepares a session; Start sends the first packet. ctx bounds the
// TLS handshakes.
func New(ctx context.Context, cfg Config, h Handler) (*Session, error) {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sid, err := wire.NewSessionID()
	if err != nil {
		return nil, err
	}
	s := &Session{
		cfg: cfg, h: h, log: log, clk: cfg.Clock,
		localSID:   sid,
		wake:       make(chan struct{}, 1),
		events:     make(chan TLSEvent, 16),
		done:       make(chan struct{}),
		ctx:        ctx,
		plane:      cfg.Plane,
		started:    cfg.Started,
		asm:        cfg.Push,
		handWindow: cfg.HandWindow,
		ping:       cfg.Ping,
		pingRst:    cfg.PingRestart,
		pingExit:   cfg.PingExit,
		renegAfter: cfg.Limits.RenegAfter(mrand.New(mrand.NewPCG(mrand.Uint64(), mrand.Uint64()))),
		holdKM2:    cfg.HoldKeyMethod2,
	}
	return s, nil
}

// Start begins key 0: the client's hard reset, resent every tls-timeout
// until the server answers.
func (s *Session) Start() error {
	k0, err := s.newKey(0)
	if err != nil {
		return err
	}
	resetOp := wire.OpControlHardResetClientV2
	if s.cfg.TLSCryptV2 {
		resetOp = wire.OpControlHardResetClientV3
	}
	// Until the server answers, resend the reset every tls-timeout instead
	// of backing off, so a few lost datagrams do not use up the
	// no-response window.
	k0.rel.SetMaxTimeout(0)
	k0.rel.Send(resetOp, nil)
	s.log.Debug("connecting", "session", s.localSID.String())
	return nil
}

// Close stops the TLS readers and waits for them.
func (s *Session) Close() {
	close(s.done)
	for _, k := range s.keys {
		if k != nil {
			k.conn.Close()
		}
	}
	s.wg.Wait()
}

// Events delivers the TLS readers' events, for HandleTLS.
func (s *Session) Events() <-chan TLSEvent { return s.events }

// Wake signals that a key's TLS side ended its turn: call Flush.
func (s *Session) Wake() <-chan struct{} { return s.wake }

// Heard says an authentic packet came from the server.
func (s *Session) Heard() bool { return s.heard }

// Connected says the first key is active (Activate).
func (s *Session) Connected() bool { return s.connected }

func (s *Session) now() time.Time { return s.clk.Now() }

// newKey starts the control session of one key_id: a reliability layer
// and a TLS client whose handshake begins at once (its first flight is held
// back until the reset exchange allows it).
func (s *Session) newKey(id uint8) (*key, error) {
	cfg, err := s.cfg.NewTLS()
	if err != nil {
		return nil, err
	}
	k := &key{
		id:      id,
		rel:     reliable.New(reliable.Config{Timeout: s.cfg.TLSTimeout}),
		firstOp: wire.OpControlV1,
		started: s.now(),
	}
	addr := s.cfg.Conn.RemoteAddr()
	k.conn = newCtlConn(s.wake, addr, addr)
	k.tls = tls.Client(k.conn, cfg)
	if old := s.keys[id]; old != nil {
		old.conn.Close()
	}
	s.keys[id] = k
	s.cur = k
	s.wg.Add(1)
	go s.tlsHandshake(k)
	return k, nil
}

// tlsHandshake runs the TLS handshake of a key: crypto/tls's handshake
// blocks on its conn, so it has a goroutine of its own. After it the
// caller's goroutine reads the records itself (readTLS), answering the
// server in the same turn instead of passing each message across
// goroutines.
func (s *Session) tlsHandshake(k *key) {
	stackreserve.Reserve32K() // crypto/tls, x509 and ML-KEM run deep
	defer s.wg.Done()
	defer k.conn.readerGone()
	err := k.tls.HandshakeContext(s.ctx)
	// The event holds the key's turn open until HandleTLS released it, so
	// key-method 2 goes out in the burst with the client's Finished. From
	// here on nobody blocks in Read: Read without input says so, and the
	// caller reads again after the next packet.
	k.conn.handshakeEnded(err == nil)
	select {
	case s.events <- TLSEvent{k: k, err: err}:
	case <-s.done:
	}
}

// Flush moves TLS output into the reliability layers and puts due packets
// on the wire. While a key's TLS side is still working on what arrived
// (its turn is not over), its output and acknowledgements wait: the answer
// goes out as one burst with the acknowledgements riding on it, and a bare
// ACK only when the turn ends with nothing else to send (as OpenVPN does).
// Retransmissions are not held.
func (s *Session) Flush() error {
	now := s.now()
	for _, k := range s.keys {
		if k == nil {
			continue
		}
		idle := k.conn.idle()
		if k.gateOpen && idle {
			// The control channel is a byte stream: a turn's TLS writes
			// (the Finished and key-method 2) share packets as they fit,
			// so they cannot be split on the wire, and the server has
			// fewer packets to handle (OpenVPN's client does the same).
			if out := k.conn.takeOutput(); len(out) > 0 {
				s.queueTLS(k, bytes.Join(out, nil))
			}
		}
		if k.firstOp == wire.OpControlWKCV1 {
			// Hold the ack of the server's reset until the ClientHello is
			// ready: it must travel inside the P_CONTROL_WKC_V1 packet, or
			// the stateless server cannot check its cookie and drops us.
			continue
		}
		if idle {
			s.out = k.rel.Output(now, s.out[:0])
		} else {
			s.out = k.rel.OutputMessages(now, s.out[:0])
		}
		for i := range s.out {
			p := &s.out[i]
			p.KeyID = k.id
			p.SessionID = s.localSID
			p.RemoteSessionID = s.remoteSID
			var err error
			s.wbuf, err = s.cfg.Wrap.Wrap(s.wbuf[:0], p)
			if err != nil {
				return fmt.Errorf("wrap %v: %w", p.Opcode, err)
			}
			if err := s.cfg.Conn.WritePacket(s.wbuf); err != nil {
				return fmt.Errorf("send to %s: %w", s.cfg.Server, err)
			}
		}
	}
	return nil
}

// queueTLS cuts TLS output into CONTROL_V1 payloads that keep the
// wrapped packet within max-packet-size even with a full ack array.
func (s *Session) queueTLS(k *key, b []byte) {
	for len(b) > 0 {
		op := wire.OpControlV1
		if k.firstOp != wire.OpControlV1 {
			op, k.firstOp = k.firstOp, wire.OpControlV1
		}
		fixed := 1 + 8 + 1 + 4*wire.MaxAcksPerControl + 8 + 4
		room := max(s.cfg.MaxPacket-ctlwrap.PacketOverhead(s.cfg.Wrap, op)-fixed, 64)
		n := min(room, len(b))
		k.rel.Send(op, b[:n])
		b = b[n:]
	}
}

// HandlePacket takes one control packet (any non-data opcode) from the
// transport.
func (s *Session) HandlePacket(b []byte) error {
	p, err := s.cfg.Wrap.Unwrap(b)
	if err != nil {
		s.log.Debug("dropped control packet", "err", err)
		return nil
	}
	if p.Opcode == wire.OpControlHardResetServerV2 {
		if p.KeyID != 0 {
			return nil
		}
		if !s.gotReset {
			s.remoteSID = p.SessionID
		}
	}
	if !s.remoteSIDKnown() || p.SessionID != s.remoteSID {
		s.log.Debug("dropped control packet from another session", "op", p.Opcode)
		return nil
	}
	if len(p.Acks) > 0 && p.RemoteSessionID != s.localSID {
		s.log.Debug("dropped control packet acking another session", "op", p.Opcode)
		return nil
	}
	now := s.now()
	s.lastCtl = now
	s.heard = true

	k := s.keys[p.KeyID]
	// A SOFT_RESET on a key_id that is not the one being negotiated starts
	// a renegotiation; on the current one, or on the primary key while
	// another is being negotiated (a late retransmission), it goes to that
	// key's reliability layer, which acknowledges it.
	if p.Opcode == wire.OpControlSoftResetV1 && (k == nil || (k != s.cur && k != s.primary)) {
		if s.primary == nil {
			return nil // no renegotiation before the first key is up
		}
		if k, err = s.startRenegotiation(p.KeyID); err != nil {
			return err
		}
	}
	if k == nil {
		return nil
	}
	if _, err := k.rel.Receive(&p, now); err != nil {
		return nil
	}
	for m, ok := k.rel.Next(); ok; m, ok = k.rel.Next() {
		switch m.Opcode {
		case wire.OpControlHardResetServerV2:
			if k.id == 0 && !s.gotReset {
				s.gotReset = true
				k.gateOpen = true
				k.rel.SetMaxTimeout(reliable.DefaultMaxTimeout)
				if s.cfg.TLSCryptV2 {
					resend, err := ctlwrap.ResendWKcRequested(m.Payload)
					if err != nil {
						return fmt.Errorf("server reset: %w", err)
					}
					if resend {
						k.firstOp = wire.OpControlWKCV1
					}
				}
				s.log.Debug("server reset", "server_session", s.remoteSID.String())
			}
		case wire.OpControlSoftResetV1:
			// Our side of the soft reset was queued in startRenegotiation.
		case wire.OpControlV1:
			k.conn.deliver(m.Payload)
		default:
			s.log.Debug("ignored control message", "op", m.Opcode)
		}
	}
	return s.readTLS(k)
}

// readTLS reads and handles the records the server's packets completed on
// a key whose handshake is done (and handled); before that the handshake
// goroutine reads them.
func (s *Session) readTLS(k *key) error {
	if s.rbuf == nil {
		// One TLS record's plaintext at most (16 KiB): tls.Conn.Read never
		// returns more.
		s.rbuf = make([]byte, 16<<10)
	}
	for k.tlsDone && !k.retired && s.keys[k.id] == k {
		n, err := k.tls.Read(s.rbuf)
		if n > 0 {
			if err := s.handleRecord(k, append([]byte(nil), s.rbuf[:n]...)); err != nil {
				return err
			}
		}
		if errors.Is(err, errWouldBlock) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("control channel (key %d) closed: %w", k.id, err)
		}
	}
	return nil
}

func (s *Session) remoteSIDKnown() bool { return s.gotReset || !s.remoteSID.IsZero() }

// startRenegotiation begins a fresh TLS session and key-method 2 exchange
// on key_id id while data keeps flowing on the current key: in answer to the
// server's SOFT_RESET, or on our own initiative (reneg-sec, packet-id
// exhaustion). The server answers our SOFT_RESET with its own on the same
// key_id, which the new key's reliability layer then simply receives.
func (s *Session) startRenegotiation(id uint8) (*key, error) {
	s.log.Info("renegotiating", "key_id", id)
	k, err := s.newKey(id)
	if err != nil {
		return nil, err
	}
	k.gateOpen = true
	k.rel.Send(wire.OpControlSoftResetV1, nil)
	return k, nil
}

// HandleTLS takes one event from Events; Flush afterwards sends the
// answer.
func (s *Session) HandleTLS(ev TLSEvent) error {
	k := ev.k
	if s.keys[k.id] != k || k.retired {
		k.conn.release()
		return nil // superseded
	}
	if ev.err != nil {
		k.conn.release()
		return s.handshakeFailed(k, ev.err)
	}
	k.tlsDone = true
	var err error
	if k.id == 0 && s.holdKM2 {
		// Only the Finished (and the acknowledgements) leave now.
		k.km2Held = true
	} else {
		err = s.sendKeyMethod2(k)
	}
	k.conn.release()
	if err != nil {
		return err
	}
	// The client's Finished and key-method 2 leave now, in one burst,
	// before the log line and whatever else waits.
	if err := s.Flush(); err != nil {
		return err
	}
	cs := k.tls.ConnectionState()
	s.log.Info("TLS handshake done", "key_id", k.id, "version", tls.VersionName(cs.Version),
		"cipher", tls.CipherSuiteName(cs.CipherSuite), "took", s.now().Sub(k.started).Round(time.Millisecond))
	// Records that arrived while the event waited.
	return s.readTLS(k)
}

// ReleaseKeyMethod2 ends the hold of Config.HoldKeyMethod2: key-method 2
// goes out now if the first key's handshake is done (else HandleTLS sends
// it with the Finished, as without the hold). Called from the caller's
// goroutine, like every method.
func (s *Session) ReleaseKeyMethod2() error {
	if !s.holdKM2 {
		return nil
	}
	s.holdKM2 = false
	k := s.keys[0]
	if k == nil || !k.km2Held || s.keys[k.id] != k {
		return nil
	}
	k.km2Held = false
	if err := s.sendKeyMethod2(k); err != nil {
		return err
	}
	return s.Flush()
}

// KeyMethod2Held says the first key's handshake is done and its
// key-method 2 waits for ReleaseKeyMethod2.
func (s *Session) KeyMethod2Held() bool {
	k := s.keys[0]
	return k != nil && k.km2Held
}

func (s *Session) handshakeFailed(k *key, err error) error {
	if k.id == 0 {
		// Not fatal, as in OpenVPN: a server with an expired
		// certificate or a client clock that is wrong at boot
		// gets fixed while the reconnect policy keeps trying.
		if s.cfg.ExplainTLS != nil {
			err = s.cfg.ExplainTLS(err)
		}
		return fmt.Errorf("TLS handshake with %s: %w", s.cfg.Server, err)
	}
	return fmt.Errorf("TLS renegotiation (key %d): %w", k.id, err)
}

// handleRecord takes one message from the server on key k: its
// key-method 2 reply first, then control messages.
func (s *Session) handleRecord(k *key, rec []byte) error {
	if k.server == nil {
		srv, err := ctlmsg.ParseServerKeyMethod2(rec)
		if err != nil {
			return fmt.Errorf("server key exchange: %w", err)
		}
		k.server = &srv
		if k.id == 0 {
			s.sendPushRequest(s.now())
			return nil
		}
		return s.activateRenegotiated(k)
	}
	msg, err := ctlmsg.ParseMessage(rec)
	if err != nil {
		s.log.Debug("bad control message", "err", err)
		return nil
	}
	return s.handleMessage(msg)
}

func (s *Session) sendKeyMethod2(k *key) error {
	m := &k.km2
	for _, b := range [][]byte{m.PreMaster[:], m.Random1[:], m.Random2[:]} {
		if _, err := rand.Read(b); err != nil {
			return fmt.Errorf("key-method 2 randoms: %w", err)
		}
	}
	if err := s.h.KeyMethod2(m); err != nil {
		return err
	}
	// One Write = one TLS record = one message for the server.
	if _, err := k.tls.Write(m.MarshalClient()); err != nil {
		return fmt.Errorf("send key-method 2: %w", err)
	}
	return nil
}

func (s *Session) sendControl(k *key, kind ctlmsg.Kind, body string) error {
	if _, err := k.tls.Write(ctlmsg.Marshal(kind, body)); err != nil {
		return fmt.Errorf("send %v: %w", kind, err)
	}
	return nil
}

func (s *Session) sendPushRequest(now time.Time) {
	if err := s.sendControl(s.keys[0], ctlmsg.PushRequest, ""); err != nil {
		s.log.Debug("push request", "err", err)
	}
	s.pushTries++
	s.pushNext = now.Add(time.Duration(min(s.pushTries, 2)) * time.Second)
}

func (s *Session) handleMessage(msg ctlmsg.Message) error {
	if msg.Kind != ctlmsg.PushReply || s.reply != nil {
		// A PUSH_REPLY after the first is a late answer to a repeated
		// PUSH_REQUEST, or the renewed auth-token the server sends after
		// a renegotiation: the handler's too.
		return s.h.Message(msg)
	}
	done, err := s.asm.Add(msg.Body)
	if err != nil {
		return fmt.Errorf("PUSH_REPLY: %w", err)
	}
	if !done {
		return nil
	}
	reply, err := s.asm.Reply()
	if err != nil {
		// What cannot be skipped safely restarts the connection
		// (push/failures.go), as OpenVPN's options errors do; refused
		// compression (push.ErrCompressionRefused) the caller may treat
		// as final.
		return fmt.Errorf("PUSH_REPLY: %w", err)
	}
	s.logPushProblems(reply)
	// Bringing the connection up takes a while (TUN device, addresses,
	// routes): acknowledge the PUSH_REPLY before, not after.
	if err := s.Flush(); err != nil {
		return err
	}
	s.reply = reply
	if reply.Ping > 0 {
		s.ping = time.Duration(reply.Ping) * time.Second
	}
	if reply.PingRestart > 0 {
		s.pingRst = time.Duration(reply.PingRestart) * time.Second
	}
	// ping-exit and ping-restart set one timeout action; a pushed one wins.
	switch {
	case reply.PingExit > 0:
		s.pingExit = secs(reply.PingExit)
	case reply.PingRestart > 0:
		s.pingExit = 0
	}
	return s.h.PushReply(reply)
}

// logPushProblems warns about pushed options that were skipped or not
// understood, so a user or admin can see them in the session log.
func (s *Session) logPushProblems(r *push.Reply) {
	for _, w := range r.Warnings {
		s.log.Warn("pushed option not applied", "detail", w)
	}
	for _, u := range r.Unhandled {
		name, _, _ := strings.Cut(u, " ")
		s.log.Warn("pushed option unknown to this client, ignored", "option", name)
	}
}

// deriveKey computes the data-channel key of k from the TLS session.
func (s *Session) deriveKey(k *key) (*DataKey, error) {
	r := s.reply
	var block []byte
	if r.TLSEKM {
		cs := k.tls.ConnectionState()
		b, err := cs.ExportKeyingMaterial(datachan.EKMLabel, nil, datachan.KeyBlockLen)
		if err != nil {
			return nil, fmt.Errorf("TLS keying material export: %w", err)
		}
		block = b
	} else {
		b, err := legacyKeyBlock(k, s.localSID, s.remoteSID)
		if err != nil {
			return nil, fmt.Errorf("legacy key derivation: %w", err)
		}
		block = b
	}
	cipher, err := s.h.DataCipher(r.Cipher)
	if err != nil {
		clear(block)
		return nil, err
	}
	dk, err := NewDataKey(cipher, s.cfg.Auth, k.id, block, r.PeerID)
	clear(block)
	clear(k.km2.PreMaster[:])
	if err != nil {
		return nil, fmt.Errorf("data channel key (%s): %w", cipher, err)
	}
	return dk, nil
}

// FirstKey derives the data key of key 0 once its PUSH_REPLY is in (from
// Handler.PushReply); its age counts from now. The caller clears it.
func (s *Session) FirstKey() (*DataKey, error) {
	if s.reply == nil || s.keys[0] == nil {
		return nil, errors.New("no PUSH_REPLY yet")
	}
	dk, err := s.deriveKey(s.keys[0])
	if err != nil {
		return nil, err
	}
	s.keys[0].established = s.now()
	return dk, nil
}

// Offload moves the keys to an offloaded data plane, which keeps itself
// alive (see Keepalive): the session sends no pings and leaves the
// timeout to it. Call it before Activate.
func (s *Session) Offload(p KeyPlane) {
	s.plane, s.offload = p, true
}

// Keepalive is the ping interval and the timeout in force (pushed values
// included); exit says the timeout is ping-exit rather than ping-restart.
func (s *Session) Keepalive() (interval, timeout time.Duration, exit bool) {
	if s.pingExit > 0 {
		return s.ping, s.pingExit, true
	}
	return s.ping, s.pingRst, false
}

// Activate installs the first key (from FirstKey) as the primary key: the
// session is connected. It clears dk.
func (s *Session) Activate(dk *DataKey) error {
	k := s.keys[0]
	if err := s.installKey(SlotPrimary, k, dk); err != nil {
		return err
	}
	s.primary = k
	s.connected = true
	return nil
}

// installKey hands a key to the data plane and wipes the session's copy.
func (s *Session) installKey(slot KeySlot, k *key, dk *DataKey) error {
	k.cipher = dk.Cipher
	err := s.plane.InstallKey(slot, dk)
	dk.Clear()
	if err != nil {
		return fmt.Errorf("install key %d in the %s slot: %w", k.id, slot, err)
	}
	k.meter = nil
	if mp, ok := s.plane.(MeteredPlane); ok {
		k.meter = mp.Meter(k.id)
	}
	return nil
}

// activateRenegotiated switches sending to a renegotiated key once its
// key-method 2 exchange completed; the previous key stays valid for
// receiving as the lame duck.
func (s *Session) activateRenegotiated(k *key) error {
	dk, err := s.deriveKey(k)
	if err != nil {
		return err
	}
	defer dk.Clear()
	return s.useKey(k, dk)
}

// useKey makes k, with its new data key, the primary key: into the
// secondary slot (after dropping a lame duck still there), then swapped to
// primary, so the previous primary stays in the secondary slot as the lame
// duck until tran-window after this renegotiation started.
func (s *Session) useKey(k *key, dk *DataKey) error {
	k.established = s.now()
	if s.lame != nil {
		if err := s.plane.DeleteKey(SlotSecondary); err != nil {
			return fmt.Errorf("delete lame-duck key %d: %w", s.lame.id, err)
		}
		s.lame = nil
	}
	if err := s.installKey(SlotSecondary, k, dk); err != nil {
		return err
	}
	if err := s.plane.SwapKeys(); err != nil {
		return fmt.Errorf("swap to key %d: %w", k.id, err)
	}
	if old := s.primary; old != nil && old != k {
		// The old TLS session is no longer needed; its reliability
		// layer stays so late retransmissions are still acknowledged.
		old.retired = true
		old.conn.Close()
		old.mustDie = k.started.Add(s.cfg.Limits.TranWindow)
		s.lame = old
	}
	s.primary = k
	s.h.KeyRotated()
	s.log.Info("renegotiated", "key_id", k.id, "took", s.now().Sub(k.started).Round(time.Millisecond))
	return nil
}

// AuthPending takes the server's AUTH_PENDING timeout in seconds (0: none
// given): the handshake may take that long from now, bounded as in
// authPendingWait.
func (s *Session) AuthPending(timeout int) {
	if timeout > 0 {
		s.handWindow = s.now().Sub(s.started) + s.authPendingWait(timeout)
	}
}

// authPendingWait is how long the handshake may wait after AUTH_PENDING
// with the server's timeout in seconds: as OpenVPN, at most
// max(reneg-sec/2, hand-window). Compared in seconds, so a huge timeout
// cannot overflow time.Duration (which would end the handshake at once).
func (s *Session) authPendingWait(timeout int) time.Duration {
	limit := max(s.cfg.Limits.RenegSec/2, s.cfg.HandWindow)
	if int64(timeout) >= int64(limit/time.Second) {
		return limit
	}
	return time.Duration(timeout) * time.Second
}

// SendCRResponse sends the user's answer to a CR_TEXT challenge.
func (s *Session) SendCRResponse(answer string) {
	k := s.keys[0]
	if s.primary != nil {
		k = s.primary
	}
	if k == nil || k.tls == nil {
		return
	}
	if err := s.sendControl(k, ctlmsg.CRResponse, base64.StdEncoding.EncodeToString([]byte(answer))); err != nil {
		s.log.Debug("CR_RESPONSE", "err", err)
	}
}

// SendExit queues EXIT (cc-exit) on the primary key of a connected
// session; Flush sends it and ExitAcked says when it was acknowledged.
func (s *Session) SendExit() error {
	if s.primary == nil {
		return errors.New("send EXIT: not connected")
	}
	return s.sendControl(s.primary, ctlmsg.Exit, "")
}

// ExitAcked says everything sent on the primary key was acknowledged.
func (s *Session) ExitAcked() bool { return s.primary != nil && s.primary.rel.Idle() }
