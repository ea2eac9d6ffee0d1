package engine

import (
	"cmp"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/transport/proxytest"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// runClient starts the engine for a profile text in the pair's client
// namespace and waits for StateConnected; the returned stop cancels Run
// and checks it ended cleanly.
func runClient(t *testing.T, pair *testbed.Pair, text string, mod func(*Config)) (*Client, *stateLog, context.Context, func()) {
	t.Helper()
	prof, err := profile.Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	states := newStateLog()
	cfg := Config{Profile: prof, Tun: &nsTun{ns: clientNS(t, pair)}, Events: states, Logger: testLogger(t), Dial: nsDial(pair.ClientNS)}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- c.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-runErr:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("Run did not return after cancel")
		}
	}
	t.Cleanup(stop)
	states.waitFor(t, StateConnected, 60*time.Second)
	return c, states, ctx, stop
}

// TestIntegrationTransports connects over each transport and address
// family the test bed offers and checks Connection() reports it.
func TestIntegrationTransports(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "openvpn")
	for _, tc := range []struct {
		proto, profProto, want string
	}{
		{testbed.ProtoUDP, "udp4", "udp"},
		{testbed.ProtoTCP, "tcp-client", "tcp"},
		{testbed.ProtoUDP6, "udp6", "udp6"},
		{testbed.ProtoTCP6, "tcp6", "tcp6"},
	} {
		t.Run(tc.profProto, func(t *testing.T) {
			pair := testbed.NetPair(t)
			srv := testbed.ServerWith(t, pair, testbed.VariantA, testbed.ServerOptions{Proto: tc.proto})
			text := strings.Replace(srv.Profile(), "\nproto "+tc.proto+"\n", "\nproto "+tc.profProto+"\n", 1)
			if !strings.Contains(text, "\nproto "+tc.profProto+"\n") {
				t.Fatalf("profile has no proto line to rewrite:\n%s", text)
			}
			c, _, ctx, stop := runClient(t, pair, text, nil)
			if got := c.Connection().Proto; got != tc.want {
				t.Errorf("Connection().Proto = %q, want %q", got, tc.want)
			}
			if err := testbed.Ping(ctx, pair.ClientNS, testbed.TunnelServer4, 3); err != nil {
				t.Errorf("ping: %v", err)
			}
			stop()
		})
	}
}

// TestIntegrationRemoteFailover: the first remote never answers (its
// <connection> block gives it a short server-poll-timeout), the second,
// in its own block with its own proto and port, is the real server.
func TestIntegrationRemoteFailover(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "openvpn")
	pair := testbed.NetPair(t)
	srv := testbed.ServerWith(t, pair, testbed.VariantA, testbed.ServerOptions{Proto: testbed.ProtoTCP})
	text := strings.Replace(srv.Profile(), "\nremote "+testbed.ServerIP4+" 1194\n", fmt.Sprintf(`
<connection>
remote %s 1195 udp
server-poll-timeout 2
</connection>
<connection>
remote %s 1194 tcp-client
</connection>
`, testbed.ServerIP4, testbed.ServerIP4), 1)
	if !strings.Contains(text, "<connection>") {
		t.Fatalf("no remote line to replace:\n%s", text)
	}
	c, states, ctx, stop := runClient(t, pair, text, nil)
	if ci := c.Connection(); ci.Proto != "tcp" || ci.Port != 1194 {
		t.Errorf("connected to %+v, want the second remote", ci)
	}
	for _, s := range states.all() {
		if s == StateFailed || s == StateReconnecting {
			t.Errorf("states %v", states.all())
		}
	}
	if err := testbed.Ping(ctx, pair.ClientNS, testbed.TunnelServer4, 3); err != nil {
		t.Errorf("ping: %v", err)
	}
	stop()
}

// TestIntegrationHTTPProxy connects to the TCP server through an HTTP
// CONNECT proxy in the client namespace that insists on Basic auth with the
// profile's inline credentials.
func TestIntegrationHTTPProxy(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "openvpn")
	pair := testbed.NetPair(t)
	srv := testbed.ServerWith(t, pair, testbed.VariantA, testbed.ServerOptions{Proto: testbed.ProtoTCP})
	var ln net.Listener
	if err := testbed.InNamespace(pair.ClientNS, func() error {
		var err error
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	proxy := proxytest.StartConnectProxy(t, ln, "proxyuser:pr0xy pass", func(addr string) (net.Conn, error) {
		return nsDial(pair.ClientNS)(context.Background(), "tcp", addr)
	})
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	text := srv.Profile() + "http-proxy 127.0.0.1 " + port + " [inline] basic\n" +
		"<http-proxy-user-pass>\nproxyuser\npr0xy pass\n</http-proxy-user-pass>\n"
	c, _, ctx, stop := runClient(t, pair, text, nil)
	if err := testbed.Ping(ctx, pair.ClientNS, testbed.TunnelServer4, 3); err != nil {
		t.Errorf("ping through the proxied tunnel: %v", err)
	}
	targets, auths := proxy.Seen()
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte("proxyuser:pr0xy pass"))
	if len(targets) != 1 || targets[0] != net.JoinHostPort(testbed.ServerIP4, "1194") || auths[0] != want {
		t.Errorf("proxy saw CONNECT %q with Proxy-Authorization %q, want one to %s:1194 with %q", targets, auths, testbed.ServerIP4, want)
	}
	if !strings.Contains(c.Connection().ServerHost, testbed.ServerIP4) {
		t.Errorf("Connection() = %+v", c.Connection())
	}
	stop()
}

// tcpMaxSeg is the socket's current MSS (what the peer's SYN allowed).
func tcpMaxSeg(t *testing.T, c net.Conn) int {
	t.Helper()
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var mss int
	var serr error
	raw.Control(func(fd uintptr) { mss, serr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_MAXSEG) })
	if serr != nil {
		t.Fatal(serr)
	}
	return mss
}

// TestIntegrationMSSClamp opens a TCP connection through a UDP tunnel
// (tun-mtu 1500, so both ends announce MSS 1460) and checks both sockets
// ended up with the clamped MSS of OpenVPN's default "mssfix 1492 mtu":
// the SYN was clamped on its way out, the SYN-ACK on its way in. (The
// socket reports the MSS less 12 bytes of TCP timestamps.) With the TUN
// offload and without it: each path clamps the packets it reads itself.
func TestIntegrationMSSClamp(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "openvpn")
	pair := testbed.NetPair(t)
	// The server clamps too unless told not to; it must not hide ours.
	srv := testbed.Server(t, pair, testbed.VariantA, "mssfix 0")
	for _, lines := range []string{"", "ovpn3go-offload tun off\n"} {
		t.Run(strings.TrimSpace(cmp.Or(lines, "offloads on")), func(t *testing.T) {
			_, _, ctx, stop := runClient(t, pair, srv.Profile()+lines, nil)
			ln := tunnelListener(t, pair)
			accepted := make(chan net.Conn, 1)
			go func() {
				c, err := ln.Accept()
				if err == nil {
					accepted <- c
				}
				close(accepted)
			}()
			cli, err := nsDial(pair.ClientNS)(ctx, "tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer cli.Close()
			srvConn := <-accepted
			if srvConn == nil {
				t.Fatal("accept failed")
			}
			defer srvConn.Close()
			limit := mssLimit(defaultMssfix, true, false, false, false) // 1400
			if got := tcpMaxSeg(t, srvConn); got > limit {
				t.Errorf("server socket MSS %d: the client's SYN was not clamped to %d", got, limit)
			}
			if got := tcpMaxSeg(t, cli); got > limit {
				t.Errorf("client socket MSS %d: the server's SYN-ACK was not clamped to %d", got, limit)
			}
			stop()
		})
	}
}
