package engine

import (
	"testing"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/dataplane"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
)

// TestOffloadOptionEffects: each "ovpn3go-offload NAME off" line takes
// its offload away and nothing else; without the option every offload is
// allowed (the data plane's TestBatchWriterOffloads shows what each
// switch does to the UDP writer, TestReceiveModerationSwitch what
// rx-moderation does to the socket reader, TestTunReaderLingersForDatagramBursts
// what tx-moderation does to the TUN reader), and crypto stays inline unless
// "ovpn3go-offload parallel-crypto on" (then the plane has workers
// wherever there is more than one P; TestIntegrationOffloads runs it).
func TestOffloadOptionEffects(t *testing.T) {
	base := "client\ndev tun\nremote 127.0.0.1 1194 udp\nauth-user-pass\n<ca>\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n</ca>\n"
	cases := []struct {
		lines    string
		want     dataplane.Offloads
		parallel bool
	}{
		{"", dataplane.Offloads{}, false},
		{"ovpn3go-offload tun off\n", dataplane.Offloads{NoTUN: true}, false},
		{"ovpn3go-offload udp-gso off\n", dataplane.Offloads{NoGSO: true}, false},
		{"ovpn3go-offload udp-mmsg off\n", dataplane.Offloads{NoMmsg: true}, false},
		{"ovpn3go-offload udp-gso off\novpn3go-offload udp-mmsg off\n", dataplane.Offloads{NoGSO: true, NoMmsg: true}, false},
		{"ovpn3go-offload rx-moderation off\n", dataplane.Offloads{NoRxMod: true}, false},
		{"ovpn3go-offload tx-moderation off\n", dataplane.Offloads{NoTxMod: true}, false},
		{"ovpn3go-offload parallel-crypto on\n", dataplane.Offloads{}, true},
		{"ovpn3go-offload uring off\n", dataplane.Offloads{NoUring: true}, false},
	}
	for _, tc := range cases {
		p, err := profile.Parse(base + tc.lines)
		if err != nil {
			t.Fatal(err)
		}
		c := &Client{cfg: Config{Profile: p}}
		if got := c.offloads(); got != tc.want {
			t.Errorf("%q: offloads %+v, want %+v", tc.lines, got, tc.want)
		}
		if got := c.wantVnetHdr(false); got != !tc.want.NoTUN {
			t.Errorf("%q: IFF_VNET_HDR requested %v, want %v", tc.lines, got, !tc.want.NoTUN)
		}
		if c.wantVnetHdr(true) {
			t.Errorf("%q: IFF_VNET_HDR requested for a DCO device", tc.lines)
		}
		if got := c.parallelCrypto(); got != tc.parallel {
			t.Errorf("%q: parallel crypto %v, want %v", tc.lines, got, tc.parallel)
		}
	}
}
