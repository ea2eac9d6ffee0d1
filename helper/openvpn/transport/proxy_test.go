package transport

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/transport/proxytest"
)

func TestDialViaProxy(t *testing.T) {
	echo := proxytest.EchoServer(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var d net.Dialer
	proxy := proxytest.StartConnectProxy(t, ln, "alice:s3cret", func(a string) (net.Conn, error) { return d.Dial("tcp", a) })
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	wantAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:s3cret"))

	for _, tc := range []struct {
		name      string
		px        HTTPProxy
		wantErr   error
		wantAuths []string
	}{
		{"basic", HTTPProxy{User: "alice", Pass: "s3cret"}, nil, []string{wantAuth}},
		{"auto answers 407", HTTPProxy{User: "alice", Pass: "s3cret", AuthOnDemand: true}, nil, []string{"", wantAuth}},
		{"wrong password", HTTPProxy{User: "alice", Pass: "guess"}, ErrProxyAuth, nil},
		{"no credentials", HTTPProxy{}, ErrProxyAuth, []string{""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.px.Host, tc.px.Port = host, port
			before, _ := proxy.Seen()
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
			targets, auths := proxy.Seen()
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
	proxytest.StartConnectProxy(t, ln, "", func(string) (net.Conn, error) { return nil, errors.New("no route") })
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	var d net.Dialer
	_, err = dialViaProxy(context.Background(), d.DialContext, &HTTPProxy{Host: host, Port: port}, "vpn.example:1194")
	if err == nil || !strings.Contains(err.Error(), "502") || !strings.Contains(err.Error(), "vpn.example:1194") {
		t.Errorf("err %v, want the proxy's 502 and the target", err)
	}
}

// The proxy's answer is judged by its status line alone; a line that is
// not "HTTP/1.x NNN reason" is refused, naming it.
func TestStatusLine(t *testing.T) {
	for _, tc := range []struct {
		head, status string
		code         int
	}{
		{"HTTP/1.1 200 Connection established\r\n\r\n", "200 Connection established", 200},
		{"HTTP/1.0 200\r\n\r\n", "200", 200},
		{"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"x\"\r\n\r\n", "407 Proxy Authentication Required", 407},
		{"HTTP/1.1 502 Bad Gateway\n\n", "502 Bad Gateway", 502},
	} {
		code, status, err := statusLine([]byte(tc.head))
		if err != nil || code != tc.code || status != tc.status {
			t.Errorf("statusLine(%q) = %d, %q, %v; want %d, %q", tc.head, code, status, err, tc.code, tc.status)
		}
	}
	for _, head := range []string{"", "\r\n\r\n", "HTTP/2 200 OK\r\n\r\n", "HTTP/1.1\r\n\r\n", "HTTP/1.1 2000 OK\r\n\r\n",
		"HTTP/1.1 abc OK\r\n\r\n", "HTTP/1.1 020 OK\r\n\r\n", "SSH-2.0-OpenSSH\r\n\r\n"} {
		if code, _, err := statusLine([]byte(head)); err == nil || !strings.Contains(err.Error(), "malformed") {
			t.Errorf("statusLine(%q) = %d, %v; want a malformed-line error", head, code, err)
		}
	}
}
