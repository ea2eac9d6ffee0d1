package process

import (
	"context"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"time"
)

// steadyGCPercent is the garbage collector's GOGC once a process has
// started (the daemon) or connected (a backend). Both live for hours with
// a live heap of one or two MB and allocate next to nothing in their
// steady state (the data plane reuses its buffers), so a collection costs
// well under a millisecond and is rare. Go's default of 100 lets the heap
// grow to twice the live heap and never below 4 MB (the minimum scales
// with GOGC), which for these processes is mostly garbage kept resident:
// at 25 the heap goal is live+25% and at least 1 MB. Start-up and the
// handshake run with the default (fewer collections on the connect path);
// the setting applies from then on. No memory limit (GOMEMLIMIT) is set:
// it bounds a heap that grows, while these stay small, and a limit too
// close to the live heap makes the collector run continuously. An
// administrator's GOGC in the environment wins.
const steadyGCPercent = 25

// Settle switches this process to its steady-state garbage
// collector setting and returns what start-up or the handshake left
// behind (parsed profiles, certificates, TLS state, D-Bus introspection)
// to the kernel: a full collection, a few milliseconds, once per
// connection.
func Settle() {
	if os.Getenv("GOGC") == "" {
		busy.Lock()
		if busy.n > 0 {
			// A session start is under way (the daemon was started by
			// the bus for a NewTunnel): its release applies it.
			busy.prev = steadyGCPercent
		} else {
			debug.SetGCPercent(steadyGCPercent)
		}
		busy.Unlock()
	}
	debug.FreeOSMemory()
}

// TrimEvery is how often a backend returns its heap's free pages to the
// kernel (Trim). The runtime collects at least every two minutes (its
// forced collection) but keeps the pages a collection freed: its
// scavenger returns free pages only above a goal scaled from the heap
// goal, and with the heap goal far above the live heap (the 1 MB minimum
// at GOGC 25 against ~0.5 MB live) that goal is not reached, so what a
// backend allocated between collections (log records, D-Bus calls and
// signals) stayed resident as free heap (docs/bench/memory.md, "after
// two minutes"). Trim's collection takes the forced one's place: an idle
// process collects no more often than before.
const TrimEvery = 2 * time.Minute

// Trim collects and returns the heap's free pages to the kernel (as
// Settle does) every interval until ctx ends.
func Trim(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	trim(ctx, t.C, nil)
}

// trim is Trim on the ticks of tick; trimmed, if set, is called after
// each.
func trim(ctx context.Context, tick <-chan time.Time, trimmed func()) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			debug.FreeOSMemory()
			if trimmed != nil {
				trimmed()
			}
		}
	}
}

// busyGCPercent is GOGC while the process is busy (Busy): Go's default.
const busyGCPercent = 100

// busy counts the holders of Busy; prev is the setting the first found.
var busy struct {
	sync.Mutex
	n    int
	prev int
}

// Busy runs the garbage collector at Go's default GOGC until the returned
// release is called, for a burst of work on someone's critical path: the
// daemon's part of a session start (the session manager's, from NewTunnel
// until the session is connected or waits for the user). With the steady
// setting its heap goal (live+25%, about 1 MB) made it collect once or
// twice per session start, 3-4 ms of CPU and ~1 ms of stopped world on a
// 2-core machine whose CPUs the handshake needs; at 100 the goal is 4 MB
// and one collection per several starts. Overlapping holders share it;
// the last release restores the setting the first found (or the one
// Settle chose meanwhile), and the heap
// shrinks back with the next collections. An administrator's GOGC in the
// environment wins. release may be called more than once.
func Busy() (release func()) {
	if os.Getenv("GOGC") != "" {
		return func() {}
	}
	busy.Lock()
	if busy.n == 0 {
		busy.prev = debug.SetGCPercent(busyGCPercent)
	}
	busy.n++
	busy.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			busy.Lock()
			busy.n--
			if busy.n == 0 {
				debug.SetGCPercent(busy.prev)
			}
			busy.Unlock()
		})
	}
}

// memStats are the runtime's memory classes --runtime-stats logs: where a
// process's resident anonymous memory goes, as the Go runtime sees it
// (the classes of runtime/metrics' /memory/classes/..., read from
// runtime.MemStats: importing runtime/metrics would leave its 15 KB
// description table on every process's heap from package initialisation
// on).
var memStats = []struct {
	key string
	get func(*runtime.MemStats) uint64
}{
	{"heap_objects", func(m *runtime.MemStats) uint64 { return m.HeapAlloc }},
	{"heap_unused", func(m *runtime.MemStats) uint64 { return m.HeapInuse - m.HeapAlloc }},
	{"heap_free", func(m *runtime.MemStats) uint64 { return m.HeapIdle - m.HeapReleased }},
	{"heap_released", func(m *runtime.MemStats) uint64 { return m.HeapReleased }},
	{"stacks", func(m *runtime.MemStats) uint64 { return m.StackInuse }},
	{"mspan", func(m *runtime.MemStats) uint64 { return m.MSpanInuse }},
	{"mcache", func(m *runtime.MemStats) uint64 { return m.MCacheInuse }},
	// The collector's metadata: mark bits, the central span lists'
	// blocks, work buffers.
	{"gc_meta", func(m *runtime.MemStats) uint64 { return m.GCSys }},
	{"runtime_other", func(m *runtime.MemStats) uint64 { return m.OtherSys }},
	{"total", func(m *runtime.MemStats) uint64 { return m.Sys }},
	{"gc_goal", func(m *runtime.MemStats) uint64 { return m.NextGC }},
	{"gc_cycles", func(m *runtime.MemStats) uint64 { return uint64(m.NumGC) }},
}

// readMemStats returns memStats' values of m as slog attributes (key,
// value pairs).
func readMemStats(m *runtime.MemStats) []any {
	attrs := make([]any, 0, 2*len(memStats))
	for _, s := range memStats {
		attrs = append(attrs, s.key, s.get(m))
	}
	return attrs
}
