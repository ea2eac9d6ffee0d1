package engine

import (
	"context"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/ctlwrap"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/reliable"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/wire"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// recordingTransport keeps what the control plane writes.
type recordingTransport struct {
	mu      sync.Mutex
	written [][]byte
	closed  chan struct{}
	once    sync.Once
}

func (r *recordingTransport) ReadPacket([]byte) (int, error) { <-r.closed; return 0, net.ErrClosed }
func (r *recordingTransport) WritePacket(p []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.written = append(r.written, slices.Clone(p))
	return nil
}
func (r *recordingTransport) Close() error  { r.once.Do(func() { close(r.closed) }); return nil }
func (r *recordingTransport) Proto() string { return "udp" }
func (r *recordingTransport) RemoteAddr() net.Addr {
	return &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 1194}
}

func (r *recordingTransport) take(t *testing.T) []wire.ControlPacket {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []wire.ControlPacket
	for _, b := range r.written {
		p, err := wire.ParseControlPlain(b)
		if err != nil {
			t.Fatalf("client wrote an unparsable packet %x: %v", b, err)
		}
		out = append(out, p)
	}
	r.written = nil
	return out
}

// TestCrossingSoftResets scripts the server side of a renegotiation that
// both ends start at the same moment: the client has sent SOFT_RESET on
// key_id 1 (reneg-sec) when the server's own SOFT_RESET for key_id 1
// arrives. The client must take it as the answer to its own — keep one
// TLS session for key 1, acknowledge the server's packet — rather than
// start over (which would loop, each side resetting the other) or wait
// for an answer that never comes.
func TestCrossingSoftResets(t *testing.T) {
	testenv.RequireCommand(t, "openvpn") // the PKI's static keys
	pki := testbed.PKI(t)
	text, err := pki.Profile(testbed.VariantA)
	if err != nil {
		t.Fatal(err)
	}
	prof, err := profile.Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{Profile: prof, Tun: &nsTun{}})
	if err != nil {
		t.Fatal(err)
	}
	tr := &recordingTransport{closed: make(chan struct{})}
	a := newAttempt(c, newDataPlane(c), endpoint{host: "192.0.2.1", port: "1194", network: "udp", addr: "192.0.2.1:1194"})
	a.ctx, a.cancel = context.WithCancel(context.Background())
	a.tr = tr
	a.wrap = ctlwrap.NewPlain()
	a.localSID = wire.SessionID{1, 1, 1, 1, 1, 1, 1, 1}
	a.remoteSID = wire.SessionID{2, 2, 2, 2, 2, 2, 2, 2}
	a.gotReset = true
	k0 := &keyState{id: 0, rel: reliable.New(reliable.Config{Timeout: 2 * time.Second}), started: time.Now(),
		conn: newCtlConn(a.wake, tr.RemoteAddr(), tr.RemoteAddr())}
	a.keys[0], a.cur, a.primary = k0, k0, k0
	defer a.shutdown()

	k1, err := a.startRenegotiation(1)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.flush(); err != nil {
		t.Fatal(err)
	}
	sent := tr.take(t)
	if len(sent) == 0 || sent[0].Opcode != wire.OpControlSoftResetV1 || sent[0].KeyID != 1 || sent[0].PacketID != 0 {
		t.Fatalf("client's own SOFT_RESET not sent first: %+v", sent)
	}

	serverReset := wire.ControlPacket{Opcode: wire.OpControlSoftResetV1, KeyID: 1, SessionID: a.remoteSID, PacketID: 0}
	wireReset := serverReset.AppendPlain(nil)
	for range 2 { // the original and a retransmission
		if err := a.handlePacket(wireReset); err != nil {
			t.Fatalf("server SOFT_RESET: %v", err)
		}
		if a.keys[1] != k1 || a.cur != k1 {
			t.Fatal("the crossing SOFT_RESET started a second session for key 1")
		}
	}
	// Waiting for the retransmission timer would send the ack anyway; it
	// must go out right away (piggybacked or as ACK_V1).
	if err := a.flush(); err != nil {
		t.Fatal(err)
	}
	acked := false
	for _, p := range tr.take(t) {
		if p.KeyID == 1 && slices.Contains(p.Acks, 0) && p.RemoteSessionID == a.remoteSID {
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
	if a.primary != k0 {
		t.Error("primary key switched before key 1 finished its handshake")
	}
}
