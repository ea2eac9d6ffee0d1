package engine

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/netconf"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
)

// testProfile is a client profile with a throw-away CA and inline
// credentials plus body; these tests end before any TLS handshake.
func testProfile(t *testing.T, body string) *profile.Profile {
	t.Helper()
	p, err := profile.Parse("client\ndev tun\nnobind\nauth-user-pass\n<auth-user-pass>\nu\np\n</auth-user-pass>\n<ca>\n" +
		throwawayCA(t) + "</ca>\n" + body)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return p
}

func throwawayCA(t *testing.T) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(crand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func TestRemoteListConnectionBlocks(t *testing.T) {
	p := testProfile(t, `proto udp
server-poll-timeout 7
tun-mtu 1400
remote a.example 1000
<connection>
remote b.example 2000 tcp-client
server-poll-timeout 3
http-proxy 10.0.0.1 3128 [inline] basic
mssfix 1300 mtu
</connection>
<connection>
remote c.example
lport 5000
</connection>
<http-proxy-user-pass>
alice
s3cret
</http-proxy-user-pass>
`)
	list, pol, err := buildRemoteList(p, Credentials{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 {
		t.Fatalf("%d entries, want 3: %+v", len(list), list)
	}
	a, b, c := list[0], list[1], list[2]
	if a.remote.Host != "a.example" || a.pollTimeout != 7*time.Second || a.proxy != nil || a.tunMTU != 1400 || a.mssfix != 0 {
		t.Errorf("top-level remote: %+v", a)
	}
	if b.remote.Host != "b.example" || b.remote.Proto != "tcp-client" || b.pollTimeout != 3*time.Second ||
		b.proxy == nil || b.proxy.Addr() != "10.0.0.1:3128" || b.proxy.User != "alice" || b.proxy.Pass != "s3cret" ||
		b.mssfix != 1300 || !b.mssfixMTU {
		t.Errorf("block 1: %+v proxy %+v", b, b.proxy)
	}
	if c.remote.Host != "c.example" || c.remote.Proto != "udp" || c.pollTimeout != 7*time.Second || c.proxy != nil || c.lport != 0 {
		// lport is ignored: the top level says nobind.
		t.Errorf("block 2: %+v", c)
	}
	if pol.retry != time.Second || pol.retryMax != 300*time.Second || pol.maxPasses != 0 || pol.random {
		t.Errorf("default policy %+v", pol)
	}
}

// A server that never answers must be reported within seconds by default
// (OpenVPN 3 Core's 10 s), not after OpenVPN 2's 120 s per address.
func TestRemoteListDefaultPollTimeout(t *testing.T) {
	p := testProfile(t, "proto udp\nremote a.example 1194\n")
	list, _, err := buildRemoteList(p, Credentials{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].pollTimeout != 10*time.Second {
		t.Fatalf("entries %+v, want one with a 10s server-poll-timeout", list)
	}
}

func TestRemoteListErrors(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{"remote a.example 1194 udp\nhttp-proxy 10.0.0.1 3128\n", "http-proxy needs proto tcp"},
		{"remote a.example 1194 tcp\nhttp-proxy 10.0.0.1 3128 stdin\n", "credentials are needed"},
	} {
		p := testProfile(t, tc.body)
		if _, _, err := buildRemoteList(p, Credentials{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err %v, want %q", tc.body, err, tc.want)
		}
	}
}

func TestRetryDelay(t *testing.T) {
	pol := retryPolicy{retry: time.Second, retryMax: 300 * time.Second}
	// Two remotes: five tries each at 1 s, then doubling, capped at 300 s.
	want := map[int]time.Duration{0: 0, 1: time.Second, 9: time.Second, 10: 2 * time.Second, 11: 2 * time.Second,
		12: 4 * time.Second, 14: 8 * time.Second, 20: 64 * time.Second, 24: 256 * time.Second, 26: 300 * time.Second, 1000: 300 * time.Second}
	for failed, d := range want {
		if got := pol.delay(failed, 2); got != d {
			t.Errorf("delay(%d, 2) = %v, want %v", failed, got, d)
		}
	}
	p := testProfile(t, "remote a.example\nconnect-retry 5 20\nconnect-retry-max 3\nremote-random\n")
	_, pol, err := buildRemoteList(p, Credentials{})
	if err != nil {
		t.Fatal(err)
	}
	if pol.retry != 5*time.Second || pol.retryMax != 20*time.Second || pol.maxPasses != 3 || !pol.random {
		t.Errorf("policy %+v", pol)
	}
	if got := pol.delay(7, 1); got != 20*time.Second {
		t.Errorf("capped delay = %v", got)
	}
}

func TestRemoteRandomShuffles(t *testing.T) {
	list := make([]connEntry, 8)
	for i := range list {
		list[i].remote.Host = string(rune('a' + i))
	}
	same := retryPolicy{}.order(list, rand.New(rand.NewPCG(1, 2)))
	for i := range list {
		if same[i].remote.Host != list[i].remote.Host {
			t.Fatal("order changed without remote-random")
		}
	}
	moved := false
	rnd := retryPolicy{random: true}.order(list, rand.New(rand.NewPCG(1, 2)))
	for i := range list {
		moved = moved || rnd[i].remote.Host != list[i].remote.Host
	}
	if !moved || list[0].remote.Host != "a" {
		t.Errorf("remote-random: %v (input must stay unchanged)", rnd)
	}
}

type noTun struct{}

func (noTun) OpenTun(context.Context, netconf.Config) (TunDevice, error) {
	return nil, errors.New("no tun in this test")
}

// dialLog records what the engine dials and refuses every connection.
type dialLog struct {
	mu    sync.Mutex
	addrs []string
}

func (d *dialLog) dial(ctx context.Context, network, address string) (net.Conn, error) {
	d.mu.Lock()
	d.addrs = append(d.addrs, network+" "+address)
	d.mu.Unlock()
	return nil, errors.New("connection refused (test)")
}

// TestRunRetryPolicy checks the policy against servers that refuse:
// one pass over the list without connect-retry-max, N passes with it, each
// remote in order, each failure ending in StateFailed with the reason.
func TestRunRetryPolicy(t *testing.T) {
	for _, tc := range []struct {
		extra string
		want  []string
	}{
		{"", []string{"udp4 127.0.0.1:1000", "tcp6 [::1]:2000"}},
		{"connect-retry 0\nconnect-retry-max 2\n", []string{"udp4 127.0.0.1:1000", "tcp6 [::1]:2000", "udp4 127.0.0.1:1000", "tcp6 [::1]:2000"}},
	} {
		p := testProfile(t, tc.extra+"remote 127.0.0.1 1000 udp4\n<connection>\nremote ::1 2000 tcp6\n</connection>\n")
		var d dialLog
		states := newStateLog()
		c, err := New(Config{Profile: p, Tun: noTun{}, Events: states, Dial: d.dial, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = c.Run(ctx)
		cancel()
		if err == nil || !strings.Contains(err.Error(), "connection refused (test)") {
			t.Errorf("Run = %v", err)
		}
		if strings.Join(d.addrs, ",") != strings.Join(tc.want, ",") {
			t.Errorf("%q: dialled %v, want %v", tc.extra, d.addrs, tc.want)
		}
		s := states.all()
		if s[len(s)-1] != StateFailed || !strings.Contains(states.last(), "refused") {
			t.Errorf("final state %v %q", s[len(s)-1], states.last())
		}
	}
}

// TestConnectLoopAfterConnection: once a connection worked, a break is
// retried on the same remote first and — with connect-retry-max — given up
// after that many further passes; without it the loop keeps going.
func TestConnectLoopAfterConnection(t *testing.T) {
	list := []connEntry{{remote: profile.Remote{Host: "a"}}, {remote: profile.Remote{Host: "b"}}, {remote: profile.Remote{Host: "c"}}}
	for _, tc := range []struct {
		maxPasses int
		breakErr  error
		want      string
		failed    bool
	}{
		// b connects and breaks; then b c a fail twice over (2 passes).
		{2, errors.New("ping-restart"), "a b b c a b c a", true},
		// unlimited: keeps trying until the test cancels after 20 tries.
		{0, errors.New("ping-restart"), "a b b c a b c a b c a b c a b c a b c a", false},
		// RESTART,[N] from the server: go on with the next remote.
		{1, &restartError{nextRemote: true, err: errors.New("server restart")}, "a b c a b", true},
	} {
		states := newStateLog()
		c := &Client{log: testLogger(t), events: states, retry: retryPolicy{maxPasses: tc.maxPasses, retryMax: time.Second}}
		ctx, cancel := context.WithCancel(context.Background())
		var tried []string
		err := c.connectLoop(ctx, list, func(e connEntry) (bool, error) {
			tried = append(tried, e.remote.Host)
			if len(tried) == 20 {
				cancel()
			}
			if len(tried) == 2 {
				return true, tc.breakErr
			}
			return false, errors.New("no response from server " + e.remote.Host)
		})
		cancel()
		if got := strings.Join(tried, " "); got != tc.want {
			t.Errorf("max %d: tried %q, want %q", tc.maxPasses, got, tc.want)
		}
		s := states.all()
		if tc.failed {
			if err == nil || s[len(s)-1] != StateFailed || !strings.Contains(states.last(), "no response from server") {
				t.Errorf("max %d: err %v, states %v %q", tc.maxPasses, err, s, states.last())
			}
		} else if err != nil || s[len(s)-1] != StateDisconnected {
			t.Errorf("max %d: err %v, states %v", tc.maxPasses, err, s)
		}
		for _, st := range s[:len(s)-1] {
			if st != StateReconnecting {
				t.Errorf("max %d: state %v while retrying", tc.maxPasses, st)
			}
		}
	}
}

// fakeResolver answers every A query with 127.0.0.1 and every AAAA query
// with ::1 for any name, over an in-memory stream connection (DNS over
// TCP framing), so no query leaves the process.
func fakeResolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		cli, srv := net.Pipe()
		go serveFakeDNS(srv)
		return cli, nil
	}}
}

func serveFakeDNS(c net.Conn) {
	defer c.Close()
	for {
		var l [2]byte
		if _, err := io.ReadFull(c, l[:]); err != nil {
			return
		}
		q := make([]byte, binary.BigEndian.Uint16(l[:]))
		if _, err := io.ReadFull(c, q); err != nil || len(q) < 12 {
			return
		}
		// Question: name labels, then type and class.
		i := 12
		for i < len(q) && q[i] != 0 {
			i += int(q[i]) + 1
		}
		if i+5 > len(q) {
			return
		}
		qtype := binary.BigEndian.Uint16(q[i+1:])
		question := q[12 : i+5]
		var rdata []byte
		switch qtype {
		case 1:
			rdata = []byte{127, 0, 0, 1}
		case 28:
			rdata = net.IPv6loopback
		}
		resp := append([]byte(nil), q[:2]...)
		resp = append(resp, 0x81, 0x80, 0, 1, 0, byte(min(len(rdata), 1)), 0, 0, 0, 0)
		resp = append(resp, question...)
		if rdata != nil {
			resp = append(resp, 0xc0, 12) // name: pointer to the question
			resp = binary.BigEndian.AppendUint16(resp, qtype)
			resp = append(resp, 0, 1, 0, 0, 0, 60)
			resp = binary.BigEndian.AppendUint16(resp, uint16(len(rdata)))
			resp = append(resp, rdata...)
		}
		out := binary.BigEndian.AppendUint16(nil, uint16(len(resp)))
		if _, err := c.Write(append(out, resp...)); err != nil {
			return
		}
	}
}

// TestResolveFamilies: a name with IPv4 and IPv6 addresses gives both
// for udp/tcp (in the resolver's order) and one family for the forced
// protos.
func TestResolveFamilies(t *testing.T) {
	r := fakeResolver()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for proto, want := range map[string]int{"udp": 2, "tcp-client": 2, "udp4": 1, "tcp4": 1, "udp6": 1, "tcp6": 1} {
		eps, err := resolveEndpoints(ctx, r, "vpn.test", "1194", proto)
		if err != nil || len(eps) != want {
			t.Errorf("%s: %v %v, want %d endpoints", proto, eps, err, want)
			continue
		}
		for _, ep := range eps {
			v6 := ep.isIPv6()
			if (strings.HasSuffix(proto, "4") && v6) || (strings.HasSuffix(proto, "6") && !v6) {
				t.Errorf("%s: endpoint %v of the wrong family", proto, ep)
			}
		}
	}
}

// TestRunTriesEveryAddress: a remote name with an IPv4 and an IPv6
// address is tried at both before the pass ends.
func TestRunTriesEveryAddress(t *testing.T) {
	p := testProfile(t, "remote vpn.test 1194 udp\n")
	var d dialLog
	c, err := New(Config{Profile: p, Tun: noTun{}, Dial: d.dial, Resolver: fakeResolver(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Run(ctx); err == nil {
		t.Fatal("Run succeeded without a server")
	}
	got := strings.Join(d.addrs, ",")
	if len(d.addrs) != 2 || !strings.Contains(got, "udp 127.0.0.1:1194") || !strings.Contains(got, "udp [::1]:1194") {
		t.Errorf("dialled %v, want both addresses of vpn.test", d.addrs)
	}
}

// TestResolvRetry: a name that does not resolve yet fails the try at once
// without resolv-retry, and is retried until it resolves with it.
func TestResolvRetry(t *testing.T) {
	for _, tc := range []struct {
		extra   string
		dialled bool
	}{{"", false}, {"resolv-retry 10\n", true}} {
		p := testProfile(t, tc.extra+"remote vpn.test 1194 udp4\n")
		var d dialLog
		working := time.Now().Add(1500 * time.Millisecond)
		r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, n, a string) (net.Conn, error) {
			if time.Now().Before(working) {
				return nil, errors.New("no DNS yet (test)")
			}
			return fakeResolver().Dial(ctx, n, a)
		}}
		c, err := New(Config{Profile: p, Tun: noTun{}, Dial: d.dial, Resolver: r, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = c.Run(ctx)
		cancel()
		if tc.dialled != (len(d.addrs) == 1) {
			t.Errorf("%q: dialled %v (Run: %v)", tc.extra, d.addrs, err)
		}
		if !tc.dialled && (err == nil || !strings.Contains(err.Error(), "resolve vpn.test")) {
			t.Errorf("%q: Run = %v, want a resolve error", tc.extra, err)
		}
	}
}

// Before the first connection, a pass of servers that never answer ends
// Run; servers that answered but failed the handshake (a certificate
// that does not verify, say) and AUTH_FAILED,TEMP do not count against
// that: the engine keeps trying, with the reason in Reconnecting.
func TestConnectLoopServerAnswered(t *testing.T) {
	list := []connEntry{{remote: profile.Remote{Host: "a"}}, {remote: profile.Remote{Host: "b"}}, {remote: profile.Remote{Host: "c"}}}
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"tls", &serverFailure{err: errors.New("TLS handshake with a: certificate has expired")}},
		{"auth-temp", &advanceError{err: errors.New("temporary authentication failure: busy")}},
	} {
		states := newStateLog()
		c := &Client{log: testLogger(t), events: states, retry: retryPolicy{retryMax: time.Second}}
		ctx, cancel := context.WithCancel(context.Background())
		var tried []string
		err := c.connectLoop(ctx, list, func(e connEntry) (bool, error) {
			tried = append(tried, e.remote.Host)
			if len(tried) == 8 {
				cancel()
			}
			return false, tc.err
		})
		cancel()
		if got := strings.Join(tried, " "); got != "a b c a b c a b" {
			t.Errorf("%s: tried %q, want every remote in turn until cancelled", tc.name, got)
		}
		s := states.all()
		if err != nil || s[len(s)-1] != StateDisconnected || s[0] != StateReconnecting || !strings.Contains(states.detail[0], tc.err.Error()) {
			t.Errorf("%s: err %v, states %v %q", tc.name, err, s, states.detail)
		}
	}
	// The same with a server that never answers: one pass, then failed.
	states := newStateLog()
	c := &Client{log: testLogger(t), events: states, retry: retryPolicy{retryMax: time.Second}}
	var tried int
	err := c.connectLoop(context.Background(), list, func(connEntry) (bool, error) {
		tried++
		return false, errors.New("no response from server")
	})
	if err == nil || tried != 3 {
		t.Errorf("never answered: err %v after %d tries, want failed after one pass", err, tried)
	}
}
