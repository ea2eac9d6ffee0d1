package engine

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/netconf"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/ctlmsg"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/ctlwrap"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/datachan"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/dataplane"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/push"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/reliable"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/transport"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/wire"
)

// protoBits are the IV_PROTO capabilities this engine implements.
// ProtoDNSOptionV2: the push package parses the 2.6 "dns" option and netcfg
// applies it (helper/netcfg/dns).
const protoBits = ctlmsg.ProtoDataV2 | ctlmsg.ProtoRequestPush | ctlmsg.ProtoTLSKeyExport |
	ctlmsg.ProtoAuthPendingKW | ctlmsg.ProtoCCExitNotify | ctlmsg.ProtoAuthFailTemp |
	ctlmsg.ProtoDNSOptionV2

// fatalError ends Run: retrying would not help (bad credentials, the
// server's HALT, a certificate that does not verify).
type fatalError struct {
	state State
	err   error
}

func (e *fatalError) Error() string { return e.err.Error() }
func (e *fatalError) Unwrap() error { return e.err }

func fatal(s State, format string, args ...any) error {
	return &fatalError{state: s, err: fmt.Errorf(format, args...)}
}

// errNoResponse marks an attempt that never heard from the server.
var errNoResponse = errors.New("no response from server")

// keyState is one key_id's control session: its reliability layer, the
// TLS session running over it and the key-method 2 exchange.
type keyState struct {
	id       uint8
	rel      *reliable.Layer
	conn     *ctlConn
	tls      *tls.Conn
	gateOpen bool        // TLS output may go on the wire
	firstOp  wire.Opcode // opcode of the first TLS packet (CONTROL_WKC_V1 when asked)
	km2      ctlmsg.KeyMethod2
	server   *ctlmsg.ServerKeyMethod2
	tlsDone  bool
	retired  bool // replaced by a renegotiated key; its TLS session was closed on purpose
	started  time.Time
	// established: when its data key came into use (the reneg-sec age);
	// mustDie: when a lame-duck key stops decrypting (tran-window).
	established, mustDie time.Time
	// dataKey is the userspace data key (nil when offloaded); cipher
	// names the data cipher either way.
	dataKey *datachan.Key
	cipher  string
}

type tlsEvent struct {
	k         *keyState
	handshake bool // the handshake finished (err says how)
	msg       []byte
	err       error
}

// attempt is one connection to one server address, from the socket to
// ping-restart or disconnect. Its goroutines (socket reader, TLS readers)
// stop when done is closed and the transport and control conns are closed.
type attempt struct {
	c   *Client
	o   *options
	dp  *dataPlane
	ep  endpoint
	tr  transport.Conn
	pre transport.Conn // opened by happy eyeballs for the first runOnce (net_happy.go)
	log *slog.Logger

	wrap      ctlwrap.Wrapper
	localSID  wire.SessionID
	remoteSID wire.SessionID
	gotReset  bool

	ctlIn   chan []byte
	readErr chan error
	wake    chan struct{}
	events  chan tlsEvent
	done    chan struct{}
	wg      sync.WaitGroup
	ctx     context.Context
	cancel  context.CancelFunc

	keys    [8]*keyState
	cur     *keyState // newest key (being negotiated or active)
	primary *keyState // key the data channel sends with
	lame    *keyState // previous primary, still decrypting until lame.mustDie
	// Keys reach the data plane only through plane: user, or dco once
	// the connection's data channel is offloaded.
	plane KeyPlane
	user  *userPlane
	dco   DCOPlane
	conn  *dataplane.Conn // the userspace data plane on tr (dataplane.go)

	started   time.Time
	lastRecv  atomic.Int64
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
	// Session limits (timers.go): the connection came up at connectedAt;
	// inactive counts tunnel bytes from inactMark since inactSince.
	renegAfter              time.Duration
	connectedAt, inactSince time.Time
	inactMark               int64
	inactive                time.Duration
	inactiveBytes           int64
	sessionTimeout          time.Duration
	ccExit                  bool
	comp                    framing // compression framing of data payloads (data_comp.go)
	// sentToken: the key-method 2 message carried the auth-token instead
	// of the password, so an AUTH_FAILED means the token was refused.
	sentToken       bool
	authPendingSeen bool

	wbuf []byte
	out  []wire.ControlPacket
}

func newAttempt(c *Client, dp *dataPlane, ep endpoint) *attempt {
	c.sess.init()
	a := &attempt{
		c: c, o: &c.opts, dp: dp, ep: ep,
		log:        c.log.With("server", ep.String()),
		ctlIn:      make(chan []byte, 256),
		readErr:    make(chan error, 1),
		wake:       make(chan struct{}, 1),
		events:     make(chan tlsEvent, 16),
		done:       make(chan struct{}),
		asm:        c.cfg.Profile.PushAssembler(),
		handWindow: c.opts.handWindow,
		ping:       c.opts.ping,
		pingRst:    c.opts.pingRestart,
		pingExit:   c.opts.lim.pingExit,
	}
	a.user = &userPlane{a: a}
	a.plane = a.user
	return a
}

// runOnce connects and serves until the connection ends. It returns nil
// only when ctx was cancelled. run (ctl_auth.go) repeats it when the
// server asks for a retry.
func (a *attempt) runOnce(ctx context.Context) (err error) {
	a.ctx, a.cancel = context.WithCancel(ctx)
	defer a.cancel()
	a.user = &userPlane{a: a}
	a.plane, a.dco, a.conn = a.user, nil, nil
	a.started = a.c.now()
	a.renegAfter = a.o.lim.renegAfter(mrand.New(mrand.NewPCG(mrand.Uint64(), mrand.Uint64())))
	dctx, dcancel := context.WithTimeout(a.ctx, a.ep.firstResponseTimeout())
	a.tr, err = a.openTransport(dctx) // net_float.go
	dcancel()
	if err != nil {
		return err
	}
	a.setConnInfo()
	if a.wrap, err = a.o.newWrapper(); err != nil {
		a.tr.Close()
		return &fatalError{state: StateFailed, err: err}
	}
	if a.localSID, err = wire.NewSessionID(); err != nil {
		a.tr.Close()
		return err
	}
	defer a.shutdown()

	conn := a.dataConn()
	a.wg.Add(1)
	go a.socketReader(conn)

	k0, err := a.newKey(0)
	if err != nil {
		return &fatalError{state: StateFailed, err: err}
	}
	resetOp := wire.OpControlHardResetClientV2
	if a.o.wrapMode == "tls-crypt-v2" {
		resetOp = wire.OpControlHardResetClientV3
	}
	// Until the server answers, resend the reset every tls-timeout instead
	// of backing off, so a few lost datagrams do not use up the
	// no-response window.
	k0.rel.SetMaxTimeout(0)
	k0.rel.Send(resetOp, nil)
	a.log.Debug("connecting", "session", a.localSID.String())
	a.c.setState(StateWaitingForServer, "")
	return a.loop()
}

func (a *attempt) setConnInfo() {
	ci := ConnInfo{Proto: a.ep.proto(), ServerHost: a.ep.host}
	if ap, err := netip.ParseAddrPort(a.ep.addr); err == nil {
		ci.ServerIP = ap.Addr().String()
		ci.Port = uint32(ap.Port())
		if ap.Addr().Is6() {
			ci.Proto += "6"
		}
	}
	a.c.setConnection(ci)
}

// shutdown stops every goroutine of the attempt and waits for them.
func (a *attempt) shutdown() {
	a.dp.StopSending()
	close(a.done)
	a.cancel()
	a.closeDCO() // before the socket closes: the peer holds it
	a.tr.Close()
	for _, k := range a.keys {
		if k != nil {
			k.conn.Close()
		}
	}
	a.wg.Wait()
}

// newKey starts the control session of one key_id: a reliability layer
// and a TLS client whose handshake begins at once (its first flight is held
// back until the reset exchange allows it).
func (a *attempt) newKey(id uint8) (*keyState, error) {
	cfg, err := buildTLSConfig(a.o.tls)
	if err != nil {
		return nil, err
	}
	k := &keyState{
		id:      id,
		rel:     reliable.New(reliable.Config{Timeout: a.o.tlsTimeout}),
		firstOp: wire.OpControlV1,
		started: a.c.now(),
	}
	k.conn = newCtlConn(a.wake, a.tr.RemoteAddr(), a.tr.RemoteAddr())
	k.tls = tls.Client(k.conn, cfg)
	if old := a.keys[id]; old != nil {
		old.conn.Close()
	}
	a.keys[id] = k
	a.cur = k
	a.wg.Add(1)
	go a.tlsReader(k)
	return k, nil
}

func (a *attempt) tlsReader(k *keyState) {
	defer a.wg.Done()
	post := func(ev tlsEvent) bool {
		select {
		case a.events <- ev:
			return true
		case <-a.done:
			return false
		}
	}
	err := k.tls.HandshakeContext(a.ctx)
	if !post(tlsEvent{k: k, handshake: true, err: err}) || err != nil {
		return
	}
	buf := make([]byte, 64<<10)
	for {
		n, err := k.tls.Read(buf)
		if err != nil {
			post(tlsEvent{k: k, err: err})
			return
		}
		if !post(tlsEvent{k: k, msg: append([]byte(nil), buf[:n]...)}) {
			return
		}
	}
}

func (a *attempt) loop() error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if err := a.flush(); err != nil {
			return err
		}
		now := a.c.now()
		if err := a.checkTimers(now); err != nil {
			return err
		}
		if err := a.flush(); err != nil {
			return err
		}
		timer.Reset(max(a.nextWake(now).Sub(now), time.Millisecond))
		select {
		case <-a.ctx.Done():
			a.sayGoodbye()
			return nil
		case pkt := <-a.ctlIn:
			if err := a.handlePacket(pkt); err != nil {
				return err
			}
			// Take whatever else arrived so acks go out together.
			for more := true; more; {
				select {
				case pkt := <-a.ctlIn:
					if err := a.handlePacket(pkt); err != nil {
						return err
					}
				default:
					more = false
				}
			}
		case err := <-a.readErr:
			return fmt.Errorf("connection to %s lost: %w", a.ep, err)
		case why := <-a.dcoDeleted():
			return a.peerDeleted(why)
		case ev := <-a.events:
			if err := a.handleTLS(ev); err != nil {
				return err
			}
		case ans := <-a.c.sess.crAnswer:
			a.sendCRResponse(ans)
		case <-a.wake:
		case <-timer.C:
		}
	}
}

// flush moves TLS output into the reliability layers and puts due packets
// on the wire.
func (a *attempt) flush() error {
	now := a.c.now()
	for _, k := range a.keys {
		if k == nil {
			continue
		}
		if k.gateOpen {
			for _, b := range k.conn.takeOutput() {
				a.queueTLS(k, b)
			}
		}
		if k.firstOp == wire.OpControlWKCV1 {
			// Hold the ack of the server's reset until the ClientHello is
			// ready: it must travel inside the P_CONTROL_WKC_V1 packet, or
			// the stateless server cannot check its cookie and drops us.
			continue
		}
		a.out = k.rel.Output(now, a.out[:0])
		for i := range a.out {
			p := &a.out[i]
			p.KeyID = k.id
			p.SessionID = a.localSID
			p.RemoteSessionID = a.remoteSID
			var err error
			a.wbuf, err = a.wrap.Wrap(a.wbuf[:0], p)
			if err != nil {
				return fmt.Errorf("wrap %v: %w", p.Opcode, err)
			}
			if err := a.tr.WritePacket(a.wbuf); err != nil {
				return fmt.Errorf("send to %s: %w", a.ep, err)
			}
			a.c.ctr.BytesOut.Add(int64(len(a.wbuf)))
			a.c.ctr.PktsOut.Add(1)
		}
	}
	return nil
}

// queueTLS cuts one TLS write into CONTROL_V1 payloads that keep the
// wrapped packet within max-packet-size even with a full ack array.
func (a *attempt) queueTLS(k *keyState, b []byte) {
	for len(b) > 0 {
		op := wire.OpControlV1
		if k.firstOp != wire.OpControlV1 {
			op, k.firstOp = k.firstOp, wire.OpControlV1
		}
		fixed := 1 + 8 + 1 + 4*wire.MaxAcksPerControl + 8 + 4
		room := max(a.o.maxCtlPacket-ctlwrap.PacketOverhead(a.wrap, op)-fixed, 64)
		n := min(room, len(b))
		k.rel.Send(op, b[:n])
		b = b[n:]
	}
}

func (a *attempt) handlePacket(b []byte) error {
	p, err := a.wrap.Unwrap(b)
	if err != nil {
		a.log.Debug("dropped control packet", "err", err)
		return nil
	}
	if p.Opcode == wire.OpControlHardResetServerV2 {
		if p.KeyID != 0 {
			return nil
		}
		if !a.gotReset {
			a.remoteSID = p.SessionID
		}
	}
	if !a.remoteSIDKnown() || p.SessionID != a.remoteSID {
		a.log.Debug("dropped control packet from another session", "op", p.Opcode)
		return nil
	}
	if len(p.Acks) > 0 && p.RemoteSessionID != a.localSID {
		a.log.Debug("dropped control packet acking another session", "op", p.Opcode)
		return nil
	}
	now := a.c.now()
	a.lastRecv.Store(now.UnixNano())
	a.heard = true

	k := a.keys[p.KeyID]
	// A SOFT_RESET on a key_id that is not the one being negotiated starts
	// a renegotiation; on the current one, or on the primary key while
	// another is being negotiated (a late retransmission), it goes to that
	// key's reliability layer, which acknowledges it.
	if p.Opcode == wire.OpControlSoftResetV1 && (k == nil || (k != a.cur && k != a.primary)) {
		if a.primary == nil {
			return nil // no renegotiation before the first key is up
		}
		if k, err = a.startRenegotiation(p.KeyID); err != nil {
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
			if k.id == 0 && !a.gotReset {
				a.gotReset = true
				k.gateOpen = true
				k.rel.SetMaxTimeout(reliable.DefaultMaxTimeout)
				if a.o.wrapMode == "tls-crypt-v2" {
					resend, err := ctlwrap.ResendWKcRequested(m.Payload)
					if err != nil {
						return fmt.Errorf("server reset: %w", err)
					}
					if resend {
						k.firstOp = wire.OpControlWKCV1
					}
				}
				a.log.Debug("server reset", "server_session", a.remoteSID.String())
			}
		case wire.OpControlSoftResetV1:
			// Our side of the soft reset was queued in startRenegotiation.
		case wire.OpControlV1:
			k.conn.deliver(m.Payload)
		default:
			a.log.Debug("ignored control message", "op", m.Opcode)
		}
	}
	return nil
}

func (a *attempt) remoteSIDKnown() bool { return a.gotReset || !a.remoteSID.IsZero() }

// startRenegotiation begins a fresh TLS session and key-method 2 exchange
// on key_id id while data keeps flowing on the current key: in answer to the
// server's SOFT_RESET, or on our own initiative (reneg-sec, packet-id
// exhaustion). The server answers our SOFT_RESET with its own on the same
// key_id, which the new key's reliability layer then simply receives.
func (a *attempt) startRenegotiation(id uint8) (*keyState, error) {
	a.log.Info("renegotiating", "key_id", id)
	k, err := a.newKey(id)
	if err != nil {
		return nil, err
	}
	k.gateOpen = true
	k.rel.Send(wire.OpControlSoftResetV1, nil)
	return k, nil
}

func (a *attempt) handleTLS(ev tlsEvent) error {
	k := ev.k
	if a.keys[k.id] != k || k.retired {
		return nil // superseded
	}
	if ev.handshake {
		if ev.err != nil {
			if k.id == 0 {
				// Not fatal, as in OpenVPN: a server with an expired
				// certificate or a client clock that is wrong at boot
				// gets fixed while the reconnect policy keeps trying.
				return fmt.Errorf("TLS handshake with %s: %w", a.ep, explainHandshakeError(ev.err)) // tlsconfig.go
			}
			return fmt.Errorf("TLS renegotiation (key %d): %w", k.id, ev.err)
		}
		k.tlsDone = true
		cs := k.tls.ConnectionState()
		a.log.Info("TLS handshake done", "key_id", k.id, "version", tls.VersionName(cs.Version),
			"cipher", tls.CipherSuiteName(cs.CipherSuite), "took", a.c.now().Sub(k.started).Round(time.Millisecond))
		return a.sendKeyMethod2(k)
	}
	if ev.err != nil {
		return fmt.Errorf("control channel (key %d) closed: %w", k.id, ev.err)
	}
	if k.server == nil {
		srv, err := ctlmsg.ParseServerKeyMethod2(ev.msg)
		if err != nil {
			return fmt.Errorf("server key exchange: %w", err)
		}
		k.server = &srv
		if k.id == 0 {
			a.sendPushRequest(a.c.now())
			return nil
		}
		return a.activateRenegotiated(k)
	}
	msg, err := ctlmsg.ParseMessage(ev.msg)
	if err != nil {
		a.log.Debug("bad control message", "err", err)
		return nil
	}
	return a.handleMessage(k, msg)
}

func (a *attempt) sendKeyMethod2(k *keyState) error {
	m := &k.km2
	for _, b := range [][]byte{m.PreMaster[:], m.Random1[:], m.Random2[:]} {
		if _, err := rand.Read(b); err != nil {
			return fmt.Errorf("key-method 2 randoms: %w", err)
		}
	}
	tcp := a.ep.proto() == "tcp"
	m.Options = ctlmsg.OptionsString(ctlmsg.OptionsParams{
		TunMTU:          a.o.tunMTU,
		TCP:             tcp,
		Cipher:          a.o.cipher,
		CipherAnnounced: slices.Contains(a.o.dataCiphers, a.o.cipher),
		Auth:            a.o.auth,
		CompFraming:     a.c.cfg.Profile.Compression() != push.CompressionNone,
		KeyDirection:    map[bool]int{true: a.o.keyDir, false: -1}[a.o.wrapMode == "tls-auth"],
		TLSAuth:         a.o.wrapMode == "tls-auth",
	})
	if a.o.authUserPass {
		if user, token := a.c.sess.authToken(); token != "" {
			m.Username, m.Password = a.o.creds.Username, token
			if user != "" {
				m.Username = user
			}
			a.sentToken = true
		} else if err := a.useCredentials(m); err != nil {
			return err
		}
	}
	m.PeerInfo = ctlmsg.PeerInfo(a.peerInfoParams(tcp)) // peerinfo.go
	if err := m.Validate(); err != nil {
		return fatal(StateFailed, "key-method 2: %w", err)
	}
	// One Write = one TLS record = one message for the server.
	if _, err := k.tls.Write(m.MarshalClient()); err != nil {
		return fmt.Errorf("send key-method 2: %w", err)
	}
	return nil
}

// protoBits is IV_PROTO; tests may withhold TLS_KEY_EXPORT to exercise
// the legacy PRF.
func (a *attempt) protoBits() uint32 {
	if a.o.noEKM {
		return protoBits &^ ctlmsg.ProtoTLSKeyExport
	}
	return protoBits
}

func (a *attempt) sendControl(k *keyState, kind ctlmsg.Kind, body string) error {
	if _, err := k.tls.Write(ctlmsg.Marshal(kind, body)); err != nil {
		return fmt.Errorf("send %v: %w", kind, err)
	}
	return nil
}

func (a *attempt) sendPushRequest(now time.Time) {
	if err := a.sendControl(a.keys[0], ctlmsg.PushRequest, ""); err != nil {
		a.log.Debug("push request", "err", err)
	}
	a.pushTries++
	a.pushNext = now.Add(time.Duration(min(a.pushTries, 2)) * time.Second)
}

func (a *attempt) handleMessage(k *keyState, msg ctlmsg.Message) error {
	switch msg.Kind {
	case ctlmsg.PushReply:
		if a.reply != nil {
			// A late answer to a repeated PUSH_REQUEST, or the renewed
			// auth-token the server sends after a renegotiation.
			a.updateToken(msg.Body)
			return nil
		}
		done, err := a.asm.Add(msg.Body)
		if err != nil {
			return fmt.Errorf("PUSH_REPLY: %w", err)
		}
		if !done {
			return nil
		}
		reply, err := a.asm.Reply()
		if errors.Is(err, push.ErrCompressionRefused) {
			return fatal(StateFailed, "PUSH_REPLY: %w", err)
		}
		if err != nil {
			// What cannot be skipped safely restarts the connection
			// (push/failures.go), as OpenVPN's options errors do.
			return fmt.Errorf("PUSH_REPLY: %w", err)
		}
		a.logPushProblems(reply)
		return a.establish(reply)
	case ctlmsg.AuthFailed:
		return a.authFailed(msg.Body)
	case ctlmsg.AuthPending:
		a.authPending(msg.Body)
		return nil
	case ctlmsg.Restart:
		r := ctlmsg.ParseRestart(msg.Body)
		if !r.KeepCredentials {
			// Without [P] the cached credentials go: the next connection
			// logs in with the real ones instead of the auth-token.
			a.c.sess.dropToken()
		}
		return &restartError{nextRemote: r.NextRemote, err: fmt.Errorf("server requested restart: %s", strings.TrimPrefix(r.Text, ":"))}
	case ctlmsg.Halt:
		return fatal(StateFailed, "server halted the connection: %s", strings.TrimPrefix(ctlmsg.ParseRestart(msg.Body).Text, ":"))
	case ctlmsg.Exit:
		return fmt.Errorf("server is exiting")
	case ctlmsg.Info, ctlmsg.InfoPre:
		a.pendingInfo(msg.Body)
		return nil
	}
	a.log.Debug("ignored control message", "kind", msg.Kind)
	return nil
}

// logPushProblems warns about pushed options that were skipped or not
// understood, so a user or admin can see them in the session log.
func (a *attempt) logPushProblems(r *push.Reply) {
	for _, w := range r.Warnings {
		a.log.Warn("pushed option not applied", "detail", w)
	}
	for _, u := range r.Unhandled {
		name, _, _ := strings.Cut(u, " ")
		a.log.Warn("pushed option unknown to this client, ignored", "option", name)
	}
}

// deriveKey computes the data-channel key of k from the TLS session.
func (a *attempt) deriveKey(k *keyState) (*DataKey, error) {
	r := a.reply
	var block []byte
	if r.TLSEKM {
		cs := k.tls.ConnectionState()
		b, err := cs.ExportKeyingMaterial(datachan.EKMLabel, nil, datachan.KeyBlockLen)
		if err != nil {
			return nil, fmt.Errorf("TLS keying material export: %w", err)
		}
		block = b
	} else {
		b, err := legacyKeyBlock(k, a.localSID, a.remoteSID)
		if err != nil {
			return nil, fmt.Errorf("legacy key derivation: %w", err)
		}
		block = b
	}
	cipher, err := a.dataCipher(r.Cipher)
	if err != nil {
		clear(block)
		return nil, err
	}
	key, err := newDataKey(cipher, a.o.auth, k.id, block, r.PeerID)
	clear(block)
	clear(k.km2.PreMaster[:])
	if err != nil {
		return nil, fmt.Errorf("data channel key (%s): %w", cipher, err)
	}
	return key, nil
}

// installKey hands a key to the data plane and wipes the engine's copy.
func (a *attempt) installKey(slot KeySlot, k *keyState, dk *DataKey) error {
	k.cipher = dk.Cipher
	err := a.plane.InstallKey(slot, dk)
	dk.clear()
	if err != nil {
		return fmt.Errorf("install key %d in the %s slot: %w", k.id, slot, err)
	}
	k.dataKey = a.user.key(k.id)
	return nil
}

func (a *attempt) establish(r *push.Reply) error {
	a.reply = r
	comp := a.c.cfg.Profile.Compression()
	if r.CompressionPushed {
		comp = r.Compression
	}
	a.comp = framingOf(comp)
	if r.Ping > 0 {
		a.ping = time.Duration(r.Ping) * time.Second
	}
	if r.PingRestart > 0 {
		a.pingRst = time.Duration(r.PingRestart) * time.Second
	}
	// ping-exit and ping-restart set one timeout action; a pushed one wins.
	switch {
	case r.PingExit > 0:
		a.pingExit = secs(r.PingExit)
	case r.PingRestart > 0:
		a.pingExit = 0
	}
	a.ccExit = r.CCExit
	a.c.sess.setToken(r.AuthTokenUser, r.AuthToken)
	k := a.keys[0]
	key, err := a.deriveKey(k)
	if err != nil {
		return err // e.g. a pushed cipher that was not offered: reconnect
	}
	defer key.clear()
	k.established = a.c.now()

	cfg, err := r.NetConfig()
	if err != nil {
		return fmt.Errorf("pushed network settings: %w", err)
	}
	if ap, err := netip.ParseAddrPort(a.ep.addr); err == nil {
		cfg.Remote = ap.Addr()
	}
	cfg.MTU = a.acceptedTunMTU(cfg.MTU) // peerinfo.go
	if a.c.cfg.DCO != nil {
		why := a.dcoRefusal(key)
		if why == "" {
			if a.dco, err = a.offload(cfg, key); err != nil {
				why = err.Error()
			}
		}
		if why != "" {
			a.log.Warn("data channel not offloaded, using TUN", "reason", why)
		}
		a.c.setDCO(a.dco, why)
	}
	if a.dco != nil {
		a.dp.closeTun() // a device of an earlier userspace connection
		a.plane = a.dco
		if err := a.dco.SetKeepalive(a.ping, a.pingTimeout()); err != nil {
			return fmt.Errorf("offloaded keepalive: %w", err)
		}
	}
	cfg.VnetHdr = a.c.wantVnetHdr(a.dco != nil)
	if a.dp.tun != nil && !sameNetConfig(a.dp.tunCfg, cfg) {
		a.dp.closeTun()
	}
	if a.dco == nil && a.dp.tun == nil {
		tun, err := a.c.cfg.Tun.OpenTun(a.ctx, cfg)
		if err != nil {
			if a.ctx.Err() != nil {
				return nil
			}
			return fatal(StateFailed, "open TUN device: %w", err)
		}
		a.dp.startTun(tun, cfg)
	}
	if err := a.installKey(SlotPrimary, k, key); err != nil {
		return err
	}
	a.primary = k
	a.dp.lastSent.Store(a.c.now().UnixNano())
	a.connected = true
	a.startSessionTimers(a.c.now(), r.InactiveSeconds, r.SessionTimeout)
	dev := "offloaded"
	if a.dp.tun != nil {
		dev = a.dp.tun.Name()
	}
	a.log.Info("connected", "tun", dev, "offloaded", a.dco != nil, "cipher", k.cipher, "peer_id", r.PeerID,
		"ekm", r.TLSEKM, "framing", a.comp.String(), "took", a.c.now().Sub(a.started).Round(time.Millisecond))
	a.c.setState(StateConnected, "")
	return nil
}

// activateRenegotiated switches sending to a renegotiated key once its
// key-method 2 exchange completed; the previous key stays valid for
// receiving as the lame duck.
func (a *attempt) activateRenegotiated(k *keyState) error {
	key, err := a.deriveKey(k)
	if err != nil {
		return err
	}
	defer key.clear()
	return a.useKey(k, key)
}

// useKey makes k, with its new data key, the primary key: into the
// secondary slot (after dropping a lame duck still there), then swapped to
// primary, so the previous primary stays in the secondary slot as the lame
// duck until tran-window after this renegotiation started.
func (a *attempt) useKey(k *keyState, key *DataKey) error {
	k.established = a.c.now()
	if a.lame != nil {
		if err := a.plane.DeleteKey(SlotSecondary); err != nil {
			return fmt.Errorf("delete lame-duck key %d: %w", a.lame.id, err)
		}
		a.lame = nil
	}
	if err := a.installKey(SlotSecondary, k, key); err != nil {
		return err
	}
	if err := a.plane.SwapKeys(); err != nil {
		return fmt.Errorf("swap to key %d: %w", k.id, err)
	}
	if old := a.primary; old != nil && old != k {
		// The old TLS session is no longer needed; its reliability
		// layer stays so late retransmissions are still acknowledged.
		old.retired = true
		old.conn.Close()
		old.mustDie = k.started.Add(a.o.lim.tranWindow)
		a.lame = old
	}
	a.primary = k
	a.c.ctr.KeyRotations.Add(1)
	a.log.Info("renegotiated", "key_id", k.id, "took", a.c.now().Sub(k.started).Round(time.Millisecond))
	return nil
}

// sayGoodbye tells the server we are leaving when explicit-exit-notify
// asks for it: EXIT on the control channel when cc-exit was negotiated,
// else OCC EXIT data packets (UDP only). It waits briefly for the EXIT to
// be acknowledged.
func (a *attempt) sayGoodbye() {
	if !a.connected {
		return
	}
	// Like OpenVPN, only when explicit-exit-notify is configured or pushed;
	// otherwise the server notices through ping-restart (or the TCP close).
	n := a.o.explicitExit
	if a.reply != nil && a.reply.ExplicitExitNotify > n {
		n = a.reply.ExplicitExitNotify
	}
	if n <= 0 {
		return
	}
	if a.ccExit && a.primary != nil {
		if err := a.sendControl(a.primary, ctlmsg.Exit, ""); err != nil {
			return
		}
		deadline := time.Now().Add(500 * time.Millisecond)
		for time.Now().Before(deadline) {
			if err := a.flush(); err != nil {
				return
			}
			if a.primary.rel.Idle() {
				return
			}
			select {
			case pkt := <-a.ctlIn:
				_ = a.handlePacket(pkt)
			case <-time.After(50 * time.Millisecond):
			}
		}
		return
	}
	if a.ep.proto() == "udp" {
		a.paceExitPackets(n) // exit_notify.go
	}
}

func sameNetConfig(a, b netconf.Config) bool { return reflect.DeepEqual(a, b) }
