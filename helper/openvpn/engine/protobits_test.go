package engine

import (
	"testing"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/ctlmsg"
)

// TestProtoBitsDNSOption: the engine tells the server it understands the
// 2.6 "dns" option (IV_PROTO bit 11, OpenVPN's IV_PROTO_DNS_OPTION_V2),
// never the deprecated first version (bit 6).
func TestProtoBitsDNSOption(t *testing.T) {
	a := &attempt{o: &options{}}
	bits := a.protoBits()
	if bits&ctlmsg.ProtoDNSOptionV2 == 0 || ctlmsg.ProtoDNSOptionV2 != 2048 {
		t.Errorf("IV_PROTO %d lacks DNS_OPTION_V2 (2048)", bits)
	}
	if bits&ctlmsg.ProtoDNSOption != 0 {
		t.Errorf("IV_PROTO %d announces the deprecated dns option v1", bits)
	}
}
