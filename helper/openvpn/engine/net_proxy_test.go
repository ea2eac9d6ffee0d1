package engine

import (
	"context"
	"net"
	"testing"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/transport"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/transport/proxytest"
)

func TestProxyOptions(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var d net.Dialer
	proxy := proxytest.StartConnectProxy(t, ln, "", func(a string) (net.Conn, error) { return d.Dial("tcp", a) })
	echo := proxytest.EchoServer(t)
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	global := &profile.HTTPProxy{Options: [][]string{{"VERSION", "1.0"}, {"AGENT", "Corp/1"}, {"CUSTOM-HEADER", "X-Site lab-3"}, {"CUSTOM-HEADER", "X-Two", "a b"}}}
	px, err := proxyFromArgs([]string{host, port, "[inline]", "none"}, global, Credentials{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := transport.Dial(context.Background(), d.DialContext, "tcp", echo, px, 0)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	req := proxy.LastRequest()
	if req.Proto != "HTTP/1.0" || req.UserAgent() != "Corp/1" || req.Header.Get("X-Site") != "lab-3" || req.Header.Get("X-Two") != "a b" {
		t.Errorf("request %s UA %q headers %v", req.Proto, req.UserAgent(), req.Header)
	}
	for _, bad := range [][]string{{"VERSION", "2"}, {"CUSTOM-HEADER", "Bad:Name x"}, {"AGENT", "a\r\nX: y"}, {"AGENT"}} {
		if _, err := proxyFromArgs([]string{host, port}, &profile.HTTPProxy{Options: [][]string{bad}}, Credentials{}); err == nil {
			t.Errorf("http-proxy-option %q accepted", bad)
		}
	}
}
