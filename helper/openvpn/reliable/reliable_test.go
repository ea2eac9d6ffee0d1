package reliable

import (
	"bytes"
	"container/heap"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/wire"
)

var t0 = time.Unix(1_700_000_000, 0)

func ctl(id uint32, payload string, acks ...uint32) *wire.ControlPacket {
	return &wire.ControlPacket{Opcode: wire.OpControlV1, PacketID: id, Payload: []byte(payload), Acks: acks}
}

func TestIDsStartAtZeroAndWindowLimitsInflight(t *testing.T) {
	l := New(Config{})
	for i := 0; i < 10; i++ {
		if id := l.Send(wire.OpControlV1, []byte{byte(i)}); id != uint32(i) {
			t.Fatalf("message %d got id %d", i, id)
		}
	}
	out := l.Output(t0, nil)
	if len(out) != DefaultSendWindow {
		t.Fatalf("sent %d packets, want window %d", len(out), DefaultSendWindow)
	}
	for i, p := range out {
		if p.PacketID != uint32(i) || p.Opcode != wire.OpControlV1 {
			t.Fatalf("packet %d: %+v", i, p)
		}
	}
	if out := l.Output(t0, nil); len(out) != 0 {
		t.Fatalf("resent before timeout: %d packets", len(out))
	}
	// Acknowledging two frees two slots, filled by messages 6 and 7.
	if _, err := l.Receive(&wire.ControlPacket{Opcode: wire.OpAckV1, Acks: []uint32{0, 1}}, t0); err != nil {
		t.Fatal(err)
	}
	out = l.Output(t0, nil)
	if got := ids(out); !slices.Equal(got, []uint32{6, 7}) {
		t.Fatalf("after ack sent %v, want [6 7]", got)
	}
	if l.Queued() != 8 {
		t.Fatalf("queued %d, want 8", l.Queued())
	}
}

func ids(ps []wire.ControlPacket) []uint32 {
	var r []uint32
	for _, p := range ps {
		r = append(r, p.PacketID)
	}
	return r
}

func TestRetransmitBackoff(t *testing.T) {
	l := New(Config{Timeout: 2 * time.Second, MaxTimeout: 8 * time.Second})
	l.Send(wire.OpControlHardResetClientV2, nil)
	now := t0
	var sendTimes []time.Duration
	for now.Sub(t0) < 40*time.Second {
		if out := l.Output(now, nil); len(out) > 0 {
			sendTimes = append(sendTimes, now.Sub(t0))
		}
		d, ok := l.Deadline()
		if !ok {
			t.Fatal("no deadline with a packet in flight")
		}
		now = d
	}
	want := []time.Duration{0, 2 * time.Second, 6 * time.Second, 14 * time.Second, 22 * time.Second, 30 * time.Second, 38 * time.Second}
	if !slices.Equal(sendTimes, want) {
		t.Fatalf("send times %v, want %v", sendTimes, want)
	}
	l.Receive(&wire.ControlPacket{Opcode: wire.OpAckV1, Acks: []uint32{0}}, now)
	if _, ok := l.Deadline(); ok || !l.Idle() {
		t.Fatal("still busy after the ack")
	}
}

func TestSetMaxTimeoutStopsBackoff(t *testing.T) {
	l := New(Config{Timeout: 2 * time.Second})
	l.SetMaxTimeout(0)
	l.Send(wire.OpControlHardResetClientV2, nil)
	now := t0
	for i := 0; i < 5; i++ {
		if out := l.Output(now, nil); len(out) != 1 {
			t.Fatalf("try %d at %v: %d packets", i, now.Sub(t0), len(out))
		}
		d, _ := l.Deadline()
		if got := d.Sub(now); got != 2*time.Second {
			t.Fatalf("try %d: next in %v, want 2s", i, got)
		}
		now = d
	}
	l.SetMaxTimeout(time.Minute)
	l.Output(now, nil) // resent after 2 s, next wait doubles
	now, _ = l.Deadline()
	l.Output(now, nil)
	if d, _ := l.Deadline(); d.Sub(now) != 4*time.Second {
		t.Fatalf("backoff not restored: next in %v", d.Sub(now))
	}
}

func TestFastRetransmit(t *testing.T) {
	l := New(Config{})
	for i := 0; i < 5; i++ {
		l.Send(wire.OpControlV1, []byte("x"))
	}
	l.Output(t0, nil)
	now := t0.Add(100 * time.Millisecond)
	l.Receive(&wire.ControlPacket{Opcode: wire.OpAckV1, Acks: []uint32{1, 2}}, now)
	if out := l.Output(now, nil); len(out) != 0 {
		t.Fatalf("resent after two later acks: %v", ids(out))
	}
	l.Receive(&wire.ControlPacket{Opcode: wire.OpAckV1, Acks: []uint32{3}}, now)
	if out := l.Output(now, nil); !slices.Equal(ids(out), []uint32{0}) {
		t.Fatalf("after three later acks resent %v, want [0]", ids(out))
	}
	if s := l.Stats(); s.FastRetransmits != 1 {
		t.Fatalf("fast retransmits %d", s.FastRetransmits)
	}
}

func TestReceiveReorderDuplicateWindow(t *testing.T) {
	l := New(Config{})
	mustRecv := func(p *wire.ControlPacket, want Result) {
		t.Helper()
		r, err := l.Receive(p, t0)
		if err != nil || r != want {
			t.Fatalf("packet %d: %v %v, want %v", p.PacketID, r, err, want)
		}
	}
	mustRecv(ctl(2, "c"), Accepted)
	if _, ok := l.Next(); ok {
		t.Fatal("delivered out of order")
	}
	mustRecv(ctl(1, "b"), Accepted)
	mustRecv(ctl(2, "c"), Duplicate)
	mustRecv(ctl(12, "far"), OutOfWindow)
	mustRecv(ctl(0, "a"), Accepted)
	var got string
	for m, ok := l.Next(); ok; m, ok = l.Next() {
		got += string(m.Payload)
	}
	if got != "abc" {
		t.Fatalf("delivered %q, want abc", got)
	}
	mustRecv(ctl(0, "a"), Duplicate) // behind the window now: re-ack
	mustRecv(ctl(14, "edge"), Accepted)
	mustRecv(ctl(15, "beyond"), OutOfWindow)

	// Acks: 2,1,0,14 (0 and 2 again deduplicated); piggyback 4, rest as ACK_V1.
	l.Send(wire.OpControlV1, []byte("reply"))
	out := l.Output(t0, nil)
	if len(out) != 1 || out[0].Opcode != wire.OpControlV1 || !slices.Equal(out[0].Acks, []uint32{2, 1, 0, 14}) {
		t.Fatalf("output %+v", out)
	}
	if l.HasPendingAcks() {
		t.Fatal("acks left over")
	}
}

func TestAckV1Splitting(t *testing.T) {
	l := New(Config{RecvWindow: 20})
	for i := 19; i >= 0; i-- {
		l.Receive(ctl(uint32(i), "x"), t0)
	}
	out := l.Output(t0, nil)
	if len(out) != 3 {
		t.Fatalf("%d ACK packets for 20 acks, want 3", len(out))
	}
	n := 0
	for _, p := range out {
		if p.Opcode != wire.OpAckV1 || len(p.Acks) > wire.MaxAcksPerAck {
			t.Fatalf("bad ack packet %+v", p)
		}
		n += len(p.Acks)
	}
	if n != 20 {
		t.Fatalf("acked %d, want 20", n)
	}
}

// OutputMessages holds acknowledgements back until a message goes out and
// then piggybacks them on it; Output sends what is left as ACK_V1.
func TestOutputMessagesHoldsBareAcks(t *testing.T) {
	l := New(Config{})
	l.Receive(ctl(0, "a"), t0)
	l.Receive(ctl(1, "b"), t0)
	if out := l.OutputMessages(t0, nil); len(out) != 0 || !l.HasPendingAcks() {
		t.Fatalf("nothing to send: got %+v, acks pending %v", out, l.HasPendingAcks())
	}
	l.Send(wire.OpControlV1, []byte("answer"))
	out := l.OutputMessages(t0, nil)
	if len(out) != 1 || out[0].Opcode != wire.OpControlV1 || !slices.Equal(out[0].Acks, []uint32{0, 1}) {
		t.Fatalf("answer with the held acks: %+v", out)
	}
	if l.HasPendingAcks() {
		t.Fatal("acks left after they rode on the answer")
	}
	l.Receive(ctl(2, "c"), t0)
	out = l.Output(t0, nil)
	if len(out) != 1 || out[0].Opcode != wire.OpAckV1 || !slices.Equal(out[0].Acks, []uint32{2}) {
		t.Fatalf("Output with nothing else to send: %+v, want one ACK_V1 for 2", out)
	}
}

func TestPendingAcksBounded(t *testing.T) {
	l := New(Config{})
	for i := 0; i < 200; i++ {
		l.Receive(ctl(uint32(i), "x"), t0)
		l.Next()
	}
	// Old ids replayed far behind the window only grow the ack set to its bound.
	for i := 0; i < 200; i++ {
		l.Receive(ctl(uint32(i), "x"), t0)
	}
	if len(l.pendingAcks) > maxPendingAcks {
		t.Fatalf("%d pending acks", len(l.pendingAcks))
	}
}

func TestReceiveRejectsData(t *testing.T) {
	l := New(Config{})
	if _, err := l.Receive(&wire.ControlPacket{Opcode: wire.OpDataV2}, t0); err == nil {
		t.Fatal("data packet accepted")
	}
}

// --- simulated lossy link ---------------------------------------------------

type flight struct {
	at   time.Time
	seq  int
	to   int
	wire []byte
}

type flightQueue []flight

func (q flightQueue) Len() int { return len(q) }
func (q flightQueue) Less(i, j int) bool {
	if q[i].at.Equal(q[j].at) {
		return q[i].seq < q[j].seq
	}
	return q[i].at.Before(q[j].at)
}
func (q flightQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *flightQueue) Push(x any)   { *q = append(*q, x.(flight)) }
func (q *flightQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

type linkParams struct {
	loss, dup          float64
	minDelay, maxDelay time.Duration
}

// simulate pushes two random byte streams through two layers joined by a
// link with the given loss, duplication and reordering (random delay), on a
// virtual clock, and checks both arrive intact.
func simulate(t *testing.T, seed uint64, lp linkParams, streamLen int) (time.Duration, [2]Stats) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var ends [2]*Layer
	var sids [2]wire.SessionID
	var want, got [2][]byte
	for i := range ends {
		ends[i] = New(Config{})
		sids[i][0] = byte(i + 1)
		want[i] = make([]byte, streamLen)
		for j := range want[i] {
			want[i][j] = byte(rng.Uint32())
		}
		// Queue the whole stream in random-sized messages.
		for rest := want[i]; len(rest) > 0; {
			n := min(len(rest), 1+rng.IntN(300))
			ends[i].Send(wire.OpControlV1, rest[:n])
			rest = rest[n:]
		}
	}
	var q flightQueue
	seq := 0
	now := t0
	transmit := func(from int) {
		for _, p := range ends[from].Output(now, nil) {
			p.SessionID = sids[from]
			p.RemoteSessionID = sids[1-from]
			b := p.AppendPlain(nil)
			if rng.Float64() < lp.loss {
				continue
			}
			copies := 1
			if rng.Float64() < lp.dup {
				copies = 2
			}
			for c := 0; c < copies; c++ {
				d := lp.minDelay + time.Duration(rng.Int64N(int64(lp.maxDelay-lp.minDelay)+1))
				seq++
				heap.Push(&q, flight{at: now.Add(d), seq: seq, to: 1 - from, wire: b})
			}
		}
	}
	deadline := t0.Add(2 * time.Hour)
	for now.Before(deadline) {
		transmit(0)
		transmit(1)
		done := true
		for i := range ends {
			if !ends[i].Idle() || len(got[1-i]) != len(want[i]) || ends[i].HasPendingAcks() {
				done = false
			}
		}
		if done {
			break
		}
		// Advance to the next event: an arrival or a retransmission timer.
		next := deadline
		if len(q) > 0 {
			next = q[0].at
		}
		for i := range ends {
			if d, ok := ends[i].Deadline(); ok && d.Before(next) {
				next = d
			}
		}
		if next.After(now) {
			now = next
		}
		for len(q) > 0 && !q[0].at.After(now) {
			f := heap.Pop(&q).(flight)
			p, err := wire.ParseControlPlain(f.wire)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if p.SessionID != sids[1-f.to] || (len(p.Acks) > 0 && p.RemoteSessionID != sids[f.to]) {
				t.Fatalf("session ids mixed up: %+v", p)
			}
			if _, err := ends[f.to].Receive(&p, now); err != nil {
				t.Fatal(err)
			}
			for m, ok := ends[f.to].Next(); ok; m, ok = ends[f.to].Next() {
				got[f.to] = append(got[f.to], m.Payload...)
			}
		}
	}
	for i := range ends {
		if !bytes.Equal(got[1-i], want[i]) {
			t.Fatalf("seed %d: stream %d->%d: got %d bytes, want %d (equal prefix %d)", seed, i, 1-i,
				len(got[1-i]), len(want[i]), commonPrefix(got[1-i], want[i]))
		}
	}
	return now.Sub(t0), [2]Stats{ends[0].Stats(), ends[1].Stats()}
}

func commonPrefix(a, b []byte) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

func TestLossyLinkDeliversStreamsIntact(t *testing.T) {
	cases := []linkParams{
		{loss: 0, dup: 0, minDelay: 10 * time.Millisecond, maxDelay: 10 * time.Millisecond},
		{loss: 0.1, dup: 0.05, minDelay: 5 * time.Millisecond, maxDelay: 80 * time.Millisecond},
		{loss: 0.3, dup: 0.2, minDelay: 1 * time.Millisecond, maxDelay: 300 * time.Millisecond},
		{loss: 0.5, dup: 0.3, minDelay: 0, maxDelay: 500 * time.Millisecond},
	}
	for i, lp := range cases {
		for seed := uint64(1); seed <= 5; seed++ {
			t.Run(fmt.Sprintf("case%d/seed%d", i, seed), func(t *testing.T) {
				took, st := simulate(t, seed, lp, 64<<10)
				if i == 0 && (st[0].Retransmitted != 0 || st[1].Retransmitted != 0) {
					t.Errorf("retransmissions on a perfect link: %+v", st)
				}
				t.Logf("loss %.0f%% dup %.0f%%: %v virtual, stats %+v", lp.loss*100, lp.dup*100, took, st[0])
			})
		}
	}
}

func FuzzReceive(f *testing.F) {
	f.Add([]byte{0, 1, 2, 5, 5, 3, 200})
	f.Fuzz(func(t *testing.T, script []byte) {
		l := New(Config{})
		l.Send(wire.OpControlV1, []byte("x"))
		next := uint32(0)
		for _, b := range script {
			id := uint32(b % 32)
			if b&0x80 != 0 {
				l.Receive(&wire.ControlPacket{Opcode: wire.OpAckV1, Acks: []uint32{id % 4}}, t0)
			} else {
				l.Receive(ctl(id, string(rune('a'+id))), t0)
			}
			for m, ok := l.Next(); ok; m, ok = l.Next() {
				if string(m.Payload) != string(rune('a'+next)) {
					t.Fatalf("delivered %q as message %d", m.Payload, next)
				}
				next++
			}
			l.Output(t0, nil)
		}
	})
}
