package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/ovpn3go/ovpn3go/helper/netcfg/tundev"
	"github.com/ovpn3go/ovpn3go/helper/netconf"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// nsTun creates TUN devices inside the client namespace of a test pair.
type nsTun struct {
	ns   netns.NsHandle
	mu   sync.Mutex
	cfg  netconf.Config
	name string // the last device's
}

func (p *nsTun) OpenTun(ctx context.Context, cfg netconf.Config) (TunDevice, error) {
	name := testenv.UniqueName("tun")
	p.mu.Lock()
	p.cfg, p.name = cfg, name
	p.mu.Unlock()
	return tundev.Setup(ctx, cfg, tundev.Options{Name: name, NetNS: p.ns})
}

// kernelStats is the kernel's view of the last device's counters (ip -s
// link), for a failure's message: what the device carried beside what
// the engine counted.
func (p *nsTun) kernelStats(ns string) string {
	p.mu.Lock()
	name := p.name
	p.mu.Unlock()
	out, err := testbed.Command(context.Background(), ns, "ip", "-s", "link", "show", "dev", name).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("ip -s link show dev %s: %v: %s", name, err, out)
	}
	return string(out)
}

// nsDial dials from inside the client namespace.
func nsDial(ns string) DialFunc {
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		var c net.Conn
		err := testbed.InNamespace(ns, func() error {
			var d net.Dialer
			var err error
			c, err = d.DialContext(ctx, network, address)
			return err
		})
		return c, err
	}
}

// stateLog records state changes and lets tests wait for one.
type stateLog struct {
	mu     sync.Mutex
	states []State
	detail []string
	ch     chan State
}

func newStateLog() *stateLog { return &stateLog{ch: make(chan State, 64)} }

func (l *stateLog) State(s State, detail string) {
	l.mu.Lock()
	l.states = append(l.states, s)
	l.detail = append(l.detail, detail)
	l.mu.Unlock()
	select {
	case l.ch <- s:
	default:
	}
}

func (l *stateLog) waitFor(t *testing.T, want State, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case s := <-l.ch:
			if s == want {
				return
			}
			if s == StateFailed || s == StateAuthFailed {
				t.Fatalf("state %v (%s) while waiting for %v", s, l.last(), want)
			}
		case <-deadline:
			t.Fatalf("no state %v within %v; states %v", want, timeout, l.all())
		}
	}
}

func (l *stateLog) last() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.detail) == 0 {
		return ""
	}
	return l.detail[len(l.detail)-1]
}

func (l *stateLog) all() []State {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]State(nil), l.states...)
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func nsHandle(name string) (netns.NsHandle, error) { return netns.GetFromName(name) }

func clientNS(t *testing.T, pair *testbed.Pair) netns.NsHandle {
	h, err := nsHandle(pair.ClientNS)
	if err != nil {
		t.Fatalf("client namespace: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// TestIntegrationConnect connects to the real OpenVPN 2.6 server in each
// test-bed variant the engine supports, pings through the tunnel and over
// the pushed route, and disconnects.
func TestIntegrationConnect(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "openvpn")
	testenv.RequireCommand(t, "ping")
	for _, v := range []testbed.Variant{testbed.VariantA, testbed.VariantB, testbed.VariantC,
		testbed.VariantD, testbed.VariantE, testbed.VariantF, testbed.VariantG, testbed.VariantI} {
		t.Run(string(v)+"-"+v.Name(), func(t *testing.T) { connectVariant(t, v, false) })
	}
	// Without TLS_KEY_EXPORT in IV_PROTO the server uses the legacy PRF.
	t.Run("a-legacy-prf", func(t *testing.T) { connectVariant(t, testbed.VariantA, true) })
}

func connectVariant(t *testing.T, v testbed.Variant, noEKM bool) {
	pair := testbed.NetPair(t)
	srv := testbed.Server(t, pair, v)
	prof, err := profile.Parse(srv.Profile())
	if err != nil {
		t.Fatalf("profile: %v", err)
	}
	tun := &nsTun{ns: clientNS(t, pair)}
	states := newStateLog()
	cfg := Config{Profile: prof, Tun: tun, Events: states, Logger: testLogger(t), Version: "ovpn3go-test", Dial: nsDial(pair.ClientNS)}
	switch v {
	case testbed.VariantF:
		cfg.Credentials = Credentials{Username: testbed.TestUser, Password: testbed.TestPass}
	case testbed.VariantG:
		cfg.Credentials = Credentials{Username: testbed.TestUser, Password: testbed.TestPass, ChallengeResponse: testbed.TestOTP}
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.opts.noEKM = noEKM
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	runErr := make(chan error, 1)
	go func() { runErr <- c.Run(ctx) }()
	states.waitFor(t, StateConnected, 30*time.Second)
	t.Logf("connected in %v", time.Since(start))

	ci := c.Connection()
	wantIP, wantProto := testbed.ServerIP4, "udp"
	switch v {
	case testbed.VariantB:
		wantProto = "tcp"
	case testbed.VariantI:
		wantIP, wantProto = testbed.ServerIP6, "udp6"
	}
	if ci.Proto != wantProto || ci.ServerIP != wantIP || ci.Port != testbed.Port {
		t.Errorf("Connection() = %+v", ci)
	}
	before := c.Stats()
	pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
	defer pcancel()
	if err := testbed.Ping(pctx, pair.ClientNS, testbed.TunnelServer4, 5); err != nil {
		t.Errorf("ping through the tunnel: %v", err)
	}
	if err := testbed.Ping(pctx, pair.ClientNS, testbed.LANHost4, 3); err != nil {
		t.Errorf("ping over the pushed route: %v", err)
	}
	after := c.Stats()
	t.Logf("stats before ping %+v after %+v", before, after)
	if after.TunPacketsIn < before.TunPacketsIn+8 || after.TunPacketsOut < before.TunPacketsOut+8 {
		t.Errorf("tun counters did not rise: before %+v after %+v; device reads %d (%d through io_uring); the kernel's:\n%s",
			before, after, c.ctr.TunReads.Load(), c.ctr.TunRingReads.Load(), tun.kernelStats(pair.ClientNS))
	}
	if after.BytesOut <= before.BytesOut || after.BytesIn <= before.BytesIn {
		t.Errorf("transport counters did not rise: before %+v after %+v", before, after)
	}

	cancel()
	select {
	case err := <-runErr:
		if err != nil {
			t.Errorf("Run after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if s := states.all(); s[len(s)-1] != StateDisconnected {
		t.Errorf("final state %v, want disconnected (all %v)", s[len(s)-1], s)
	}
	if v != testbed.VariantB {
		// cc-exit was negotiated, so the server got an EXIT message.
		if err := srv.WaitForLog(context.Background(), "exit message received by peer", 5*time.Second); err != nil {
			t.Errorf("server did not see the client's EXIT: %v", err)
		}
	}
}

func TestIntegrationDeadServerFails(t *testing.T) {
	testenv.RequireRoot(t)
	pair := testbed.NetPair(t)
	pki := testbed.PKI(t)
	text, err := pki.Profile(testbed.VariantA)
	if err != nil {
		t.Fatal(err)
	}
	// One pass over the remote list, each address given
	// server-poll-timeout to answer, then StateFailed.
	prof, err := profile.Parse(text + "server-poll-timeout 5\n")
	if err != nil {
		t.Fatal(err)
	}
	states := newStateLog()
	c, err := New(Config{Profile: prof, Tun: &nsTun{ns: clientNS(t, pair)}, Events: states, Logger: testLogger(t), Dial: nsDial(pair.ClientNS)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err = c.Run(ctx)
	if err == nil || ctx.Err() != nil {
		t.Fatalf("Run = %v (ctx %v), want a failure before the deadline", err, ctx.Err())
	}
	if !errors.Is(err, errNoResponse) || !strings.Contains(err.Error(), "198.18.0.1:1194/udp") {
		t.Errorf("error %q does not say the server did not answer", err)
	}
	s := states.all()
	if s[len(s)-1] != StateFailed || !strings.Contains(states.last(), "no response from server") {
		t.Errorf("final state %v %q", s[len(s)-1], states.last())
	}
}

// TestIntegrationRenegotiation lets the server (or the client) renegotiate
// every few seconds and checks the tunnel keeps working across the key
// changes.
func TestIntegrationRenegotiation(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "openvpn")
	t.Run("server", func(t *testing.T) { renegotiate(t, false) })
	t.Run("client", func(t *testing.T) { renegotiate(t, true) })
}

func renegotiate(t *testing.T, byClient bool) {
	pair := testbed.NetPair(t)
	var srv *testbed.OpenVPNServer
	if byClient {
		srv = testbed.Server(t, pair, testbed.VariantA)
	} else {
		srv = testbed.Server(t, pair, testbed.VariantA, "reneg-sec 3")
	}
	text := srv.Profile()
	if byClient {
		text += "\nreneg-sec 3\n"
	}
	prof, err := profile.Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	states := newStateLog()
	c, err := New(Config{Profile: prof, Tun: &nsTun{ns: clientNS(t, pair)}, Events: states, Logger: testLogger(t), Dial: nsDial(pair.ClientNS)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- c.Run(ctx) }()
	states.waitFor(t, StateConnected, 30*time.Second)
	// Three renegotiations at 3 s intervals (key ids 1, 2, 3), with the
	// tunnel pinged all along: rounds of pings, every one answered, until
	// the third new key is in use, then one round on that key.
	pctx, pcancel := context.WithTimeout(ctx, 2*time.Minute)
	defer pcancel()
	for rounds := 0; ; rounds++ {
		rot := c.Stats().KeyRotations
		if err := testbed.Ping(pctx, pair.ClientNS, testbed.TunnelServer4, 10); err != nil {
			t.Fatalf("ping round %d across renegotiations (%d key rotations before it): %v", rounds+1, rot, err)
		}
		if rot >= 3 {
			break
		}
	}
	// One TLS session for the connection plus one per renegotiation.
	n := strings.Count(srv.Log(), "Control Channel: TLS")
	if n < 4 {
		t.Errorf("server saw %d TLS sessions, want at least 4; log:\n%s", n, srv.LogTail(40))
	}
	for _, s := range states.all() {
		if s == StateReconnecting {
			t.Errorf("reconnected instead of renegotiating: %v", states.all())
		}
	}
	cancel()
	if err := <-runErr; err != nil {
		t.Errorf("Run: %v", err)
	}
}

func TestIntegrationAuthFailed(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "openvpn")
	pair := testbed.NetPair(t)
	srv := testbed.Server(t, pair, testbed.VariantF)
	prof, err := profile.Parse(srv.Profile())
	if err != nil {
		t.Fatal(err)
	}
	states := newStateLog()
	c, err := New(Config{Profile: prof, Tun: &nsTun{ns: clientNS(t, pair)}, Events: states, Logger: testLogger(t),
		Dial: nsDial(pair.ClientNS), Credentials: Credentials{Username: testbed.TestUser, Password: "wrong"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err = c.Run(ctx)
	var fe *fatalError
	if !errors.As(err, &fe) || fe.state != StateAuthFailed {
		t.Fatalf("Run = %v, want an authentication failure", err)
	}
	s := states.all()
	if s[len(s)-1] != StateAuthFailed {
		t.Errorf("states %v", s)
	}
	t.Logf("AUTH_FAILED detail: %q", states.last())
}

// TestIntegrationReconnect stops the server under a connected client and
// starts it again: the client reports Reconnecting and comes back.
func TestIntegrationReconnect(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "openvpn")
	pair := testbed.NetPair(t)
	srv := testbed.Server(t, pair, testbed.VariantA, "keepalive 1 3")
	prof, err := profile.Parse(srv.Profile())
	if err != nil {
		t.Fatal(err)
	}
	states := newStateLog()
	c, err := New(Config{Profile: prof, Tun: &nsTun{ns: clientNS(t, pair)}, Events: states, Logger: testLogger(t), Dial: nsDial(pair.ClientNS)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- c.Run(ctx) }()
	states.waitFor(t, StateConnected, 30*time.Second)
	if err := srv.Stop(5 * time.Second); err != nil {
		t.Logf("server stop: %v", err)
	}
	states.waitFor(t, StateReconnecting, 20*time.Second)
	t.Logf("reconnecting: %s", states.last())
	testbed.ServerWith(t, pair, testbed.VariantA, testbed.ServerOptions{PKI: srv.PKI, Extra: []string{"keepalive 1 3"}})
	states.waitFor(t, StateConnected, 60*time.Second)
	if err := testbed.Ping(ctx, pair.ClientNS, testbed.TunnelServer4, 3); err != nil {
		t.Errorf("ping after reconnect: %v", err)
	}
	cancel()
	if err := <-runErr; err != nil {
		t.Errorf("Run: %v", err)
	}
}
