package testbed

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// TestServerConfigDefaults: the option-free config and profile are the
// variant's own (b over TCP without a local address, i over udp6).
func TestServerConfigDefaults(t *testing.T) {
	pki := &PKIFiles{}
	for _, v := range Variants {
		a, err := ServerConfig(pki, v, "/s", "/a")
		if err != nil {
			t.Fatal(err)
		}
		b, err := ServerConfigWith(pki, v, "/s", "/a", ServerOptions{Proto: v.DefaultProto()})
		if err != nil {
			t.Fatal(err)
		}
		if a != b {
			t.Errorf("variant %s: explicit default proto changes the config:\n%s\n---\n%s", v, a, b)
		}
	}
	conf, _ := ServerConfigWith(pki, VariantA, "/s", "/a", ServerOptions{Proto: ProtoTCP})
	for _, want := range []string{"proto tcp-server\n", "local " + ServerIP4 + "\n"} {
		if !strings.Contains(conf, want) {
			t.Errorf("variant a over tcp lacks %q:\n%s", want, conf)
		}
	}
	if strings.Contains(conf, "explicit-exit-notify") {
		t.Errorf("variant a over tcp has explicit-exit-notify (openvpn refuses it):\n%s", conf)
	}
	conf, _ = ServerConfigWith(pki, VariantI, "/s", "/a", ServerOptions{Proto: ProtoTCP6})
	if !strings.Contains(conf, "proto tcp6-server\nlocal "+ServerIP6+"\n") {
		t.Errorf("variant i over tcp6:\n%s", conf)
	}
	for _, bad := range []ServerOptions{
		{Proto: "sctp"},
		{TLSCryptV2ForceCookie: true},
		{AuthGenToken: true},
		{Compress: "zstd"},
		{Compress: "stub", CompLZONo: true},
	} {
		if _, err := ServerConfigWith(pki, VariantA, "/s", "/a", bad); err == nil {
			t.Errorf("ServerConfigWith(a, %+v) accepted", bad)
		}
	}
}

// TestReferenceClientOptions proves the option-made server variants with
// the real openvpn 2.6 client, so a failure of ovpn3go against them is
// ovpn3go's: every variant over the other transport, tls-crypt-v2 with
// force-cookie, pushed compress stub-v2, auth-gen-token, RSA-4096.
func TestReferenceClientOptions(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "openvpn")
	testenv.RequireCommand(t, "ping")
	type tc struct {
		name    string
		v       Variant
		opts    ServerOptions
		rsaBits int
	}
	var cases []tc
	for _, v := range Variants {
		switch v {
		case VariantB:
			cases = append(cases, tc{name: "b-udp", v: v, opts: ServerOptions{Proto: ProtoUDP}})
		case VariantI:
			cases = append(cases, tc{name: "i-tcp6", v: v, opts: ServerOptions{Proto: ProtoTCP6}})
		default:
			cases = append(cases, tc{name: string(v) + "-tcp", v: v, opts: ServerOptions{Proto: ProtoTCP}})
		}
	}
	cases = append(cases,
		tc{name: "e-force-cookie", v: VariantE, opts: ServerOptions{TLSCryptV2ForceCookie: true}},
		tc{name: "a-compress-stub-v2", v: VariantA, opts: ServerOptions{Compress: "stub-v2"}},
		tc{name: "a-compress-stub", v: VariantA, opts: ServerOptions{Compress: "stub"}},
		tc{name: "a-comp-lzo-no", v: VariantA, opts: ServerOptions{CompLZONo: true}},
		tc{name: "f-auth-gen-token", v: VariantF, opts: ServerOptions{AuthGenToken: true}},
		tc{name: "a-rsa4096", v: VariantA, rsaBits: 4096},
	)
	if testing.Short() {
		cases = cases[len(cases)-6:]
	}
	sem := make(chan struct{}, 3)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			sem <- struct{}{}
			defer func() { <-sem }()
			pair := NetPair(t)
			if c.rsaBits > 0 {
				c.opts.PKI = PKI(t, WithRSABits(c.rsaBits))
			}
			srv := ServerWith(t, pair, c.v, c.opts)
			ctx := context.Background()
			cli, err := StartReferenceClient(ctx, pair, srv, t.TempDir(), 30*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cli.Stop(5 * time.Second) })
			targets := []string{TunnelServer4, LANHost4}
			if c.v == VariantI {
				targets = append(targets, TunnelServer6, LANHost6)
			}
			for _, addr := range targets {
				if err := Ping(ctx, pair.ClientNS, addr, 2); err != nil {
					t.Errorf("ping %s through the tunnel: %v", addr, err)
				}
			}
			if c.opts.Compress != "" && !strings.Contains(cli.Log(), "compress "+c.opts.Compress) {
				t.Errorf("the client log does not show the pushed compress %s:\n%s", c.opts.Compress, cli.LogTail(30))
			}
		})
	}
}
