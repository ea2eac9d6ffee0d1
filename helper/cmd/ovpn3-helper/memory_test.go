package main

import (
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// settleMemory leaves the process with the steady-state GOGC (unless the
// environment sets one) and what the handshake dropped collected and
// returned to the kernel at once.
func TestSettleMemory(t *testing.T) {
	orig := debug.SetGCPercent(100)
	debug.SetGCPercent(orig)
	defer debug.SetGCPercent(orig)
	garbage := make([][]byte, 0, 64)
	for range 64 {
		b := make([]byte, 128<<10)
		for i := range b {
			b[i] = 1 // resident
		}
		garbage = append(garbage, b)
	}
	runtime.KeepAlive(garbage) // dead from here on, not yet collected
	before := residentHeap()
	settleMemory()
	after := residentHeap()
	old := debug.SetGCPercent(orig)
	if os.Getenv("GOGC") == "" && old != steadyGCPercent {
		t.Errorf("GOGC after settleMemory = %d, want %d", old, steadyGCPercent)
	}
	// The 8 MiB of garbage were collected and their pages returned.
	if after+6<<20 > before {
		t.Errorf("heap resident: %d KiB before settleMemory, %d KiB after; want 8 MiB of garbage gone", before>>10, after>>10)
	}
}

// residentHeap is the heap memory the process holds from the kernel:
// objects (live or not yet collected), free and unused heap not released.
func residentHeap() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.HeapIdle - m.HeapReleased
}

// What package initialisation allocates stays on the heap of the daemon
// and of every backend while it is live: the helper links no package
// only for a table its init builds (runtime/metrics: a 15 KB description
// table; encoding/xml: an 18 KB entity map), and the total stays within
// a budget (about 160 KiB today, half of it the profile option table).
// GODEBUG=inittrace=1 makes a Go program print each package's init
// allocations; this test binary links the helper's packages.
func TestInitAllocations(t *testing.T) {
	if os.Getenv("OVPN3_INITTRACE_CHILD") != "" {
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestInitAllocations$")
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1", "OVPN3_INITTRACE_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	const budget = 256 << 10
	type pkgInit struct {
		pkg   string
		bytes int
	}
	var inits []pkgInit
	total := 0
	for _, l := range strings.Split(string(out), "\n") {
		// init PKG @T ms, C ms clock, N bytes, M allocs
		f := strings.Fields(l)
		if len(f) < 10 || f[0] != "init" || f[len(f)-3] != "bytes," {
			continue
		}
		n, err := strconv.Atoi(f[len(f)-4])
		if err != nil {
			t.Fatalf("inittrace line %q: %v", l, err)
		}
		inits = append(inits, pkgInit{f[1], n})
		total += n
		if f[1] == "runtime/metrics" || f[1] == "encoding/xml" {
			t.Errorf("%s is linked again: its init allocates %d bytes in every process", f[1], n)
		}
	}
	if len(inits) == 0 {
		t.Fatalf("no inittrace lines in\n%s", out)
	}
	slices.SortFunc(inits, func(a, b pkgInit) int { return b.bytes - a.bytes })
	t.Logf("package initialisation allocates %d KiB; most: %v", total>>10, inits[:min(5, len(inits))])
	if total > budget {
		t.Errorf("package initialisation allocates %d KiB, more than the budget of %d KiB; most: %v", total>>10, budget>>10, inits[:min(5, len(inits))])
	}
}
