package engine

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
)

// connectProxy is a tiny HTTP CONNECT proxy for tests. With wantAuth set
// it answers 407 unless Proxy-Authorization is exactly "Basic <wantAuth>".
type connectProxy struct {
	ln       net.Listener
	wantAuth string // "user:pass"
	dial     func(addr string) (net.Conn, error)

	mu      sync.Mutex
	targets []string // CONNECT targets, in order
	auths   []string // Proxy-Authorization of each request
	reqs    []*http.Request
	wg      sync.WaitGroup
	conns   map[net.Conn]bool
}

func startConnectProxy(t *testing.T, ln net.Listener, wantAuth string, dial func(string) (net.Conn, error)) *connectProxy {
	p := &connectProxy{ln: ln, wantAuth: wantAuth, dial: dial, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *connectProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		return false
	}
	p.conns[c] = true
	return true
}

func (p *connectProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.track(c)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer c.Close()
			p.handle(c)
		}()
	}
}

func (p *connectProxy) handle(c net.Conn) {
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	auth := req.Header.Get("Proxy-Authorization")
	p.mu.Lock()
	p.targets = append(p.targets, req.Host)
	p.auths = append(p.auths, auth)
	p.reqs = append(p.reqs, req)
	p.mu.Unlock()
	if req.Method != http.MethodConnect {
		io.WriteString(c, "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
		return
	}
	if p.wantAuth != "" && auth != "Basic "+base64.StdEncoding.EncodeToString([]byte(p.wantAuth)) {
		io.WriteString(c, "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 5\r\n\r\nnope\n")
		return
	}
	up, err := p.dial(req.Host)
	if err != nil {
		io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
		return
	}
	if !p.track(up) {
		up.Close()
		return
	}
	defer up.Close()
	io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, br); up.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
	go func() { io.Copy(c, up); done <- struct{}{} }()
	<-done
	<-done
}

func (p *connectProxy) seen() (targets, auths []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.targets...), append([]string(nil), p.auths...)
}

// echoServer answers every connection by echoing it.
func echoServer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); defer c.Close(); io.Copy(c, c) }()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String()
}

func TestDialViaProxy(t *testing.T) {
	echo := echoServer(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var d net.Dialer
	proxy := startConnectProxy(t, ln, "alice:s3cret", func(a string) (net.Conn, error) { return d.Dial("tcp", a) })
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	wantAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:s3cret"))

	for _, tc := range []struct {
		name      string
		px        proxySpec
		wantErr   error
		wantAuths []string
	}{
		{"basic", proxySpec{user: "alice", pass: "s3cret"}, nil, []string{wantAuth}},
		{"auto answers 407", proxySpec{user: "alice", pass: "s3cret", authOnDemand: true}, nil, []string{"", wantAuth}},
		{"wrong password", proxySpec{user: "alice", pass: "guess"}, errProxyAuth, nil},
		{"no credentials", proxySpec{}, errProxyAuth, []string{""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.px.host, tc.px.port = host, port
			before, _ := proxy.seen()
			c, err := dialViaProxy(ctx, d.DialContext, &tc.px, echo)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// The tunnel carries bytes both ways, nothing of the answer head leaks.
			msg := []byte("\x00\x05hello")
			c.Write(msg)
			got := make([]byte, len(msg))
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.ReadFull(c, got); err != nil || string(got) != string(msg) {
				t.Fatalf("echo %q %v", got, err)
			}
			targets, auths := proxy.seen()
			targets, auths = targets[len(before):], auths[len(before):]
			if strings.Join(auths, "|") != strings.Join(tc.wantAuths, "|") {
				t.Errorf("Proxy-Authorization sent %q, want %q", auths, tc.wantAuths)
			}
			for _, tg := range targets {
				if tg != echo {
					t.Errorf("CONNECT target %q, want %q", tg, echo)
				}
			}
		})
	}
}

func TestDialViaProxyRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	startConnectProxy(t, ln, "", func(string) (net.Conn, error) { return nil, errors.New("no route") })
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	var d net.Dialer
	_, err = dialViaProxy(context.Background(), d.DialContext, &proxySpec{host: host, port: port}, "vpn.example:1194")
	if err == nil || !strings.Contains(err.Error(), "502") || !strings.Contains(err.Error(), "vpn.example:1194") {
		t.Errorf("err %v, want the proxy's 502 and the target", err)
	}
}

func TestProxyOptions(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var d net.Dialer
	proxy := startConnectProxy(t, ln, "", func(a string) (net.Conn, error) { return d.Dial("tcp", a) })
	echo := echoServer(t)
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	global := &profile.HTTPProxy{Options: [][]string{{"VERSION", "1.0"}, {"AGENT", "Corp/1"}, {"CUSTOM-HEADER", "X-Site lab-3"}, {"CUSTOM-HEADER", "X-Two", "a b"}}}
	px, err := proxyFromArgs([]string{host, port, "[inline]", "none"}, global, Credentials{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := dialViaProxy(context.Background(), d.DialContext, px, echo)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	proxy.mu.Lock()
	req := proxy.reqs[len(proxy.reqs)-1]
	proxy.mu.Unlock()
	if req.Proto != "HTTP/1.0" || req.UserAgent() != "Corp/1" || req.Header.Get("X-Site") != "lab-3" || req.Header.Get("X-Two") != "a b" {
		t.Errorf("request %s UA %q headers %v", req.Proto, req.UserAgent(), req.Header)
	}
	for _, bad := range [][]string{{"VERSION", "2"}, {"CUSTOM-HEADER", "Bad:Name x"}, {"AGENT", "a\r\nX: y"}, {"AGENT"}} {
		if _, err := proxyFromArgs([]string{host, port}, &profile.HTTPProxy{Options: [][]string{bad}}, Credentials{}); err == nil {
			t.Errorf("http-proxy-option %q accepted", bad)
		}
	}
}
