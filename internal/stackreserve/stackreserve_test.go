package stackreserve

import (
	"runtime/debug"
	"testing"
	"unsafe"
)

// deep recurses n times, each frame about 300 bytes.
//
//go:noinline
func deep(n int) byte {
	var b [256]byte
	b[n%len(b)] = byte(n)
	if n == 0 {
		return b[0]
	}
	return deep(n-1) + b[n%len(b)]
}

// stackGrows runs reserve (if any) on a new goroutine and then a call of
// about need bytes of stack, and tells whether that call grew (copied)
// the goroutine's stack: a local's address changes when it does.
func stackGrows(reserve func(), need int) bool {
	grew := make(chan bool)
	go func() {
		if reserve != nil {
			reserve()
		}
		var local byte
		before := uintptr(unsafe.Pointer(&local))
		deep(need / 300)
		grew <- uintptr(unsafe.Pointer(&local)) != before
	}()
	return <-grew
}

// A reserved goroutine runs calls that fit into the reserved size without
// its stack being grown; one that did not reserve is grown.
func TestReserveAvoidsGrowth(t *testing.T) {
	// A collection shrinks stacks that use little of theirs, which moves
	// them too.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	for _, c := range []struct {
		name    string
		reserve func()
		need    int
	}{{"16K", Reserve16K, 8 << 10}, {"32K", Reserve32K, 20 << 10}} {
		if !stackGrows(nil, c.need) {
			t.Errorf("%s: a goroutine's stack did not grow for a %d-byte call: the test no longer sees growth", c.name, c.need)
		}
		if stackGrows(c.reserve, c.need) {
			t.Errorf("%s: the stack grew during a %d-byte call after Reserve%s", c.name, c.need, c.name)
		}
	}
}
