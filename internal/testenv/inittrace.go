package testenv

import (
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// initTraceChild marks the run of a test binary CheckInitAllocations
// starts to read its package initialisation.
const initTraceChild = "OVPN3GO_INITTRACE_CHILD"

// CheckInitAllocations is a whole test: what package initialisation of the
// test binary allocates (it links the packages of the program under test)
// stays on the heap of that program while it runs, so it fails when the
// total exceeds budget bytes or when a package linked only for a table its
// init builds is back (runtime/metrics: a 15 KB description table;
// encoding/xml: an 18 KB entity map). It runs the test binary again with
// GODEBUG=inittrace=1, which prints each package's init allocations.
func CheckInitAllocations(t *testing.T, budget int) {
	if os.Getenv(initTraceChild) != "" {
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$")
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1", initTraceChild+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
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
