package engine

import (
	"testing"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/control"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/push"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/transport/transporttest"
)

// The userspace plane: the primary slot sends, both slots receive by
// key_id, a swap changes the sender, a delete stops receiving.
func TestUserPlaneSlots(t *testing.T) {
	a := newLimitsRig(t, 0, 0).a
	a.tr = &transporttest.Discard{}
	a.comp = framingOf(push.CompressionNone)
	p := a.user
	if err := p.InstallKey(SlotPrimary, testKeyMaterial(t, 0)); err != nil {
		t.Fatal(err)
	}
	if k := a.dp.SendKey(); k == nil || k.KeyID() != 0 {
		t.Fatal("key 0 in the primary slot does not send")
	}
	if err := p.SwapKeys(); err == nil {
		t.Fatal("swap with an empty secondary slot accepted")
	}
	if err := p.InstallKey(SlotSecondary, testKeyMaterial(t, 1)); err != nil {
		t.Fatal(err)
	}
	if a.conn.RecvKey(0) == nil || a.conn.RecvKey(1) == nil || a.dp.SendKey().KeyID() != 0 {
		t.Fatal("a secondary key must receive but not send")
	}
	if err := p.SwapKeys(); err != nil {
		t.Fatal(err)
	}
	if a.dp.SendKey().KeyID() != 1 {
		t.Fatal("after the swap key 1 must send")
	}
	// The session's renegotiation limits read the keys' use through Meter.
	var plane control.KeyPlane = p
	mp, ok := plane.(control.MeteredPlane)
	if !ok {
		t.Fatal("the userspace plane does not meter its keys")
	}
	if err := a.dp.sendPing(); err != nil {
		t.Fatal(err)
	}
	if m := mp.Meter(1); m == nil || m.Usage().Packets != 1 {
		t.Fatalf("meter of the sending key after one packet: %v", m)
	}
	if m := mp.Meter(5); m != nil {
		t.Fatal("a meter for a key id the plane does not hold")
	}
	if err := p.DeleteKey(SlotSecondary); err != nil {
		t.Fatal(err)
	}
	if a.conn.RecvKey(0) != nil || a.conn.RecvKey(1) == nil {
		t.Fatal("the deleted secondary (key 0) still receives")
	}
}
