package control

import (
	"context"
	"crypto/tls"
	"log/slog"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/push"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/wire"
)

// settle runs the session as the engine's loop does, with the clock
// standing still, until every key's TLS side has ended its turn: it
// handles the TLS events and flushes after each wake-up. It returns the
// bursts the session wrote, one per Flush that wrote anything.
func (r *rig) settle(t *testing.T) [][]wire.ControlPacket {
	t.Helper()
	var bursts [][]wire.ControlPacket
	stall := time.NewTimer(10 * time.Second)
	defer stall.Stop()
	for {
		// Over before the Flush: that Flush then sends the whole answer.
		over := len(r.s.events) == 0
		for _, k := range r.s.keys {
			if k != nil && !k.conn.idle() {
				over = false
			}
		}
		if err := r.s.Flush(); err != nil {
			t.Fatal(err)
		}
		if b := r.conn.take(t); len(b) > 0 {
			bursts = append(bursts, b)
		}
		if over {
			return bursts
		}
		select {
		case ev := <-r.s.Events():
			if err := r.s.HandleTLS(ev); err != nil {
				t.Fatal(err)
			}
		case <-r.s.Wake():
		case <-stall.C:
			t.Fatal("the session's TLS side never ended its turn")
		}
	}
}

// The handshake turn by turn against the in-process server (TLS 1.3, as
// OpenVPN 2.6 with OpenSSL 3 negotiates, and TLS 1.2): each of the
// client's turns leaves as one burst, acknowledgements ride on the
// control packets that go out anyway (a bare ACK only when nothing else
// does: after the PUSH_REPLY), nothing received stays unacknowledged at
// the end of a turn, with TLS 1.3 the burst that carries the client's
// Finished also carries key-method 2, and after the handshake the
// server's messages are answered inside HandlePacket.
func TestHandshakeTurns(t *testing.T) {
	for _, tc := range []struct {
		name string
		max  uint16
	}{{"TLS1.3", tls.VersionTLS13}, {"TLS1.2", tls.VersionTLS12}} {
		t.Run(tc.name, func(t *testing.T) {
			var loggedEarly bool
			r, f := newHandshakeRig(t, func(c *Config) {
				rc := c.Conn.(*recordingConn)
				c.Log = slog.New(hookHandler{func(rec slog.Record) {
					// Logging (the backend forwards its log over D-Bus)
					// must not delay the Finished and key-method 2.
					if rec.Message == "TLS handshake done" && !rc.wrote(wire.OpControlV1) {
						loggedEarly = true
					}
				}})
			})
			f.tls.MaxVersion = tc.max
			f.push = "ifconfig 10.8.0.2 255.255.255.0,peer-id 0,cipher AES-256-GCM,key-derivation tls-ekm"
			var keys []*DataKey
			r.h.connectVia(r.s, &keys)
			bringUp := r.h.onPush
			r.h.onPush = func(rep *push.Reply) error {
				if !r.conn.wrote(wire.OpAckV1) {
					t.Error("the PUSH_REPLY was not acknowledged before the connection was brought up")
				}
				return bringUp(rep)
			}
			if err := r.s.Start(); err != nil {
				t.Fatal(err)
			}
			sync, hsSeen := 0, false
			for turn := 1; ; turn++ {
				if turn > 10 {
					t.Fatal("not connected after 10 turns")
				}
				bursts := r.settle(t)
				if len(bursts) > 1 {
					t.Errorf("turn %d left in %d bursts, want one: %v", turn, len(bursts), opcodes(bursts))
				}
				var pkts []wire.ControlPacket
				for _, b := range bursts {
					pkts = append(pkts, b...)
				}
				bare, msgs := 0, 0
				for _, p := range pkts {
					if p.Opcode == wire.OpAckV1 {
						bare++
					} else {
						msgs++
					}
				}
				if bare > 0 && msgs > 0 {
					t.Errorf("turn %d: a bare ACK went out with control packets that could carry it: %v", turn, opcodes(bursts))
				}
				if k := r.s.keys[0]; k.rel.HasPendingAcks() {
					t.Errorf("turn %d ended with acknowledgements still pending", turn)
				}
				if r.s.Connected() {
					if msgs > 0 || bare != 1 {
						t.Errorf("after the PUSH_REPLY: %v, want the one bare ACK", opcodes(bursts))
					}
					break
				}
				if len(pkts) == 0 {
					t.Fatalf("turn %d: the client sent nothing before it was connected", turn)
				}
				f.receive(pkts)
				f.settle(t)
				if f.handshakeDone() && !hsSeen {
					// The turn that ended the server's handshake: with
					// TLS 1.3 the Finished and key-method 2 in one
					// packet, so the wire cannot split them.
					hsSeen = true
					if tc.max == tls.VersionTLS13 && msgs != 1 {
						t.Errorf("turn %d: the Finished and key-method 2 in %d packets, want 1: %v", turn, msgs, opcodes(bursts))
					}
				}
				k0 := r.s.keys[0]
				afterHandshake := k0.tlsDone
				for _, b := range f.output() {
					if err := r.s.HandlePacket(b); err != nil {
						t.Fatal(err)
					}
				}
				// After the handshake HandlePacket itself reads the records
				// and answers: no goroutine in between, the next Flush
				// sends the whole answer.
				if afterHandshake {
					sync++
					if len(r.s.events) > 0 || !k0.conn.idle() {
						t.Errorf("turn %d: the server's message went to another goroutine instead of being answered in HandlePacket", turn)
					}
				}
			}
			if sync != 2 {
				t.Errorf("%d turns after the handshake, want 2 (key-method 2 reply, PUSH_REPLY)", sync)
			}
			if loggedEarly {
				t.Error("the handshake was logged before the Finished and key-method 2 went out")
			}
			f.mu.Lock()
			hs, km2 := f.hsTurn, f.km2Turn
			f.mu.Unlock()
			if hs == 0 || km2 == 0 {
				t.Fatalf("the server saw no handshake (turn %d) or key-method 2 (turn %d)", hs, km2)
			}
			// TLS 1.3: the client's Finished ends the server's handshake; it
			// must come with key-method 2. TLS 1.2: the client's handshake
			// ends a turn later, with the server's Finished; key-method 2
			// is its answer.
			want := hs
			if tc.max == tls.VersionTLS12 {
				want = hs + 1
			}
			if km2 != want {
				t.Errorf("key-method 2 reached the server in turn %d, its TLS handshake ended in turn %d", km2, hs)
			}
		})
	}
}

// wrote says a packet with that opcode is among those written and not yet
// taken.
func (r *recordingConn) wrote(op wire.Opcode) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range r.written {
		if p, err := wire.ParseControlPlain(b); err == nil && p.Opcode == op {
			return true
		}
	}
	return false
}

// hookHandler is a slog.Handler that passes each record to a function.
type hookHandler struct{ on func(slog.Record) }

func (h hookHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h hookHandler) Handle(_ context.Context, r slog.Record) error {
	h.on(r)
	return nil
}
func (h hookHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h hookHandler) WithGroup(string) slog.Handler      { return h }

// opcodes names the packets of some bursts, for messages.
func opcodes(bursts [][]wire.ControlPacket) [][]string {
	var out [][]string
	for _, b := range bursts {
		var names []string
		for _, p := range b {
			names = append(names, p.Opcode.String())
		}
		out = append(out, names)
	}
	return out
}
