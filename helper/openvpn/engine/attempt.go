package engine

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/netconf"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/control"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/ctlmsg"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/ctlwrap"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/dataplane"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/push"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/transport"
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
var errNoResponse = control.ErrNoResponse

// attempt is one connection to one server address, from the socket to
// ping-restart or disconnect: the orchestration around one control session
// (helper/openvpn/control), which runs the protocol. Its goroutines (socket
// reader, the session's TLS readers) stop when done is closed and the
// transport and the session are closed.
type attempt struct {
	c   *Client
	o   *options
	dp  *dataPlane
	ep  endpoint
	tr  transport.Conn
	pre transport.Conn // opened by happy eyeballs for the first runOnce (net_happy.go)
	log *slog.Logger
	s   *control.Session

	ctlIn   chan []byte
	readErr chan error
	done    chan struct{}
	wg      sync.WaitGroup
	ctx     context.Context
	cancel  context.CancelFunc

	// Keys reach the data plane only through the session's KeyPlane:
	// user, or dco once the connection's data channel is offloaded.
	user *userPlane
	dco  DCOPlane
	conn *dataplane.Conn // the userspace data plane on tr (dataplane.go)

	started   time.Time
	lastRecv  atomic.Int64 // unix nanos of the last data packet received
	heard     bool
	connected bool

	reply *push.Reply
	// Session limits (session_limits.go): the connection came up at
	// connectedAt; inactive counts tunnel bytes from inactMark since
	// inactSince.
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
	// release is the held client's gate while this attempt holds
	// key-method 2 (hold.go); nil when not held.
	release <-chan struct{}
}

func newAttempt(c *Client, dp *dataPlane, ep endpoint) *attempt {
	c.sess.init()
	a := &attempt{
		c: c, o: &c.opts, dp: dp, ep: ep,
		log:     c.log.With("server", ep.String()),
		ctlIn:   make(chan []byte, 256),
		readErr: make(chan error, 1),
		done:    make(chan struct{}),
	}
	a.user = &userPlane{a: a}
	return a
}

// runOnce connects and serves until the connection ends. It returns nil
// only when ctx was cancelled. run (ctl_auth.go) repeats it when the
// server asks for a retry.
func (a *attempt) runOnce(ctx context.Context) (err error) {
	a.ctx, a.cancel = context.WithCancel(ctx)
	defer a.cancel()
	a.user = &userPlane{a: a}
	a.dco, a.conn = nil, nil
	a.started = a.c.now()
	dctx, dcancel := context.WithTimeout(a.ctx, a.ep.firstResponseTimeout())
	a.tr, err = a.openTransport(dctx) // net_float.go
	dcancel()
	if err != nil {
		return err
	}
	a.setConnInfo()
	a.release = a.c.holdGate()
	wrap, err := a.o.newWrapper()
	if err != nil {
		a.tr.Close()
		return &fatalError{state: StateFailed, err: err}
	}
	a.s, err = control.New(a.ctx, a.sessionConfig(wrap), a)
	if err != nil {
		a.tr.Close()
		return err
	}
	defer a.shutdown()

	conn := a.dataConn()
	a.wg.Add(1)
	go a.socketReader(conn)

	if err := a.s.Start(); err != nil {
		return &fatalError{state: StateFailed, err: err}
	}
	// The reset leaves before the state is reported (a status signal and
	// log lines through the bus in the backend).
	if err := a.s.Flush(); err != nil {
		return err
	}
	a.c.setState(StateWaitingForServer, "")
	return a.loop()
}

// sessionConfig is the control session's configuration for this
// attempt: the profile's options, the endpoint and the engine's clock.
func (a *attempt) sessionConfig(wrap ctlwrap.Wrapper) control.Config {
	return control.Config{
		Clock:         a.c.clock,
		Log:           a.log,
		Conn:          countingConn{a.tr, &a.c.ctr},
		Wrap:          wrap,
		TLSCryptV2:    a.o.wrapMode == "tls-crypt-v2",
		NewTLS:        func() (*tls.Config, error) { return buildTLSConfig(a.o.tls) },
		ExplainTLS:    explainHandshakeError, // tlsconfig.go
		Server:        a.ep.String(),
		Started:       a.started,
		FirstResponse: a.ep.firstResponseTimeout(),
		TLSTimeout:    a.o.tlsTimeout,
		HandWindow:    a.o.handWindow,
		MaxPacket:     a.o.maxCtlPacket,
		Limits:        a.o.lim,
		Auth:          a.o.auth,
		Ping:          a.o.ping,
		PingRestart:   a.o.pingRestart,
		PingExit:      a.o.lim.PingExit,
		Push:          a.c.cfg.Profile.PushAssembler(),
		Plane:         a.user,
		// HoldKeyMethod2: a held client (hold.go).
		HoldKeyMethod2: a.release != nil,
	}
}

// countingConn is the transport as the control session writes to it, counting
// what it sends.
type countingConn struct {
	transport.Conn
	ctr *dataplane.Counters
}

func (c countingConn) WritePacket(b []byte) error {
	if err := c.Conn.WritePacket(b); err != nil {
		return err
	}
	c.ctr.BytesOut.Add(int64(len(b)))
	c.ctr.PktsOut.Add(1)
	return nil
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
	a.heard = a.heard || a.s.Heard()
	a.dp.StopSending()
	close(a.done)
	a.cancel()
	a.closeDCO() // before the socket closes: the peer holds it
	a.tr.Close()
	a.s.Close()
	a.wg.Wait()
}

func (a *attempt) loop() error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if err := a.s.Flush(); err != nil {
			return err
		}
		now := a.c.now()
		if err := a.checkTimers(now); err != nil {
			return err
		}
		if err := a.s.Flush(); err != nil {
			return err
		}
		wake := a.s.NextWake(now)
		if d := a.holdDeadline(); !d.IsZero() {
			if !now.Before(d) {
				return errHoldExpired
			}
			wake = minTime(wake, d)
		}
		timer.Reset(max(wake.Sub(now), time.Millisecond))
		select {
		case <-a.ctx.Done():
			a.sayGoodbye()
			return nil
		case pkt := <-a.ctlIn:
			// After the handshake the session answers the server's
			// messages inside HandlePacket (Handler calls included).
			if err := a.s.HandlePacket(pkt); err != nil {
				return sessionError(err)
			}
			// Take whatever else arrived so acks go out together.
			for more := true; more; {
				select {
				case pkt := <-a.ctlIn:
					if err := a.s.HandlePacket(pkt); err != nil {
						return sessionError(err)
					}
				default:
					more = false
				}
			}
		case err := <-a.readErr:
			return fmt.Errorf("connection to %s lost: %w", a.ep, err)
		case why := <-a.dcoDeleted():
			return a.peerDeleted(why)
		case ev := <-a.s.Events():
			if err := a.s.HandleTLS(ev); err != nil {
				return sessionError(err)
			}
		case <-a.release:
			if err := a.released(); err != nil {
				return err
			}
		case ans := <-a.c.sess.crAnswer:
			a.s.SendCRResponse(ans)
		case <-a.s.Wake():
		case <-timer.C:
		}
	}
}

// sessionError gives the session's own errors the weight the engine's
// policy needs: refused compression cannot be fixed by retrying, and
// ping-exit ends the session (Failed) instead of reconnecting. Errors of
// the engine's own handler methods pass through unchanged.
func sessionError(err error) error {
	var fe *fatalError
	if err == nil || errors.As(err, &fe) {
		return err
	}
	if errors.Is(err, push.ErrCompressionRefused) || errors.Is(err, control.ErrPingExit) {
		return &fatalError{state: StateFailed, err: err}
	}
	return err
}

// KeyMethod2 fills in the client's key-method 2 message (control.Handler).
func (a *attempt) KeyMethod2(m *ctlmsg.KeyMethod2) error {
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

// Message handles the server's control messages other than the first
// PUSH_REPLY (control.Handler).
func (a *attempt) Message(msg ctlmsg.Message) error {
	switch msg.Kind {
	case ctlmsg.PushReply:
		// A late answer to a repeated PUSH_REQUEST, or the renewed
		// auth-token the server sends after a renegotiation.
		a.updateToken(msg.Body)
		return nil
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

// KeyRotated counts a renegotiated key (control.Handler).
func (a *attempt) KeyRotated() { a.c.ctr.KeyRotations.Add(1) }

// LastReceived, LastSent and SendPing are the data channel as the
// session's keepalive sees it (control.Handler).
func (a *attempt) LastReceived() time.Time { return time.Unix(0, a.lastRecv.Load()) }
func (a *attempt) LastSent() time.Time     { return time.Unix(0, a.dp.lastSent.Load()) }
func (a *attempt) SendPing() error         { return a.dp.sendPing() }

// PushReply brings the connection up once the server's PUSH_REPLY is in
// (control.Handler): the data plane (offloaded or a TUN device) with the
// pushed settings, then the first key.
func (a *attempt) PushReply(r *push.Reply) error {
	a.reply = r
	comp := a.c.cfg.Profile.Compression()
	if r.CompressionPushed {
		comp = r.Compression
	}
	a.comp = framingOf(comp)
	a.ccExit = r.CCExit
	a.c.sess.setToken(r.AuthTokenUser, r.AuthToken)
	key, err := a.s.FirstKey()
	if err != nil {
		return err // e.g. a pushed cipher that was not offered: reconnect
	}
	defer key.Clear()

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
		a.s.Offload(a.dco)
		ping, timeout, _ := a.s.Keepalive()
		if err := a.dco.SetKeepalive(ping, timeout); err != nil {
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
	cipher := key.Cipher
	if err := a.s.Activate(key); err != nil {
		return err
	}
	a.dp.lastSent.Store(a.c.now().UnixNano())
	a.connected = true
	a.startSessionTimers(a.c.now(), r.InactiveSeconds, r.SessionTimeout)
	dev := "offloaded"
	if a.dp.tun != nil {
		dev = a.dp.tun.Name()
	}
	took := a.c.now().Sub(a.started).Round(time.Millisecond)
	// The state first: the backend's CONN_CONNECTED leaves ahead of the
	// log line's signal on the same bus connection.
	a.c.setState(StateConnected, "")
	a.log.Info("connected", "tun", dev, "offloaded", a.dco != nil, "cipher", cipher, "peer_id", r.PeerID,
		"ekm", r.TLSEKM, "framing", a.comp.String(), "took", took)
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
	if a.ccExit && a.s != nil && a.s.Connected() {
		if err := a.s.SendExit(); err != nil {
			return
		}
		deadline := time.Now().Add(500 * time.Millisecond)
		for time.Now().Before(deadline) {
			if err := a.s.Flush(); err != nil {
				return
			}
			if a.s.ExitAcked() {
				return
			}
			select {
			case pkt := <-a.ctlIn:
				_ = a.s.HandlePacket(pkt)
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
