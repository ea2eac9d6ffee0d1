package profile

import (
	"strings"
	"testing"
)

// TestOffloadOption: ovpn3go-offload switches each offload off (and back
// on); a wrong name or value fails naming the line.
func TestOffloadOption(t *testing.T) {
	p := mustParse(t, minimal+"ovpn3go-offload tun off\novpn3go-offload udp-gso off\novpn3go-offload udp-mmsg off\novpn3go-offload rx-moderation off\novpn3go-offload tx-moderation off\novpn3go-offload uring off\n")
	if p.Offload != (OffloadSwitches{NoTUN: true, NoUDPGSO: true, NoUDPMmsg: true, NoRxModeration: true, NoTxModeration: true, NoUring: true}) {
		t.Fatalf("switches %+v", p.Offload)
	}
	p = mustParse(t, minimal+"ovpn3go-offload udp-gso off\novpn3go-offload udp-gso on\n")
	if p.Offload != (OffloadSwitches{}) {
		t.Fatalf("switches %+v after off then on", p.Offload)
	}
	// Parallel crypto is off unless switched on.
	p = mustParse(t, minimal+"ovpn3go-offload parallel-crypto on\n")
	if p.Offload != (OffloadSwitches{ParallelCrypto: true}) {
		t.Fatalf("switches %+v after parallel-crypto on", p.Offload)
	}
	p = mustParse(t, minimal+"ovpn3go-offload parallel-crypto on\novpn3go-offload parallel-crypto off\n")
	if p.Offload != (OffloadSwitches{}) {
		t.Fatalf("switches %+v after parallel-crypto on then off", p.Offload)
	}
	for _, bad := range []string{"ovpn3go-offload tun", "ovpn3go-offload tun maybe", "ovpn3go-offload gro off"} {
		_, err := Parse(minimal + bad + "\n")
		if err == nil || !strings.Contains(err.Error(), "ovpn3go-offload") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
