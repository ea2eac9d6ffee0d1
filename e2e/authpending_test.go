package e2e

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
)

// mgmt is a minimal client of the OpenVPN server's management interface
// (a Unix socket: reachable from the test's namespace).
type mgmt struct {
	conn  net.Conn
	lines chan string
}

func dialMgmt(t *testing.T, path string) *mgmt {
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
	m := &mgmt{conn: conn, lines: make(chan string, 1024)}
	go func() { // ends when the connection is closed in cleanup
		defer close(m.lines)
		sc := bufio.NewScanner(conn)
		for sc.Scan() {
			select {
			case m.lines <- sc.Text():
			default:
			}
		}
	}()
	t.Cleanup(func() { conn.Close() })
	return m
}

func (m *mgmt) send(t *testing.T, cmd string) {
	t.Helper()
	t.Logf("management> %s", cmd)
	if _, err := fmt.Fprintf(m.conn, "%s\n", cmd); err != nil {
		t.Fatalf("management: %v", err)
	}
}

// waitLine returns the first line starting with prefix.
func (m *mgmt) waitLine(t *testing.T, prefix string, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-m.lines:
			if !ok {
				t.Fatalf("management connection closed waiting for %q", prefix)
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
	t.Helper()
	f := strings.Split(line, ",")
	if len(f) < 3 {
		t.Fatalf("management line %q", line)
	}
	return f[1], f[2]
}

func isAttention(path dbus.ObjectPath, group api.AttentionGroup, msg string) func(*dbus.Signal) bool {
	return func(s *dbus.Signal) bool {
		return s.Path == path && s.Name == api.InterfaceSessions+".AttentionRequired" && len(s.Body) == 3 &&
			s.Body[0] == uint32(api.AttentionTypeCredentials) && s.Body[1] == uint32(group) && s.Body[2] == msg
	}
}

func isStatusMsg(path dbus.ObjectPath, major api.StatusMajor, minor api.StatusMinor, msg string) func(*dbus.Signal) bool {
	return func(s *dbus.Signal) bool {
		return s.Path == path && isStatus(major, minor)(s) && s.Body[2] == msg
	}
}

// after matches only signals recorded after the first n (Wait offers
// them in order, from the start of the watch).
func after(n int, match func(*dbus.Signal) bool) func(*dbus.Signal) bool {
	i := 0
	return func(s *dbus.Signal) bool {
		i++
		return i > n && match(s)
	}
}

// newSession starts a session of an imported profile on the stack's own
// connection and returns its object.
func newSession(t *testing.T, st *testbed.Stack, name string) (dbus.ObjectPath, dbus.BusObject) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := configPath(t, st, name)
	var path dbus.ObjectPath
	if err := st.Conn.Object(api.ServiceSessions, api.PathSessions).CallWithContext(ctx, api.InterfaceSessions+".NewTunnel", 0, cfg).Store(&path); err != nil {
		t.Fatalf("NewTunnel: %v", err)
	}
	sess := st.Conn.Object(api.ServiceSessions, path)
	t.Cleanup(func() {
		_ = sess.Call(api.InterfaceSessions+".Disconnect", 0).Err
	})
	return path, sess
}

func sessCall(sess dbus.BusObject, method string, args ...any) *dbus.Call {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return sess.CallWithContext(ctx, api.InterfaceSessions+"."+method, 0, args...)
}

// provideAll answers every unprovided CREDENTIALS slot by its name.
func provideAll(t *testing.T, sess dbus.BusObject, answers map[string]string) {
	t.Helper()
	var groups [][]any
	if err := sessCall(sess, "UserInputQueueGetTypeGroup").Store(&groups); err != nil {
		t.Fatalf("UserInputQueueGetTypeGroup: %v", err)
	}
	for _, g := range groups {
		typ, _ := g[0].(uint32)
		group, _ := g[1].(uint32)
		var ids []uint32
		if err := sessCall(sess, "UserInputQueueCheck", typ, group).Store(&ids); err != nil {
			t.Fatalf("UserInputQueueCheck: %v", err)
		}
		for _, id := range ids {
			var rt, rg, rid uint32
			var name, desc string
			var hidden bool
			if err := sessCall(sess, "UserInputQueueFetch", typ, group, id).Store(&rt, &rg, &rid, &name, &desc, &hidden); err != nil {
				t.Fatalf("UserInputQueueFetch: %v", err)
			}
			v, ok := answers[name]
			if !ok {
				t.Fatalf("unexpected slot (%d,%d,%d) %q %q", typ, group, id, name, desc)
			}
			if err := sessCall(sess, "UserInputProvide", typ, group, id, v).Err; err != nil {
				t.Fatalf("UserInputProvide %s: %v", name, err)
			}
		}
	}
}

// TestAuthPending drives the real server's management-client-auth: the
// login is held with AUTH_PENDING. WEB_AUTH surfaces as StatusChange
// (SESSION, SESS_AUTH_URL, <url>) and AttentionRequired(CREDENTIALS,
// OPEN_URL, <url>) with Ready failing "Pending web authentication"; a
// CR_TEXT challenge becomes a CHALLENGE_AUTH_PENDING slot whose value the
// server receives as CR_RESPONSE; then the server accepts and the session
// connects (Ready succeeds again).
func TestAuthPending(t *testing.T) {
	t.Parallel()
	bin := binaries(t)
	sock := filepath.Join(t.TempDir(), "mgmt.sock")
	st := testbed.NewStack(t, bin, testbed.VariantF, func(o *testbed.StackOptions) {
		o.Server.Extra = []string{fmt.Sprintf("management %s unix", sock), "management-client-auth"}
	})
	m := dialMgmt(t, sock)
	w := watch(t, st)
	name := "e2e-auth-pending"
	importProfile(t, st, testbed.VariantF, name)
	path, sess := newSession(t, st, name)
	provideAll(t, sess, map[string]string{"username": testbed.TestUser, "password": testbed.TestPass})
	if err := sessCall(sess, "Ready").Err; err != nil {
		t.Fatalf("Ready with the credentials: %v", err)
	}
	if err := sessCall(sess, "Connect").Err; err != nil {
		t.Fatalf("Connect: %v", err)
	}
	cid, kid := clientIDs(t, m.waitLine(t, ">CLIENT:CONNECT,", 60*time.Second))
	m.waitLine(t, ">CLIENT:ENV,END", 10*time.Second)

	const url = "https://sso.example/login?s=1"
	m.send(t, fmt.Sprintf("client-pending-auth %s %s WEB_AUTH::%s 60", cid, kid, url))
	waitSignal(t, w, 30*time.Second, "StatusChange SESSION/SESS_AUTH_URL",
		isStatusMsg(path, api.StatusMajorSession, api.StatusMinorSessAuthURL, url))
	waitSignal(t, w, 10*time.Second, "AttentionRequired OPEN_URL", isAttention(path, api.AttentionGroupOpenURL, url))
	if s := sessionStatus(t, st, path); s.Major != api.StatusMajorSession || s.Minor != api.StatusMinorSessAuthURL || s.Message != url {
		t.Errorf("status during web auth: %s", s)
	}
	if err := sessCall(sess, "Ready").Err; !api.IsDomain(err, api.DomainReady) || api.ErrorText(err) != "Pending web authentication" {
		t.Errorf("Ready during web auth: %v, want %s: Pending web authentication", err, api.DomainReady)
	}

	const challenge = "Enter the code"
	m.send(t, fmt.Sprintf(`client-pending-auth %s %s "CR_TEXT:R,E:%s" 60`, cid, kid, challenge))
	waitSignal(t, w, 30*time.Second, "AttentionRequired CHALLENGE_AUTH_PENDING",
		isAttention(path, api.AttentionGroupChallengeAuthPending, challenge))
	waitSignal(t, w, 10*time.Second, "StatusChange CFG_REQUIRE_USER <challenge>",
		isStatusMsg(path, api.StatusMajorConnection, api.StatusMinorCfgRequireUser, challenge))
	if err := sessCall(sess, "Ready").Err; !api.IsDomain(err, api.DomainReady) || api.ErrorText(err) != "Missing user credentials" {
		t.Errorf("Ready with the challenge unanswered: %v", err)
	}
	var groups [][]any
	if err := sessCall(sess, "UserInputQueueGetTypeGroup").Store(&groups); err != nil || len(groups) != 1 ||
		groups[0][0] != uint32(api.AttentionTypeCredentials) || groups[0][1] != uint32(api.AttentionGroupChallengeAuthPending) {
		t.Fatalf("type groups %v, %v", groups, err)
	}
	var typ, group, id uint32
	var slotName, desc string
	var hidden bool
	if err := sessCall(sess, "UserInputQueueFetch", uint32(api.AttentionTypeCredentials), uint32(api.AttentionGroupChallengeAuthPending), uint32(0)).
		Store(&typ, &group, &id, &slotName, &desc, &hidden); err != nil || slotName != "auth_pending" || desc != challenge {
		t.Fatalf("fetch: %q %q %v", slotName, desc, err)
	}
	// No Connect: the answer goes to the server at once.
	if err := sessCall(sess, "UserInputProvide", typ, group, id, "4242").Err; err != nil {
		t.Fatalf("UserInputProvide: %v", err)
	}
	l := m.waitLine(t, ">CLIENT:CR_RESPONSE,", 30*time.Second)
	if f := strings.Split(l, ","); len(f) != 4 || f[1] != cid || f[3] != base64.StdEncoding.EncodeToString([]byte("4242")) {
		t.Errorf("CR_RESPONSE line %q", l)
	}

	m.send(t, fmt.Sprintf("client-auth-nt %s %s", cid, kid))
	waitSignal(t, w, 60*time.Second, "CONN_CONNECTED", func(s *dbus.Signal) bool {
		return s.Path == path && isStatus(api.StatusMajorConnection, api.StatusMinorConnConnected)(s)
	})
	if err := sessCall(sess, "Ready").Err; err != nil {
		t.Errorf("Ready once connected: %v", err)
	}
	if err := sessCall(sess, "Disconnect").Err; err != nil {
		t.Fatal(err)
	}
	waitSignal(t, w, 30*time.Second, "SESS_DESTROYED", isSessionEvent(path, api.SessionEventDestroyed))
}

// connectProxy is an HTTP CONNECT proxy that insists on Basic auth.
type connectProxy struct {
	want string // "Basic <base64>"
	dial func(addr string) (net.Conn, error)
	wg   sync.WaitGroup

	mu      sync.Mutex
	auths   []string // Proxy-Authorization of each CONNECT, "" when absent
	targets []string
}

func (p *connectProxy) seen() (auths, targets []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.auths), slices.Clone(p.targets)
}

func (p *connectProxy) serve(ln net.Listener) {
	defer p.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go p.handle(c)
	}
}

func (p *connectProxy) handle(c net.Conn) {
	defer p.wg.Done()
	defer c.Close()
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil || req.Method != http.MethodConnect {
		return
	}
	auth := req.Header.Get("Proxy-Authorization")
	p.mu.Lock()
	p.auths = append(p.auths, auth)
	p.targets = append(p.targets, req.Host)
	p.mu.Unlock()
	if auth != p.want {
		fmt.Fprint(c, "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\r\n")
		return
	}
	up, err := p.dial(req.Host)
	if err != nil {
		fmt.Fprint(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
		return
	}
	defer up.Close()
	fmt.Fprint(c, "HTTP/1.1 200 Connection established\r\n\r\n")
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, br); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done // either side closing ends the tunnel
}

// TestHTTPProxyCredentials: a profile with "http-proxy … auto basic" gets
// HTTP_PROXY_CREDS slots; the values provided through the user-input
// queue reach the proxy (after its 407) and the session connects through
// it to the TCP server.
func TestHTTPProxyCredentials(t *testing.T) {
	t.Parallel()
	bin := binaries(t)
	st := testbed.NewStack(t, bin, testbed.VariantA, func(o *testbed.StackOptions) {
		o.Server.Proto = testbed.ProtoTCP
	})
	// The proxy listens in the client namespace, where the helper runs.
	var ln net.Listener
	if err := testbed.InNamespace(st.Pair.ClientNS, func() (err error) {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	const user, pass = "proxyuser", "pr0xy pass"
	proxy := &connectProxy{
		want: "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass)),
		dial: func(addr string) (c net.Conn, err error) {
			err = testbed.InNamespace(st.Pair.ClientNS, func() (err error) {
				c, err = net.DialTimeout("tcp", addr, 10*time.Second)
				return err
			})
			return c, err
		},
	}
	proxy.wg.Add(1)
	go proxy.serve(ln)
	t.Cleanup(func() { ln.Close(); proxy.wg.Wait() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())

	w := watch(t, st)
	name := "e2e-proxy-auth"
	importProfile(t, st, testbed.VariantA, name, "http-proxy 127.0.0.1 "+port+" auto basic")
	path, sess := newSession(t, st, name)
	waitSignal(t, w, 10*time.Second, "AttentionRequired HTTP_PROXY_CREDS", isAttention(path, api.AttentionGroupHTTPProxyCreds, ""))
	waitSignal(t, w, 10*time.Second, "CFG_REQUIRE_USER HTTP proxy credentials",
		isStatusMsg(path, api.StatusMajorConnection, api.StatusMinorCfgRequireUser, "HTTP proxy credentials"))
	if err := sessCall(sess, "Ready").Err; !api.IsDomain(err, api.DomainReady) {
		t.Fatalf("Ready before the proxy credentials: %v", err)
	}
	// A wrong password: the proxy's 407 asks for the credentials again
	// and the session stays.
	provideAll(t, sess, map[string]string{"http_proxy_user": user, "http_proxy_pass": "wrong"})
	if err := sessCall(sess, "Ready").Err; err != nil {
		t.Fatalf("Ready: %v", err)
	}
	mark := len(w.Signals())
	if err := sessCall(sess, "Connect").Err; err != nil {
		t.Fatalf("Connect: %v", err)
	}
	waitSignal(t, w, 60*time.Second, "CFG_REQUIRE_USER after the proxy refused the credentials", after(mark,
		isStatusMsg(path, api.StatusMajorConnection, api.StatusMinorCfgRequireUser, "HTTP proxy credentials")))
	waitSignal(t, w, 10*time.Second, "AttentionRequired HTTP_PROXY_CREDS again", after(mark, isAttention(path, api.AttentionGroupHTTPProxyCreds, "")))
	if err := sessCall(sess, "Ready").Err; !api.IsDomain(err, api.DomainReady) {
		t.Fatalf("Ready after the proxy refused the credentials: %v", err)
	}
	provideAll(t, sess, map[string]string{"http_proxy_user": user, "http_proxy_pass": pass})
	if err := sessCall(sess, "Ready").Err; err != nil {
		t.Fatalf("Ready: %v", err)
	}
	if err := sessCall(sess, "Connect").Err; err != nil {
		t.Fatalf("Connect: %v", err)
	}
	end := waitSignal(t, w, 60*time.Second, "CONN_CONNECTED", func(s *dbus.Signal) bool {
		return s.Path == path && (isStatus(api.StatusMajorConnection, api.StatusMinorConnConnected)(s) ||
			isStatus(api.StatusMajorConnection, api.StatusMinorConnReconnecting)(s) ||
			isStatus(api.StatusMajorConnection, api.StatusMinorConnFailed)(s))
	})
	auths, targets := proxy.seen()
	if !isStatus(api.StatusMajorConnection, api.StatusMinorConnConnected)(end) {
		t.Fatalf("not connected: %s; proxy saw Proxy-Authorization %q", testbed.FormatSignal(end), auths)
	}
	// "auto": each first CONNECT goes without credentials, the 407 brings them.
	wrong := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":wrong"))
	if want := []string{"", wrong, "", proxy.want}; !slices.Equal(auths, want) {
		t.Errorf("proxy saw Proxy-Authorization %q, want %q", auths, want)
	}
	if len(targets) == 0 || targets[len(targets)-1] != net.JoinHostPort(testbed.ServerIP4, "1194") {
		t.Errorf("proxy saw CONNECT to %q", targets)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := testbed.Ping(ctx, st.Pair.ClientNS, testbed.TunnelServer4, 3); err != nil {
		t.Errorf("ping through the proxied tunnel: %v", err)
	}
	if err := sessCall(sess, "Disconnect").Err; err != nil {
		t.Fatal(err)
	}
	waitSignal(t, w, 30*time.Second, "SESS_DESTROYED", isSessionEvent(path, api.SessionEventDestroyed))
}
