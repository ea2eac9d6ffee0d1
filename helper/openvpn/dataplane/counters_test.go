package dataplane

import (
	"testing"
	"unsafe"
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
