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
