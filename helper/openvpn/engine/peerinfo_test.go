package engine

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
)

func parseProfile(t *testing.T, extra string) *profile.Profile {
	t.Helper()
	p, err := profile.Parse("client\ndev tun\nremote 192.0.2.1\nauth-user-pass\n<ca>\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n</ca>\n" + extra)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPeerInfoDetail: "setenv UV_*" and the host details reach the peer
// info only with push-peer-info (OpenVPN's detail level 3), or Access
// Server's PUSH_PEER_INFO; IV_MTU is tun-mtu-max (1600 by default, never
// below tun-mtu).
func TestPeerInfoDetail(t *testing.T) {
	h := hostInfo{hwaddr: "02:00:00:00:00:01", platVer: "6.1.0-test", ssl: "Go crypto/tls go1.26"}
	if got := peerInfoExtra(parseProfile(t, "setenv UV_TEAM blue\n"), h); got != nil {
		t.Errorf("without push-peer-info: %v", got)
	}
	want := []string{"IV_HWADDR=02:00:00:00:00:01", "IV_SSL=Go crypto/tls go1.26", "IV_PLAT_VER=6.1.0-test", "UV_ID=42", "UV_TEAM=blue"}
	for _, extra := range []string{"push-peer-info\n", "setenv PUSH_PEER_INFO 1\n", "# OVPN_ACCESS_SERVER_PUSH_PEER_INFO=1\n"} {
		p := parseProfile(t, extra+"setenv UV_TEAM blue\nsetenv UV_ID 42\nsetenv FORWARD_COMPATIBLE 1\n")
		if got := peerInfoExtra(p, h); !slices.Equal(got, want) {
			t.Errorf("%q: %v, want %v", extra, got, want)
		}
	}
	for extra, want := range map[string]int{"": 1600, "tun-mtu-max 1580\n": 1580, "tun-mtu 9000\n": 9000, "tun-mtu 1400\ntun-mtu-max 2000\n": 2000} {
		p := parseProfile(t, extra)
		_, o := engineOptions(t, extra)
		if got := tunMTUMax(p, o.tunMTU); got != want {
			t.Errorf("%q: IV_MTU %d, want %d", extra, got, want)
		}
	}
}

// TestPushedTunMTUOverMax: a pushed tun-mtu above what the client
// announced is ignored for the profile's; within it, it is used.
func TestPushedTunMTUOverMax(t *testing.T) {
	p, o := engineOptions(t, "tun-mtu 1400\ntun-mtu-max 1450\n")
	a := &attempt{c: &Client{cfg: Config{Profile: p}}, o: &o, log: slog.New(slog.DiscardHandler)}
	for pushed, want := range map[int]int{0: 1400, 1420: 1420, 1450: 1450, 1500: 1400} {
		if got := a.acceptedTunMTU(pushed); got != want {
			t.Errorf("pushed %d: tun MTU %d, want %d", pushed, got, want)
		}
	}
}

func TestDefaultRouteIface(t *testing.T) {
	path := filepath.Join(t.TempDir(), "route")
	table := "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
		"eth1\t0002A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n" +
		"eth0\t00000000\t0102A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
	if err := os.WriteFile(path, []byte(table), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := defaultRouteIface(path); got != "eth0" {
		t.Errorf("default route interface %q", got)
	}
	if got := defaultRouteIface(filepath.Join(t.TempDir(), "none")); got != "" {
		t.Errorf("missing table: %q", got)
	}
	if h := localHostInfo(); h.ssl == "" || h.platVer == "" {
		t.Errorf("local host info %+v", h)
	}
}
