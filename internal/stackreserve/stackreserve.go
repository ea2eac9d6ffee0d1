// Package stackreserve grows a new goroutine's stack in one step, before
// its deep calls, for goroutines known to run deep: a goroutine starts
// with a 2 KiB stack and doubles it whenever a call does not fit, and
// each doubling copies the stack and walks every frame on it, reading
// each function's stack maps and frame sizes from the program's
// .gopclntab. On the connect path (the TLS handshake, D-Bus calls and
// signals, the profile's compilation) those walks were most of the
// program-file pages a backend maps on connecting: with the kernel's
// 64 KB fault-around each first touch maps 16 pages of metadata the
// process never needs again (docs/bench/memory.md, "stack growth").
// Growing once, while the stack holds only the caller's frame, reads the
// metadata of two functions instead of thirty, and copies nothing.
package stackreserve

// Reserve16K gives the calling goroutine a stack of at least 16 KiB (a
// frame of 12 KiB does not fit into less). Call it first thing in the
// goroutine's function; the stack stays until the collector shrinks a
// stack that uses a quarter of it or less.
func Reserve16K() { reserve16K(0) }

// Reserve32K is Reserve16K for 32 KiB (a frame of 28 KiB).
func Reserve32K() { reserve32K(0) }

// The frames are zeroed (the index is unknown to the compiler), which
// touches the pages a deep call would touch anyway.
//
//go:noinline
func reserve16K(i int) byte {
	var frame [12 << 10]byte
	return frame[i&(len(frame)-1)]
}

//go:noinline
func reserve32K(i int) byte {
	var frame [28 << 10]byte
	return frame[i&(len(frame)-1)]
}
