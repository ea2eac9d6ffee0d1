// Package engine is the OpenVPN client: it resolves and connects to the
// profile's remotes, runs one control session per connection attempt
// (helper/openvpn/control: the reset handshake, TLS over the reliable
// control channel, the key-method 2 exchange, PUSH_REQUEST/PUSH_REPLY,
// renegotiation, keepalive), opens the TUN device through its TunProvider
// once the session is up and then moves packets between TUN and socket,
// reconnecting as the retry policy says.
//
// The control plane (one goroutine per connection attempt, driving the
// control session with the engine's Clock) and the data plane
// (helper/openvpn/dataplane: a socket reader per attempt and a TUN reader)
// are separate; keys move
// from one to the other only through control.KeyPlane (userplane.go), which
// data channel offload implements too (dco.go).
//
// The layers below are packages of their own: the transport socket
// (UDP with recvmmsg batches, float, TCP framing, the HTTP proxy) is
// helper/openvpn/transport, read through its batch interface
// (transport.BatchConn); the TUN device is read through tunio.Device,
// which a device may implement to hand out several packets per call.
// The engine keeps endpoint selection (endpoint.go, net_*.go) and the
// attempt around the control session (attempt.go, ctl_auth.go, the session
// limits in session_limits.go), and drives the data plane (dataplane.go).
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/netconf"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/dataplane"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/tunio"
)

// State is the client's connection state as reported through Events.
type State int

const (
	StateConnecting State = iota
	// StateWaitingForServer: the transport is up, the server has not
	// completed the handshake yet (also while AUTH_PENDING).
	StateWaitingForServer
	StateConnected
	StateReconnecting
	StateDisconnected
	StateAuthFailed
	StateFailed
	// StateDone: the session ended by its own limits (inactive,
	// session-timeout); detail says which. Nothing failed.
	StateDone
	// StateCredentialsNeeded: the server needs the credentials again and
	// they may not be re-sent (static challenge, CRV1 answer,
	// auth-nocache) while no auth-token stands in for them: Run returns;
	// the caller asks the user and starts a new Client.
	StateCredentialsNeeded
)

func (s State) String() string {
	switch s {
	case StateConnecting:
		return "connecting"
	case StateWaitingForServer:
		return "waiting-for-server"
	case StateConnected:
		return "connected"
	case StateReconnecting:
		return "reconnecting"
	case StateDisconnected:
		return "disconnected"
	case StateAuthFailed:
		return "auth-failed"
	case StateFailed:
		return "failed"
	case StateDone:
		return "done"
	case StateCredentialsNeeded:
		return "credentials-needed"
	}
	return fmt.Sprintf("state(%d)", int(s))
}

// Events receives state changes; detail is a human-readable reason (the
// AUTH_FAILED text, the error that made the connection fail, …). Calls come
// from the engine's goroutines, one at a time, and must not block for long.
type Events interface {
	State(s State, detail string)
}

// TunDevice is an open layer-3 TUN device: each Read returns one IP packet,
// each Write takes one. Close must unblock a pending Read. One that also
// implements tunio.Device is read in batches.
type TunDevice = tunio.PacketDevice

// TunProvider creates and configures the TUN device for a tunnel (in the
// helper: by asking netcfg over D-Bus).
type TunProvider interface {
	OpenTun(ctx context.Context, cfg netconf.Config) (TunDevice, error)
}

// Credentials for auth-user-pass. They are sent to the server and never logged.
type Credentials struct {
	Username, Password string
	// ChallengeResponse answers the profile's static-challenge; when set,
	// the engine combines it with Password as the profile's format says
	// (SCRV1 or concatenation). When empty, Password is sent unchanged.
	ChallengeResponse string
	// KeyPassphrase opens an encrypted private key (PEM or PKCS#12). When
	// the key needs one and this is empty, New fails with
	// ErrKeyPassphraseNeeded; a wrong one gives ErrKeyPassphraseWrong.
	KeyPassphrase string
}

// Config configures a Client.
type Config struct {
	Profile     *profile.Profile
	Credentials Credentials
	Tun         TunProvider
	Events      Events       // optional
	Logger      *slog.Logger // optional
	Version     string       // announced as IV_VER / IV_GUI_VER
	// Dial, if set, opens the connection to the server instead of
	// net.Dialer (e.g. to create the socket in another network namespace
	// or with a firewall mark). It must return a connected socket.
	Dial DialFunc
	// ListenPacket, if set, opens the unconnected UDP socket of a profile
	// with "float" instead of net.ListenConfig (net_float.go).
	ListenPacket ListenFunc
	// ProxyCredentials answer an http-proxy whose profile line says
	// "auto", "auto-nct" or "stdin" (the backend asks the user for them).
	ProxyCredentials Credentials
	// Resolver looks up remote host names; nil: net.DefaultResolver.
	Resolver *net.Resolver
	// DCO, if set, offloads the data channel of every connection it can
	// carry (dco.go); the others run in userspace on a device from Tun.
	DCO DCO
	// Prepared, if set, is the profile's TLS configuration built ahead
	// (Prepare); used when Profile and Credentials.KeyPassphrase are what
	// it was prepared from, else built again.
	Prepared *Prepared
	// Hold makes Run begin the connection ahead of the user's Connect
	// (hold.go): it resolves, connects and runs the TLS handshake, reports
	// no state and holds key-method 2 until Release. Credentials and DCO
	// come with Release.
	Hold bool
}

// Stats are the client's traffic counters. BytesIn/Out and PacketsIn/Out
// count what crossed the transport socket (all packets, control included);
// TunBytesIn/TunPacketsIn what was read from the TUN device (to be sent to
// the server), TunBytesOut/TunPacketsOut what was written to it — the same
// directions openvpn3 uses.
type Stats struct {
	BytesIn, BytesOut, PacketsIn, PacketsOut             int64
	TunBytesIn, TunBytesOut, TunPacketsIn, TunPacketsOut int64
	// KeyRotations counts data-channel keys that replaced an earlier one
	// within a connection (renegotiations from either side).
	KeyRotations int64
	// Decompressed counts data packets the server sent compressed and
	// the client decompressed (allow-compression asym).
	Decompressed int64
}

// ConnInfo describes the current (or last) server connection.
type ConnInfo struct {
	Proto      string // "udp" or "tcp" (with "6" appended for IPv6)
	ServerHost string // as written in the profile
	ServerIP   string
	Port       uint32
}

// Client is one VPN session. Run it once.
type Client struct {
	cfg    Config
	opts   options
	log    *slog.Logger
	events Events

	ctr dataplane.Counters
	// credsSent: the user's credentials (not an auth-token) went to a
	// server; one-time credentials are not sent again (creds.go).
	credsSent atomic.Bool

	sess sessionState // auth-token, pending challenge (ctl_auth.go)

	remotes  []connEntry
	retry    retryPolicy
	resolver *net.Resolver
	clock    Clock
	// exitAfter paces OCC EXIT packets (exit_notify.go); nil: time.After.
	exitAfter func(time.Duration) <-chan time.Time
	// raceWait paces happy eyeballs (net_happy.go); nil: time.After.
	raceWait func(time.Duration) <-chan time.Time

	mu   sync.Mutex
	conn ConnInfo
	// dco is the current connection's offloaded peer; dcoTotal the
	// counters of the peers before it (their counters die with them).
	dco      DCOPlane
	dcoTotal PlaneStats
	dcoWhy   string // why the last connection was not offloaded
	ran      bool
	state    State
	hasState bool
	hold     holdState // Config.Hold (hold.go)

	// evMu makes the state reports one at a time and in order: the Run
	// goroutine's and Release's.
	evMu sync.Mutex
}

// New checks the configuration and the profile's options the engine needs,
// without touching the network.
func New(cfg Config) (*Client, error) {
	if cfg.Profile == nil {
		return nil, errors.New("engine: no profile")
	}
	if cfg.Tun == nil {
		return nil, errors.New("engine: no TUN provider")
	}
	opts, err := optionsFromProfile(cfg.Profile, cfg.Credentials, cfg.Prepared)
	if err != nil {
		return nil, fmt.Errorf("engine: profile: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ev := cfg.Events
	if ev == nil {
		ev = nopEvents{}
	}
	if cfg.Version == "" {
		cfg.Version = "ovpn3go"
	}
	remotes, retry, err := buildRemoteList(cfg.Profile, cfg.ProxyCredentials)
	if err != nil {
		return nil, fmt.Errorf("engine: profile: %w", err)
	}
	res := cfg.Resolver
	if res == nil {
		res = net.DefaultResolver
	}
	c := &Client{cfg: cfg, opts: opts, log: log, events: ev, remotes: remotes, retry: retry, resolver: res, clock: systemClock{}}
	c.hold.ch = make(chan struct{})
	return c, nil
}

type nopEvents struct{}

func (nopEvents) State(State, string) {}

func (c *Client) setState(s State, detail string) {
	c.evMu.Lock()
	defer c.evMu.Unlock()
	c.mu.Lock()
	if c.heldLocked() {
		c.hold.last, c.hold.hasLast = s, true
		c.mu.Unlock()
		c.log.Debug("state not reported while the connection is held", "state", s.String(), "detail", detail)
		return
	}
	c.mu.Unlock()
	c.report(s, detail)
}

// report reports a state (evMu held).
func (c *Client) report(s State, detail string) {
	c.mu.Lock()
	same := c.hasState && c.state == s && s != StateReconnecting
	c.state, c.hasState = s, true
	c.mu.Unlock()
	if same {
		return
	}
	c.log.Info("state", "state", s.String(), "detail", detail)
	c.events.State(s, detail)
}

// Stats returns a snapshot of the traffic counters; safe at any time.
func (c *Client) Stats() Stats {
	// Under mu so a peer going away is counted exactly once (dcoDone).
	c.mu.Lock()
	ps := c.dcoTotal
	if c.dco != nil {
		if st, err := c.dco.Stats(); err == nil {
			ps = ps.add(st)
		} else {
			c.log.Debug("offloaded peer statistics", "err", err)
		}
	}
	c.mu.Unlock()
	s := c.userStats()
	// The offloaded data packets never reached userspace: add them.
	s.BytesIn += ps.LinkRxBytes
	s.BytesOut += ps.LinkTxBytes
	s.PacketsIn += ps.LinkRxPackets
	s.PacketsOut += ps.LinkTxPackets
	s.TunBytesIn += ps.VPNTxBytes
	s.TunPacketsIn += ps.VPNTxPackets
	s.TunBytesOut += ps.VPNRxBytes
	s.TunPacketsOut += ps.VPNRxPackets
	return s
}

// DataPath says whether the current (or last) connection's data channel
// is offloaded and, when DCO was configured but not used, why.
func (c *Client) DataPath() (offloaded bool, why string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dco != nil, c.dcoWhy
}

func (c *Client) setDCO(p DCOPlane, why string) {
	c.mu.Lock()
	c.dco, c.dcoWhy = p, why
	c.mu.Unlock()
}

// dcoDone keeps the final counters of an offloaded peer that goes away.
func (c *Client) dcoDone(p DCOPlane, final PlaneStats) {
	c.mu.Lock()
	if c.dco == p {
		c.dco = nil
	}
	c.dcoTotal = c.dcoTotal.add(final)
	c.mu.Unlock()
}

// userStats are the counters of what passed through userspace.
func (c *Client) userStats() Stats {
	return Stats{
		BytesIn: c.ctr.BytesIn.Load(), BytesOut: c.ctr.BytesOut.Load(),
		PacketsIn: c.ctr.PktsIn.Load(), PacketsOut: c.ctr.PktsOut.Load(),
		TunBytesIn: c.ctr.TunBytesIn.Load(), TunBytesOut: c.ctr.TunBytesOut.Load(),
		TunPacketsIn: c.ctr.TunPktsIn.Load(), TunPacketsOut: c.ctr.TunPktsOut.Load(),
		KeyRotations: c.ctr.KeyRotations.Load(),
		Decompressed: c.ctr.Decompressed.Load(),
	}
}

// Connection returns the server the client is (or was last) connected to.
func (c *Client) Connection() ConnInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn
}

func (c *Client) setConnection(ci ConnInfo) {
	c.mu.Lock()
	c.conn = ci
	c.mu.Unlock()
}
