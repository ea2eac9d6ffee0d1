// Package proxytest is an HTTP CONNECT proxy and an echo server for the
// tests of the HTTP proxy path (the transport's and the engine's).
package proxytest

import (
	"bufio"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
)

// ConnectProxy is a tiny HTTP CONNECT proxy. With wantAuth set
// it answers 407 unless Proxy-Authorization is exactly "Basic <wantAuth>".
type ConnectProxy struct {
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

// StartConnectProxy serves CONNECT on ln until the test ends, dialling
// each target with dial.
func StartConnectProxy(t testing.TB, ln net.Listener, wantAuth string, dial func(string) (net.Conn, error)) *ConnectProxy {
	p := &ConnectProxy{ln: ln, wantAuth: wantAuth, dial: dial, conns: map[net.Conn]bool{}}
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

func (p *ConnectProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		return false
	}
	p.conns[c] = true
	return true
}

func (p *ConnectProxy) serve() {
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

func (p *ConnectProxy) handle(c net.Conn) {
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

// Seen returns the CONNECT targets and the Proxy-Authorization header of
// every request so far, in order.
func (p *ConnectProxy) Seen() (targets, auths []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.targets...), append([]string(nil), p.auths...)
}

// EchoServer answers every connection by echoing it and returns its
// address.
func EchoServer(t testing.TB) string {
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

// LastRequest is the last request the proxy read (nil before the first).
func (p *ConnectProxy) LastRequest() *http.Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.reqs) == 0 {
		return nil
	}
	return p.reqs[len(p.reqs)-1]
}
