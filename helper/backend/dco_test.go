package backend

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/ovpn3go/ovpn3go/helper/netcfg/netcfgclient"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/engine"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
)

// A session asking for DCO falls back to TUN naming why: no kernel module
// or something in the profile the kernel cannot do; nothing ("") when the
// kernel can take it.
func TestDCOFallbackReason(t *testing.T) {
	const base = "client\ndev tun\nremote 192.0.2.1\nauth-user-pass\n<ca>\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n</ca>\n"
	for _, tc := range []struct {
		extra     string
		available bool
		want      string
	}{
		{"", false, "no ovpn module"},
		{"compress stub-v2\n", true, "compression framing"},
		{"comp-lzo no\n", true, "compression framing"},
		{"data-ciphers AES-256-CBC\n", true, "no AEAD data cipher"},
		{"http-proxy 192.0.2.9 3128\n", true, "HTTP proxy"},
		{"data-ciphers AES-256-GCM:AES-256-CBC\n", true, ""},
		{"", true, ""},
	} {
		p, err := profile.Parse(base + tc.extra)
		if err != nil {
			t.Fatalf("%q: %v", tc.extra, err)
		}
		why := ""
		if !tc.available {
			why = "the kernel has no ovpn module"
		}
		if got := dcoFallback(p, tc.available, why); !strings.Contains(got, tc.want) || tc.want == "" && got != "" {
			t.Errorf("%q (available %v): %q, want it to say %q", tc.extra, tc.available, got, tc.want)
		}
	}
}

// Once connected, dco says what the connection really uses: a session
// given DCO whose engine kept the data channel in userspace (a TCP
// transport, a DATA_V1 server…) reads false, one whose peer was handed
// over reads true; a session that never asked keeps false.
func TestDCOPropertyAtConnected(t *testing.T) {
	for _, tc := range []struct {
		given, offloaded, want bool
	}{{true, false, false}, {true, true, true}, {false, false, false}} {
		b := &Backend{opts: Options{Logger: slog.New(slog.DiscardHandler)}}
		b.log = b.opts.Logger
		b.dco, b.dcoOn = tc.given, tc.given
		if tc.offloaded {
			b.dcoDev = &netcfgclient.DCODevice{}
		}
		events{b}.State(engine.StateConnected, "")
		if b.dco != tc.want {
			t.Errorf("given DCO %v, offloaded %v: dco %v, want %v", tc.given, tc.offloaded, b.dco, tc.want)
		}
	}
}
