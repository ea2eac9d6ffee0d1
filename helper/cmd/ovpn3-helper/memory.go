package main

import (
	"os"
	"runtime/debug"
	"runtime/metrics"
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

// settleMemory switches this process to its steady-state garbage
// collector setting and returns what start-up or the handshake left
// behind (parsed profiles, certificates, TLS state, D-Bus introspection)
// to the kernel: a full collection, a few milliseconds, once per
// connection.
func settleMemory() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(steadyGCPercent)
	}
	debug.FreeOSMemory()
}

// memStats are the runtime's memory classes --runtime-stats logs: where a
// process's resident anonymous memory goes, as the Go runtime sees it.
var memStats = []struct{ key, metric string }{
	{"heap_objects", "/memory/classes/heap/objects:bytes"},
	{"heap_unused", "/memory/classes/heap/unused:bytes"},
	{"heap_free", "/memory/classes/heap/free:bytes"},
	{"heap_released", "/memory/classes/heap/released:bytes"},
	{"stacks", "/memory/classes/heap/stacks:bytes"},
	{"runtime_other", "/memory/classes/metadata/other:bytes"},
	{"gc_goal", "/gc/heap/goal:bytes"},
}

// readMemStats returns memStats' values as slog attributes (key, value
// pairs).
func readMemStats() []any {
	samples := make([]metrics.Sample, len(memStats))
	for i, m := range memStats {
		samples[i].Name = m.metric
	}
	metrics.Read(samples)
	attrs := make([]any, 0, 2*len(samples))
	for i, s := range samples {
		var v uint64
		if s.Value.Kind() == metrics.KindUint64 {
			v = s.Value.Uint64()
		}
		attrs = append(attrs, memStats[i].key, v)
	}
	return attrs
}
