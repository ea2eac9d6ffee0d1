package process

import (
	"context"
	"os"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

// Settle leaves the process with the steady-state GOGC (unless the
// environment sets one) and what the handshake dropped collected and
// returned to the kernel at once.
func TestSettleMemory(t *testing.T) {
	orig := debug.SetGCPercent(100)
	debug.SetGCPercent(orig)
	defer debug.SetGCPercent(orig)
	garbage := residentGarbage()
	runtime.KeepAlive(garbage) // dead from here on, not yet collected
	before := residentHeap()
	Settle()
	after := residentHeap()
	old := debug.SetGCPercent(orig)
	if os.Getenv("GOGC") == "" && old != steadyGCPercent {
		t.Errorf("GOGC after Settle = %d, want %d", old, steadyGCPercent)
	}
	// The 8 MiB of garbage were collected and their pages returned.
	if after+6<<20 > before {
		t.Errorf("heap resident: %d KiB before Settle, %d KiB after; want 8 MiB of garbage gone", before>>10, after>>10)
	}
}

// residentHeap is the heap memory the process holds from the kernel:
// objects (live or not yet collected), free and unused heap not released.
func residentHeap() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.HeapIdle - m.HeapReleased
}

// Busy holds Go's default GOGC while anyone holds it, and the last release
// (each counted once) restores what the first found.
func TestBusyGCPercent(t *testing.T) {
	t.Setenv("GOGC", "") // one in the environment would win over Busy
	orig := debug.SetGCPercent(steadyGCPercent)
	defer debug.SetGCPercent(orig)
	gogc := func() int {
		v := debug.SetGCPercent(-1)
		debug.SetGCPercent(v)
		return v
	}
	a := Busy()
	if got := gogc(); got != busyGCPercent {
		t.Fatalf("GOGC while busy = %d, want %d", got, busyGCPercent)
	}
	b := Busy()
	a()
	a() // counted once
	if got := gogc(); got != busyGCPercent {
		t.Fatalf("GOGC after one of two releases = %d, want %d", got, busyGCPercent)
	}
	b()
	if got := gogc(); got != steadyGCPercent {
		t.Fatalf("GOGC after the last release = %d, want %d", got, steadyGCPercent)
	}
	// Settle while busy (a daemon started by the bus for a NewTunnel):
	// the steady setting comes with the release, not before nor never.
	debug.SetGCPercent(100)
	c := Busy()
	Settle()
	if got := gogc(); got != busyGCPercent {
		t.Fatalf("GOGC after Settle while busy = %d, want %d", got, busyGCPercent)
	}
	c()
	if got := gogc(); got != steadyGCPercent {
		t.Fatalf("GOGC after the release following Settle = %d, want %d", got, steadyGCPercent)
	}
}

// heapFree is the free heap the process still holds from the kernel.
func heapFree() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapIdle - m.HeapReleased
}

// Trim returns what collections freed: the pages a collection left free
// (the runtime keeps them) go back to the kernel on Trim's next tick.
func TestTrimReturnsFreePages(t *testing.T) {
	// No collections but the test's own; with GOGC off the runtime's
	// scavenger keeps free pages too, as it does below its goal.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	garbage := residentGarbage()
	runtime.KeepAlive(garbage)
	runtime.GC()
	if free := heapFree(); free < 6<<20 {
		t.Fatalf("after collecting 8 MiB of garbage the runtime holds %d KiB of free heap: the test cannot see Trim's effect", free>>10)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tick, trimmed, ended := make(chan time.Time), make(chan struct{}), make(chan struct{})
	go func() {
		defer close(ended)
		trim(ctx, tick, func() { trimmed <- struct{}{} })
	}()
	tick <- time.Now()
	<-trimmed
	cancel()
	<-ended
	if free := heapFree(); free > 1<<20 {
		t.Errorf("after Trim the runtime holds %d KiB of free heap, want under 1 MiB", free>>10)
	}
}

// residentGarbage allocates 8 MiB in 128 KiB pieces and touches every
// page, so that all of it is resident.
func residentGarbage() [][]byte {
	garbage := make([][]byte, 0, 64)
	for range 64 {
		b := make([]byte, 128<<10)
		for i := range b {
			b[i] = 1
		}
		garbage = append(garbage, b)
	}
	return garbage
}
