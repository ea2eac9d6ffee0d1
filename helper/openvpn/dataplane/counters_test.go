package dataplane

import (
	"fmt"
	"sync"
	"testing"
	"unsafe"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/transport/transporttest"
)

// TestCountersOnOwnCacheLines: the send and receive directions' counters
// (written per packet by two goroutines on different cores) and the
// control loop's never share a 128-byte span, wherever the struct lands:
// each group fits in one 64-byte line and at least 128 bytes separate a
// group from its neighbours and from the fields around counters.
func TestCountersOnOwnCacheLines(t *testing.T) {
	var c Counters
	type span struct {
		name       string
		start, end uintptr
	}
	groups := []span{
		{"tx", unsafe.Offsetof(c.txCounters), unsafe.Offsetof(c.txCounters) + unsafe.Sizeof(c.txCounters)},
		{"rx", unsafe.Offsetof(c.rxCounters), unsafe.Offsetof(c.rxCounters) + unsafe.Sizeof(c.rxCounters)},
		{"ctl", unsafe.Offsetof(c.KeyRotations), unsafe.Offsetof(c.KeyRotations) + unsafe.Sizeof(c.KeyRotations)},
	}
	prevEnd := uintptr(0) // the fields before counters end at its offset 0
	for _, g := range groups {
		if g.end-g.start > 64 {
			t.Errorf("%s counters take %d bytes, more than one cache line", g.name, g.end-g.start)
		}
		if gap := g.start - prevEnd; gap < 128 {
			t.Errorf("%s counters start %d bytes after the previous group, want at least 128", g.name, gap)
		}
		prevEnd = g.end
	}
	if gap := unsafe.Sizeof(c) - prevEnd; gap < 128 {
		t.Errorf("%d bytes after the last group, want at least 128 before what follows counters", gap)
	}
	// The per-packet fields are where the grouping says (Offsetof of a
	// promoted field is relative to counters).
	for _, f := range []struct {
		name string
		off  uintptr
		in   span
	}{
		{"tunBytesIn", unsafe.Offsetof(c.TunBytesIn), groups[0]},
		{"bytesOut", unsafe.Offsetof(c.BytesOut), groups[0]},
		{"bytesIn", unsafe.Offsetof(c.BytesIn), groups[1]},
		{"tunBytesOut", unsafe.Offsetof(c.TunBytesOut), groups[1]},
	} {
		if f.off < f.in.start || f.off >= f.in.end {
			t.Errorf("%s at %d is outside the %s group [%d, %d)", f.name, f.off, f.in.name, f.in.start, f.in.end)
		}
	}
}

// streamConn is a transport as the data plane sees TCP's (no batch
// writer: each packet is written as it is sealed) that notes every packet
// which left before the TUN packets read were counted as far as it.
type streamConn struct {
	transporttest.Discard
	mu      sync.Mutex
	counted func() int64 // TunPktsIn
	early   int
}

func (s *streamConn) WritePacket(b []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.Discard.WritePacket(b)
	if s.counted() < int64(s.Pkts) {
		s.early++
	}
	return nil
}

func (s *streamConn) Proto() string { return "tcp" }

func (s *streamConn) sent() (pkts, early int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Pkts, s.early
}

// TestTunPacketsCountedBeforeTheyLeave: a packet read from the TUN device
// is counted before it reaches a stream transport, on every send path
// (inline and parallel, with and without the TUN offload), so a reader of
// the counters who saw a ping's reply sees its request counted however
// long the sending goroutine was kept off its CPU (the engine's
// TestIntegrationConnect/b-tcp failed so on a loaded machine). The
// receive direction's counterpart is runDown's check (genTun.counted).
func TestTunPacketsCountedBeforeTheyLeave(t *testing.T) {
	const n = 200
	for _, mode := range []benchMode{modeNone, {name: "tun", tun: true}, parallelModes[0],
		{name: "tun/parallel", tun: true, parallel: true, workers: 4}} {
		ckey, _ := dataPlaneKeys(t, 3)
		tun, _ := upTun(1400, mode, n)
		p := mode.plane()
		tr := &streamConn{counted: p.Counters().TunPktsIn.Load}
		if err := p.NewConn(ConnConfig{Transport: tr}).InstallKey(Primary, ckey); err != nil {
			t.Fatal(err)
		}
		p.StartTun(tun)
		<-tun.drained
		waitFor(t, func() bool { sent, _ := tr.sent(); return sent >= n },
			func() string {
				sent, _ := tr.sent()
				return fmt.Sprintf("%s: %d of %d packets sent", mode.name, sent, n)
			})
		p.CloseTun()
		if _, early := tr.sent(); early != 0 {
			t.Errorf("%s: %d of %d packets left before they were counted as read from the TUN device", mode.name, early, n)
		}
		if mode.name == "tun/parallel" && p.ParallelBatches() == 0 {
			t.Errorf("%s: no batch went through the parallel pipeline", mode.name)
		}
	}
}
