package engine

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// ipv4Resolver answers every A query with addrs, in order, and AAAA
// queries with nothing.
func ipv4Resolver(addrs ...string) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		cli, srv := net.Pipe()
		go func() { // ends when the resolver closes its end
			defer srv.Close()
			for {
				var l [2]byte
				if _, err := io.ReadFull(srv, l[:]); err != nil {
					return
				}
				q := make([]byte, binary.BigEndian.Uint16(l[:]))
				if _, err := io.ReadFull(srv, q); err != nil || len(q) < 12 {
					return
				}
				i := 12
				for i < len(q) && q[i] != 0 {
					i += int(q[i]) + 1
				}
				if i+5 > len(q) {
					return
				}
				qtype := binary.BigEndian.Uint16(q[i+1:])
				n := 0
				if qtype == 1 {
					n = len(addrs)
				}
				resp := append([]byte(nil), q[:2]...)
				resp = append(resp, 0x81, 0x80, 0, 1, 0, byte(n), 0, 0, 0, 0)
				resp = append(resp, q[12:i+5]...)
				for _, a := range addrs[:n] {
					resp = append(resp, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4)
					resp = append(resp, net.ParseIP(a).To4()...)
				}
				if _, err := srv.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(resp))), resp...)); err != nil {
					return
				}
			}
		}()
		return cli, nil
	}}
}

// TestIntegrationHappyEyeballs: a remote name whose first address never
// answers (an unused address on the client's link) and whose second is
// the real 2.6 server connects through the second without first waiting
// out the first's server-poll-timeout (120 s here, longer than the test's
// wait), over UDP and TCP; the silent address never ends an attempt of
// its own.
func TestIntegrationHappyEyeballs(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "openvpn")
	const silent = "198.18.0.77"
	remote := regexp.MustCompile(`(?m)^remote .*$`)
	for _, proto := range []string{testbed.ProtoUDP, testbed.ProtoTCP} {
		t.Run(proto, func(t *testing.T) {
			pair := testbed.NetPair(t)
			srv := testbed.ServerWith(t, pair, testbed.VariantA, testbed.ServerOptions{Proto: proto})
			text := remote.ReplaceAllString(srv.Profile(), "remote vpn.test 1194 "+proto) + "server-poll-timeout 120\n"
			ev := newCtlEvents()
			c := startClientWith(t, pair, text, ev, func(cfg *Config) { cfg.Resolver = ipv4Resolver(silent, testbed.ServerIP4) })
			ev.waitFor(t, StateConnected, 60*time.Second)
			if ci := c.Connection(); ci.ServerIP != testbed.ServerIP4 {
				t.Errorf("connected to %+v, want %s", ci, testbed.ServerIP4)
			}
			if strings.Contains(ev.logs.String(), "connection ended server="+silent) {
				t.Errorf("an attempt on the silent address ran to its end:\n%s", ev.logs.String())
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := testbed.Ping(ctx, pair.ClientNS, testbed.TunnelServer4, 3); err != nil {
				t.Error(err)
			}
		})
	}
}

// startClientWith runs a client of profile text in the client namespace,
// with mod adjusting its Config; the test's cleanup stops it.
func startClientWith(t *testing.T, pair *testbed.Pair, text string, ev *ctlEvents, mod func(*Config)) *Client {
	t.Helper()
	prof, err := profile.Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.MultiWriter(testWriter{t}, &ev.logs), &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := Config{Profile: prof, Tun: &nsTun{ns: clientNS(t, pair)}, Events: ev, Logger: logger,
		Version: "ovpn3go-test", Dial: nsDial(pair.ClientNS), ListenPacket: nsListen(pair.ClientNS)}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return c
}
