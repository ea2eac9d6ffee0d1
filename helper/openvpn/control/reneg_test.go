package control

import (
	"slices"
	"testing"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/wire"
)

// TestCrossingSoftResets scripts the server side of a renegotiation that
// both ends start at the same moment: the client has sent SOFT_RESET on
// key_id 1 (reneg-sec) when the server's own SOFT_RESET for key_id 1
// arrives. The client must take it as the answer to its own — keep one
// TLS session for key 1, acknowledge the server's packet — rather than
// start over (which would loop, each side resetting the other) or wait
// for an answer that never comes.
func TestCrossingSoftResets(t *testing.T) {
	r := newRig(t, true)
	s := r.s
	k0 := r.k0

	k1, err := s.startRenegotiation(1)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	sent := r.conn.take(t)
	if len(sent) == 0 || sent[0].Opcode != wire.OpControlSoftResetV1 || sent[0].KeyID != 1 || sent[0].PacketID != 0 {
		t.Fatalf("client's own SOFT_RESET not sent first: %+v", sent)
	}

	serverReset := wire.ControlPacket{Opcode: wire.OpControlSoftResetV1, KeyID: 1, SessionID: s.remoteSID, PacketID: 0}
	wireReset := serverReset.AppendPlain(nil)
	for range 2 { // the original and a retransmission
		if err := s.HandlePacket(wireReset); err != nil {
			t.Fatalf("server SOFT_RESET: %v", err)
		}
		if s.keys[1] != k1 || s.cur != k1 {
			t.Fatal("the crossing SOFT_RESET started a second session for key 1")
		}
	}
	// Waiting for the retransmission timer would send the ack anyway; it
	// must go out as soon as key 1's TLS side has written its ClientHello
	// (piggybacked on it or as ACK_V1), without the clock moving.
	var sentNow []wire.ControlPacket
	for _, b := range r.settle(t) {
		sentNow = append(sentNow, b...)
	}
	acked := false
	for _, p := range sentNow {
		if p.KeyID == 1 && slices.Contains(p.Acks, 0) && p.RemoteSessionID == s.remoteSID {
			acked = true
		}
		if p.Opcode == wire.OpControlSoftResetV1 && p.PacketID != 0 {
			t.Errorf("client sent a second SOFT_RESET (packet id %d)", p.PacketID)
		}
	}
	if !acked {
		t.Error("the server's SOFT_RESET was not acknowledged")
	}
	// The old key keeps carrying data until key 1 is ready.
	if s.primary != k0 {
		t.Error("primary key switched before key 1 finished its handshake")
	}
}
