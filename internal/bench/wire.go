package bench

import (
	"fmt"
	"time"

	"github.com/ovpn3go/ovpn3go/internal/testbed"
)

// Wire is a connect's handshake as the client's network namespace sees
// it: when the client's first packet (its reset) left, when the server's
// last control packet before the connection came up (its PUSH_REPLY)
// arrived, and how the time between the two splits between the sides.
// Each gap between consecutive packets goes to the sender of the later
// one: a client packet after a server packet is the client's processing
// (TLS, key-method 2, waiting for a timer), and the reverse the server's;
// the two add up to the handshake's time on the wire.
type Wire struct {
	FirstPacket time.Duration // start → the client's first packet
	LastControl time.Duration // start → the server's last control packet before connected
	Client      time.Duration // gaps before the client's packets
	Server      time.Duration // gaps before the server's packets
	End         time.Duration // start → connected
}

// wireOf reads the control packets captured between t0 (the client's
// start) and end (connected).
func wireOf(packets []testbed.Packet, t0, end time.Time) (Wire, error) {
	var ctl []testbed.Packet
	for _, p := range packets {
		if p.Control() && !p.At.Before(t0) && !p.At.After(end) {
			ctl = append(ctl, p)
		}
	}
	// Up to the server's last one: the client's acknowledgement after it
	// is no part of the wait.
	last := len(ctl) - 1
	for last >= 0 && ctl[last].ToServer {
		last--
	}
	if len(ctl) < 2 || !ctl[0].ToServer || last < 1 {
		return Wire{}, fmt.Errorf("handshake capture: %d control packets, not the client's first and then the server's", len(ctl))
	}
	w := Wire{FirstPacket: ctl[0].At.Sub(t0), LastControl: ctl[last].At.Sub(t0), End: end.Sub(t0)}
	for i := 1; i <= last; i++ {
		gap := ctl[i].At.Sub(ctl[i-1].At)
		if ctl[i].ToServer {
			w.Client += gap
		} else {
			w.Server += gap
		}
	}
	return w, nil
}

// startWire captures the OpenVPN port in the client's namespace for one
// connect.
func startWire(st *testbed.Stack) (*testbed.Capture, error) {
	c, err := testbed.StartCapture(st.Pair.ClientNS, testbed.Port)
	if err != nil {
		return nil, fmt.Errorf("handshake capture: %w", err)
	}
	return c, nil
}
