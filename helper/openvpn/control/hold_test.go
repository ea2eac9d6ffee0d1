package control

import (
	"crypto/tls"
	"testing"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/wire"
)

// holdTurn is one exchange of the handshake: the client's turn (its burst
// goes to the server), then the server's (its answer goes to the client).
// It returns how many packets the client sent.
func holdTurn(t *testing.T, r *rig, f *fakeServer) int {
	t.Helper()
	var pkts []wire.ControlPacket
	for _, b := range r.settle(t) {
		pkts = append(pkts, b...)
	}
	f.receive(pkts)
	f.settle(t)
	for _, b := range f.output() {
		if err := r.s.HandlePacket(b); err != nil {
			t.Fatal(err)
		}
	}
	return len(pkts)
}

// With HoldKeyMethod2 the first key's TLS handshake runs to its end on
// both sides, and the exchange goes quiet with no key-method 2 at the
// server; ReleaseKeyMethod2 sends it at once and the session connects.
// Released before the handshake ended, the hold changes nothing: with
// TLS 1.3 key-method 2 travels with the client's Finished.
func TestHoldKeyMethod2(t *testing.T) {
	for _, tc := range []struct {
		name string
		max  uint16
	}{{"TLS1.3", tls.VersionTLS13}, {"TLS1.2", tls.VersionTLS12}} {
		for _, early := range []bool{false, true} {
			name := tc.name + "/held"
			if early {
				name = tc.name + "/released-early"
			}
			t.Run(name, func(t *testing.T) {
				r, f := newHandshakeRig(t, func(c *Config) { c.HoldKeyMethod2 = true })
				f.tls.MaxVersion = tc.max
				f.push = "ifconfig 10.8.0.2 255.255.255.0,peer-id 0,cipher AES-256-GCM,key-derivation tls-ekm"
				var keys []*DataKey
				r.h.connectVia(r.s, &keys)
				if err := r.s.Start(); err != nil {
					t.Fatal(err)
				}
				if early {
					if err := r.s.ReleaseKeyMethod2(); err != nil {
						t.Fatal(err)
					}
				} else {
					quiet := false
					for turn := 1; turn <= 10 && !quiet; turn++ {
						quiet = holdTurn(t, r, f) == 0
					}
					if !quiet {
						t.Fatal("the held handshake never went quiet")
					}
					if !f.handshakeDone() || !r.s.keys[0].tlsDone || !r.s.KeyMethod2Held() {
						t.Fatalf("quiet before the handshake ended: server done %v, client done %v, held %v",
							f.handshakeDone(), r.s.keys[0].tlsDone, r.s.KeyMethod2Held())
					}
					f.mu.Lock()
					km2 := f.km2Turn
					f.mu.Unlock()
					if km2 != 0 {
						t.Fatalf("the server got key-method 2 in turn %d while it was held", km2)
					}
					if r.s.Connected() || f.requests != 0 {
						t.Fatal("connected while key-method 2 was held")
					}
					if err := r.s.ReleaseKeyMethod2(); err != nil {
						t.Fatal(err)
					}
					if r.s.KeyMethod2Held() {
						t.Error("still held after ReleaseKeyMethod2")
					}
					// Released: key-method 2 is on the wire at once, not at
					// the next event.
					if !r.conn.wrote(wire.OpControlV1) {
						t.Error("ReleaseKeyMethod2 sent no control packet")
					}
				}
				for turn := 1; !r.s.Connected(); turn++ {
					if turn > 10 {
						t.Fatal("not connected after 10 turns")
					}
					holdTurn(t, r, f)
				}
				f.mu.Lock()
				hs, km2 := f.hsTurn, f.km2Turn
				f.mu.Unlock()
				switch {
				case !early && km2 <= hs:
					t.Errorf("key-method 2 reached the server in turn %d, the handshake ended in turn %d: it was not held", km2, hs)
				case early && tc.max == tls.VersionTLS13 && km2 != hs:
					t.Errorf("released early: key-method 2 in turn %d, the Finished in turn %d, want together", km2, hs)
				}
				if len(keys) != 1 || keys[0].Cipher != "AES-256-GCM" {
					t.Errorf("first key %+v", keys)
				}
			})
		}
	}
}
