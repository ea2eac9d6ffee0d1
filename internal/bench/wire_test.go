package bench

import (
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/internal/testbed"
)

// wireOf splits the handshake by who sent the packet after each gap,
// from the client's first control packet to the server's last one, and
// leaves out data packets and what lies outside the connect.
func TestWireOf(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	c := func(ms int, op uint8) testbed.Packet { return testbed.Packet{At: at(ms), ToServer: true, Opcode: op} }
	s := func(ms int, op uint8) testbed.Packet { return testbed.Packet{At: at(ms), Opcode: op} }
	packets := []testbed.Packet{
		s(-5, 4),           // before the start: another connect's
		c(10, 7), s(12, 8), // resets: 2 ms the server's
		c(15, 4), c(16, 4), // ClientHello: 3 + 1 ms the client's
		s(20, 4), s(21, 9), c(30, 4), // server flight (4 ms the server's), a data packet (ignored), client finished: 10 ms the client's
		s(35, 4), // PUSH_REPLY: 5 ms the server's
		c(36, 5), // its ack: after the server's last
		s(90, 4), // after connected
	}
	w, err := wireOf(packets, t0, at(50))
	if err != nil {
		t.Fatal(err)
	}
	want := Wire{FirstPacket: 10 * time.Millisecond, LastControl: 35 * time.Millisecond,
		Client: 14 * time.Millisecond, Server: 11 * time.Millisecond, End: 50 * time.Millisecond}
	if w != want {
		t.Errorf("wireOf = %+v, want %+v", w, want)
	}
	if w.Client+w.Server != w.LastControl-w.FirstPacket {
		t.Errorf("the turns %v + %v do not add up to the handshake %v", w.Client, w.Server, w.LastControl-w.FirstPacket)
	}
	if _, err := wireOf(packets[:2], t0, at(50)); err == nil {
		t.Error("a capture with only the client's reset gave a handshake")
	}
}
