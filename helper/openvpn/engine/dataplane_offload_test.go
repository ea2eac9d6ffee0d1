package engine

import (
	"testing"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
)

// TestOffloadOptionEffects: each "ovpn3go-offload NAME off" line takes
// its offload away and nothing else; without the option every offload
// the kernel has is used (loopback UDP has GSO).
func TestOffloadOptionEffects(t *testing.T) {
	base := "client\ndev tun\nremote 127.0.0.1 1194 udp\nauth-user-pass\n<ca>\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n</ca>\n"
	cases := []struct {
		lines          string
		tun, gso, mmsg bool
		writer         bool
	}{
		{"", true, true, true, true},
		{"ovpn3go-offload tun off\n", false, true, true, true},
		{"ovpn3go-offload udp-gso off\n", true, false, true, true},
		{"ovpn3go-offload udp-mmsg off\n", true, true, false, true},
		{"ovpn3go-offload udp-gso off\novpn3go-offload udp-mmsg off\n", true, false, false, false},
	}
	for _, tc := range cases {
		p, err := profile.Parse(base + tc.lines)
		if err != nil {
			t.Fatal(err)
		}
		c := &Client{cfg: Config{Profile: p}}
		if got := c.wantVnetHdr(false); got != tc.tun {
			t.Errorf("%q: IFF_VNET_HDR requested %v, want %v", tc.lines, got, tc.tun)
		}
		if c.wantVnetHdr(true) {
			t.Errorf("%q: IFF_VNET_HDR requested for a DCO device", tc.lines)
		}
		_, skey := dataPlaneKeys(t, 1)
		peer := newTestPeer(t, skey)
		tr, _ := dialBenchTransport(t, peer)
		w := newBatchWriter(tr, c.offloads())
		switch {
		case (w != nil) != tc.writer:
			t.Errorf("%q: batch writer %v, want %v", tc.lines, w != nil, tc.writer)
		case w != nil && (w.GSO() != tc.gso || w.Mmsg() != tc.mmsg):
			t.Errorf("%q: GSO %v mmsg %v, want %v %v", tc.lines, w.GSO(), w.Mmsg(), tc.gso, tc.mmsg)
		}
		tr.Close()
		peer.close()
	}
}
