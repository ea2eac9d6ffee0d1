package engine

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/ctlmsg"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// ctlEvents is a stateLog that also records AuthPending events.
type ctlEvents struct {
	*stateLog
	pending chan [3]string
	logs    syncBuffer // the client's log, to check what it negotiated
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func newCtlEvents() *ctlEvents {
	return &ctlEvents{stateLog: newStateLog(), pending: make(chan [3]string, 16)}
}

func (l *ctlEvents) AuthPending(method, url, text string) {
	l.pending <- [3]string{method, url, text}
}

// ctlStartClient starts a client for profile text and returns it with its state
// log; Run's result arrives on the channel. The client stops in cleanup.
func ctlStartClient(t *testing.T, pair *testbed.Pair, text string, creds Credentials, ev *ctlEvents) (*Client, chan error, context.CancelFunc) {
	t.Helper()
	prof, err := profile.Parse(text)
	if err != nil {
		t.Fatalf("profile: %v", err)
	}
	logger := slog.New(slog.NewTextHandler(io.MultiWriter(testWriter{t}, &ev.logs), &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, err := New(Config{Profile: prof, Tun: &nsTun{ns: clientNS(t, pair)}, Events: ev, Logger: logger,
		Version: "ovpn3go-test", Dial: nsDial(pair.ClientNS), Credentials: creds})
	if err != nil {
		t.Fatal(err)
	}
	runErr, cancel := runInBackground(t, c)
	return c, runErr, cancel
}

// runInBackground runs c: Run's result arrives on the
// channel, and the client stops in cleanup.
func runInBackground(t *testing.T, c *Client) (chan error, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		runErr <- c.Run(ctx)
		close(done)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	return runErr, cancel
}

func ctlPingTunnel(t *testing.T, pair *testbed.Pair, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(n+20)*time.Second)
	defer cancel()
	if err := testbed.Ping(ctx, pair.ClientNS, testbed.TunnelServer4, n); err != nil {
		t.Errorf("ping through the tunnel: %v", err)
	}
}

// TestIntegrationLegacyCBC connects to test-bed variant h, whose server
// only speaks AES-256-CBC with HMAC-SHA256, over UDP and TCP.
func TestIntegrationLegacyCBC(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "openvpn")
	for _, proto := range []string{testbed.ProtoUDP, testbed.ProtoTCP} {
		t.Run(proto, func(t *testing.T) {
			pair := testbed.NetPair(t)
			srv := testbed.ServerWith(t, pair, testbed.VariantH, testbed.ServerOptions{Proto: proto})
			ev := newCtlEvents()
			c, _, _ := ctlStartClient(t, pair, srv.Profile(), Credentials{}, ev)
			ev.waitFor(t, StateConnected, 30*time.Second)
			ctlPingTunnel(t, pair, 5)
			if st := c.Stats(); st.TunPacketsOut < 5 {
				t.Errorf("stats %+v", st)
			}
			// openvpn 2.6 logs the data channel a while after it pushed the
			// options (seen a second after the PUSH_REQUEST), so the pings may
			// be done before it: wait for the line, then check its cipher.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := srv.WaitForLog(ctx, "Data Channel: cipher '", 30*time.Second); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(srv.Log(), "Data Channel: cipher 'AES-256-CBC'") {
				t.Errorf("server did not use AES-256-CBC:\n%s", srv.LogTail(30))
			}
		})
	}
}

// TestIntegrationCBCNotOffered: a profile that does not ask for CBC does
// not offer it, so variant h's server (CBC only) cannot be reached.
func TestIntegrationCBCNotOffered(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "openvpn")
	pair := testbed.NetPair(t)
	srv := testbed.Server(t, pair, testbed.VariantH)
	text := strings.Replace(srv.Profile(), "cipher AES-256-CBC\n", "", 1)
	ev := newCtlEvents()
	_, runErr, _ := ctlStartClient(t, pair, text, Credentials{}, ev)
	select {
	case err := <-runErr:
		if err == nil {
			t.Fatal("connected to a CBC-only server without asking for CBC")
		}
		t.Logf("refused as expected: %v", err)
	case s := <-ev.ch:
		for s != StateConnected {
			select {
			case s = <-ev.ch:
			case err := <-runErr:
				t.Logf("refused as expected: %v", err)
				return
			case <-time.After(60 * time.Second):
				return
			}
		}
		t.Fatal("connected to a CBC-only server without asking for CBC")
	case <-time.After(90 * time.Second):
	}
}

// TestIntegrationCompressionFraming: servers with stub framings pass
// traffic both ways; a server pushing real compression is refused.
func TestIntegrationCompressionFraming(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "openvpn")
	cases := []struct {
		name, proto, compress string
		extra                 []string
		profileExtra          string
		framing               framing
	}{
		{name: "stub-v2-udp", compress: "stub-v2", framing: framingStubV2},
		{name: "stub-v2-tcp", proto: testbed.ProtoTCP, compress: "stub-v2", framing: framingStubV2},
		{name: "stub-udp", compress: "stub", framing: framingStub},
		{name: "comp-lzo-no-pushed", extra: []string{"comp-lzo no", `push "comp-lzo no"`}, framing: framingLZOStub},
		{name: "comp-lzo-no-profile", extra: []string{"comp-lzo no"}, profileExtra: "comp-lzo no\n", framing: framingLZOStub},
		{name: "comp-lzo-no-profile-tcp", proto: testbed.ProtoTCP, extra: []string{"comp-lzo no"}, profileExtra: "comp-lzo no\n", framing: framingLZOStub},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pair := testbed.NetPair(t)
			srv := testbed.ServerWith(t, pair, testbed.VariantA, testbed.ServerOptions{Proto: tc.proto, Compress: tc.compress, Extra: tc.extra})
			ev := newCtlEvents()
			_, _, _ = ctlStartClient(t, pair, srv.Profile()+tc.profileExtra, Credentials{}, ev)
			ev.waitFor(t, StateConnected, 30*time.Second)
			// Large pings too: the swap form moves the last byte.
			ctlPingTunnel(t, pair, 5)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := testbed.PingWith(ctx, pair.ClientNS, testbed.TunnelServer4, 3, testbed.PingOptions{Size: 1200}); err != nil {
				t.Errorf("large ping: %v", err)
			}
			// stub-v2 only differs on the wire for payloads starting with
			// 0x50, which IP packets never do: check what was negotiated.
			if want := fmt.Sprintf("framing=%q", tc.framing.String()); !strings.Contains(ev.logs.String(), want) {
				t.Errorf("client log lacks %s", want)
			}
			if strings.Contains(srv.Log(), "Bad compression") || strings.Contains(srv.Log(), "decompression") {
				t.Errorf("server complained about framing:\n%s", srv.LogTail(30))
			}
		})
	}
	refused := []struct {
		name, compress string
		extra          []string
	}{
		{name: "comp-lzo-yes", extra: []string{"allow-compression yes", "comp-lzo yes", `push "comp-lzo yes"`}},
		{name: "lz4", compress: "lz4"},
		{name: "lz4-v2", compress: "lz4-v2"},
	}
	for _, tc := range refused {
		t.Run("refused-"+tc.name, func(t *testing.T) {
			pair := testbed.NetPair(t)
			srv := testbed.ServerWith(t, pair, testbed.VariantA, testbed.ServerOptions{Compress: tc.compress, Extra: tc.extra})
			ev := newCtlEvents()
			_, runErr, _ := ctlStartClient(t, pair, srv.Profile(), Credentials{}, ev)
			select {
			case err := <-runErr:
				if err == nil || !strings.Contains(err.Error(), "VORACLE") || !strings.Contains(err.Error(), "compression") {
					t.Fatalf("Run = %v, want a refusal naming compression and VORACLE", err)
				}
				t.Logf("refused: %v", err)
			case <-time.After(60 * time.Second):
				t.Fatalf("no refusal; states %v", ev.all())
			}
			for _, s := range ev.all() {
				if s == StateConnected {
					t.Errorf("reported connected before refusing: %v", ev.all())
				}
			}
		})
	}
}

// countingAuthScript accepts the test-bed user and appends a line to
// countFile for each call.
func countingAuthScript(t *testing.T) (script, countFile string) {
	dir := t.TempDir()
	countFile = filepath.Join(dir, "auth-calls")
	script = filepath.Join(dir, "count-auth.sh")
	body := fmt.Sprintf(`#!/bin/sh
echo call >> %s
user=$(sed -n 1p "$1"); pass=$(sed -n 2p "$1")
[ "$user" = %q ] && [ "$pass" = %q ] && exit 0
exit 1
`, countFile, testbed.TestUser, testbed.TestPass)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return script, countFile
}

func authCalls(t *testing.T, countFile string) int {
	b, err := os.ReadFile(countFile)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "call")
}

// mgmtConn is a minimal client of the server's management interface.
type mgmtConn struct {
	conn  net.Conn
	mu    sync.Mutex
	lines chan string
}

func dialMgmtConn(t *testing.T, path string) *mgmtConn {
	t.Helper()
	var conn net.Conn
	var err error
	for range 50 {
		if conn, err = net.Dial("unix", path); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("management socket: %v", err)
	}
	m := &mgmtConn{conn: conn, lines: make(chan string, 1024)}
	go func() {
		sc := bufio.NewScanner(conn)
		for sc.Scan() {
			select {
			case m.lines <- sc.Text():
			default:
			}
		}
		close(m.lines)
	}()
	t.Cleanup(func() { conn.Close() })
	return m
}

func (m *mgmtConn) send(t *testing.T, cmd string) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	t.Logf("management> %s", cmd)
	if _, err := fmt.Fprintf(m.conn, "%s\n", cmd); err != nil {
		t.Fatalf("management: %v", err)
	}
}

// waitLine returns the first line starting with prefix, collecting the
// lines before it.
func (m *mgmtConn) waitLine(t *testing.T, prefix string, timeout time.Duration, seen *[]string) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-m.lines:
			if !ok {
				t.Fatalf("management connection closed waiting for %q", prefix)
			}
			if seen != nil {
				*seen = append(*seen, l)
			}
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-deadline:
			t.Fatalf("management: no %q within %v", prefix, timeout)
		}
	}
}

// clientIDs splits ">CLIENT:CONNECT,cid,kid" into cid and kid.
func clientIDs(t *testing.T, line string) (string, string) {
	f := strings.Split(line, ",")
	if len(f) < 3 {
		t.Fatalf("management line %q", line)
	}
	return f[1], f[2]
}

// connectedCID returns the CID of the (single) connected client.
func connectedCID(t *testing.T, m *mgmtConn) string {
	t.Helper()
	m.send(t, "status 2")
	cid := ""
	for {
		l := m.waitLine(t, "", 10*time.Second, nil)
		if strings.HasPrefix(l, "CLIENT_LIST,") {
			f := strings.Split(l, ",")
			// CLIENT_LIST,CN,real,virt,virt6,bytes rx,bytes tx,since,since t,user,CID,…
			if len(f) > 10 {
				cid = f[10]
			}
		}
		if l == "END" {
			if cid == "" {
				t.Fatal("no client in status")
			}
			return cid
		}
	}
}

// TestIntegrationAuthToken: with auth-gen-token the password is checked
// once; renegotiations and a RESTART,[P] reconnect use the token. A
// RESTART without [P] purges it (the script runs again), and a token the
// server no longer knows (server restarted) is dropped for the real
// credentials.
func TestIntegrationAuthToken(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "openvpn")
	pair := testbed.NetPair(t)
	script, countFile := countingAuthScript(t)
	sock := filepath.Join(t.TempDir(), "mgmtConn.sock")
	extra := []string{
		fmt.Sprintf(`auth-user-pass-verify %s via-file`, script),
		"auth-gen-token 0 120", // renewal must be at least 2 × hand-window
		"reneg-sec 4",
		"keepalive 1 4",
		fmt.Sprintf("management %s unix", sock),
	}
	srv := testbed.ServerWith(t, pair, testbed.VariantF, testbed.ServerOptions{AuthGenToken: true, Extra: extra})
	m := dialMgmtConn(t, sock)
	ev := newCtlEvents()
	_, _, _ = ctlStartClient(t, pair, srv.Profile(), Credentials{Username: testbed.TestUser, Password: testbed.TestPass}, ev)
	ev.waitFor(t, StateConnected, 30*time.Second)
	ctlPingTunnel(t, pair, 50) // 10 s: across two renegotiations
	if n := strings.Count(srv.Log(), "Control Channel: TLS"); n < 3 {
		t.Errorf("server saw %d TLS sessions, want at least 3 (renegotiations)", n)
	}
	if n := authCalls(t, countFile); n != 1 {
		t.Fatalf("auth script called %d times over renegotiations, want 1", n)
	}

	m.send(t, "client-kill "+connectedCID(t, m)+" \"RESTART,[P]:keep your token\"")
	ev.waitFor(t, StateReconnecting, 20*time.Second)
	ev.waitFor(t, StateConnected, 30*time.Second)
	ctlPingTunnel(t, pair, 3)
	if n := authCalls(t, countFile); n != 1 {
		t.Fatalf("auth script called %d times after RESTART,[P], want 1 (token reused)", n)
	}

	m.send(t, "client-kill "+connectedCID(t, m)+" RESTART,purge")
	ev.waitFor(t, StateReconnecting, 20*time.Second)
	ev.waitFor(t, StateConnected, 30*time.Second)
	ctlPingTunnel(t, pair, 3)
	if n := authCalls(t, countFile); n != 2 {
		t.Fatalf("auth script called %d times after RESTART without [P], want 2", n)
	}

	// A new server process has a new token secret: the old token fails and
	// the client falls back to the password. SIGKILL, so no RESTART is sent.
	srv.Cmd.Process.Kill()
	srv.Stop(5 * time.Second)
	ev.waitFor(t, StateReconnecting, 30*time.Second)
	srv2 := testbed.ServerWith(t, pair, testbed.VariantF, testbed.ServerOptions{PKI: srv.PKI, AuthGenToken: true, Extra: extra[:4]})
	ev.waitFor(t, StateConnected, 60*time.Second)
	ctlPingTunnel(t, pair, 3)
	if n := authCalls(t, countFile); n < 3 {
		t.Errorf("auth script called %d times after the server restart, want the password checked again", n)
	}
	t.Logf("new server log:\n%s", srv2.LogTail(30))
}

// TestIntegrationAuthPending drives the server's management-client-auth:
// the first login is refused with AUTH_FAILED,TEMP (the client retries
// after the backoff), the second is held with AUTH_PENDING and WEB_AUTH,
// then a CR_TEXT challenge the client answers through ProvideCRResponse.
func TestIntegrationAuthPending(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "openvpn")
	pair := testbed.NetPair(t)
	sock := filepath.Join(t.TempDir(), "mgmtConn.sock")
	// management-client-auth needs username/password: variant f.
	srv := testbed.ServerWith(t, pair, testbed.VariantF, testbed.ServerOptions{Extra: []string{
		fmt.Sprintf("management %s unix", sock), "management-client-auth"}})
	m := dialMgmtConn(t, sock)
	ev := newCtlEvents()
	c, _, _ := ctlStartClient(t, pair, srv.Profile(), Credentials{Username: testbed.TestUser, Password: testbed.TestPass}, ev)

	var env []string
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", srv.LogTail(40))
		}
	})
	cid, kid := clientIDs(t, m.waitLine(t, ">CLIENT:CONNECT,", 30*time.Second, nil))
	m.waitLine(t, ">CLIENT:ENV,END", 10*time.Second, &env)
	vars := map[string]string{}
	for _, l := range env {
		if k, v, ok := strings.Cut(strings.TrimPrefix(l, ">CLIENT:ENV,"), "="); ok {
			vars[k] = v
		}
	}
	if vars["IV_SSO"] != "webauth,openurl,crtext" {
		t.Errorf("IV_SSO = %q", vars["IV_SSO"])
	}
	proto, _ := strconv.Atoi(vars["IV_PROTO"])
	if uint32(proto)&ctlmsg.ProtoAuthFailTemp == 0 || uint32(proto)&ctlmsg.ProtoAuthPendingKW == 0 {
		t.Errorf("IV_PROTO = %d lacks AUTH_FAIL_TEMP or AUTH_PENDING_KW", proto)
	}
	for _, k := range []string{"IV_LZO_STUB", "IV_COMP_STUB", "IV_COMP_STUBv2"} {
		if vars[k] != "1" {
			t.Errorf("%s = %q", k, vars[k])
		}
	}
	m.send(t, fmt.Sprintf(`client-deny %s %s "busy" "TEMP[backoff 2]:server busy"`, cid, kid))
	ev.waitFor(t, StateReconnecting, 20*time.Second)
	if !strings.Contains(ev.last(), "server busy") {
		t.Errorf("reconnect detail %q does not carry the TEMP reason", ev.last())
	}
	deniedAt := time.Now()

	cid, kid = clientIDs(t, m.waitLine(t, ">CLIENT:CONNECT,", 30*time.Second, nil))
	if d := time.Since(deniedAt); d < time.Second {
		t.Errorf("retried after %v, before the 2 s backoff", d)
	}
	m.waitLine(t, ">CLIENT:ENV,END", 10*time.Second, nil)
	m.send(t, fmt.Sprintf("client-pending-auth %s %s WEB_AUTH::https://sso.example/login?s=1 30", cid, kid))
	select {
	case p := <-ev.pending:
		if p != [3]string{"WEB_AUTH", "https://sso.example/login?s=1", ""} {
			t.Errorf("AuthPending = %q", p)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no AuthPending for WEB_AUTH")
	}
	if err := c.ProvideCRResponse("too early"); err == nil {
		t.Error("ProvideCRResponse accepted without a CR_TEXT challenge")
	}
	m.send(t, fmt.Sprintf("client-pending-auth %s %s \"CR_TEXT:R,E:Enter the code\" 30", cid, kid))
	select {
	case p := <-ev.pending:
		if p != [3]string{"CR_TEXT", "", "Enter the code"} {
			t.Errorf("AuthPending = %q", p)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no AuthPending for CR_TEXT")
	}
	if err := c.ProvideCRResponse("4242"); err != nil {
		t.Fatal(err)
	}
	l := m.waitLine(t, ">CLIENT:CR_RESPONSE,", 20*time.Second, nil)
	if f := strings.Split(l, ","); len(f) != 4 || f[3] != base64.StdEncoding.EncodeToString([]byte("4242")) {
		t.Errorf("CR_RESPONSE line %q", l)
	}
	m.send(t, fmt.Sprintf("client-auth-nt %s %s", cid, kid))
	ev.waitFor(t, StateConnected, 30*time.Second)
	ctlPingTunnel(t, pair, 3)
}

// TestIntegrationHalt: the server's HALT ends the session for good.
func TestIntegrationHalt(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "openvpn")
	pair := testbed.NetPair(t)
	sock := filepath.Join(t.TempDir(), "mgmtConn.sock")
	srv := testbed.ServerWith(t, pair, testbed.VariantA, testbed.ServerOptions{Extra: []string{fmt.Sprintf("management %s unix", sock)}})
	m := dialMgmtConn(t, sock)
	ev := newCtlEvents()
	_, runErr, _ := ctlStartClient(t, pair, srv.Profile(), Credentials{}, ev)
	ev.waitFor(t, StateConnected, 30*time.Second)
	m.send(t, "client-kill "+connectedCID(t, m)+" \"HALT,go away\"")
	select {
	case err := <-runErr:
		if err == nil || !strings.Contains(err.Error(), "go away") {
			t.Errorf("Run = %v, want the HALT reason", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not end after HALT")
	}
	if s := ev.all(); s[len(s)-1] != StateFailed {
		t.Errorf("states %v", s)
	}
}

// TestIntegrationSimultaneousRenegotiation: client and server both
// renegotiate every 3 s, so their SOFT_RESETs cross; the tunnel must keep
// working through them without a reconnect.
func TestIntegrationSimultaneousRenegotiation(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "openvpn")
	for _, proto := range []string{testbed.ProtoUDP, testbed.ProtoTCP} {
		t.Run(proto, func(t *testing.T) {
			pair := testbed.NetPair(t)
			// "reneg-sec 3 3": the server does not randomise the interval.
			srv := testbed.ServerWith(t, pair, testbed.VariantA, testbed.ServerOptions{Proto: proto, Extra: []string{"reneg-sec 3 3"}})
			ev := newCtlEvents()
			_, _, _ = ctlStartClient(t, pair, srv.Profile()+"reneg-sec 3\n", Credentials{}, ev)
			ev.waitFor(t, StateConnected, 30*time.Second)
			ctlPingTunnel(t, pair, 75) // 15 s: about five renegotiations
			if n := strings.Count(srv.Log(), "Control Channel: TLS"); n < 4 {
				t.Errorf("server saw %d TLS sessions, want at least 4", n)
			}
			for _, s := range ev.all() {
				if s == StateReconnecting {
					t.Errorf("reconnected instead of renegotiating: %v", ev.all())
				}
			}
		})
	}
}
