package dataplane

import "sync/atomic"

// cacheLinePad keeps what follows off the cache lines of what precedes:
// 128 bytes, because x86 prefetches cache lines in pairs (the adjacent-line
// prefetcher) and arm64's lines are up to 128 bytes.
type cacheLinePad [128]byte

// Counters are a session's traffic counters, grouped by the goroutine
// that writes them per packet, each group on cache lines of its own: the
// TUN reader (send direction) and the socket reader (receive direction)
// run on different cores and would otherwise invalidate each other's line
// on every packet. Fields are promoted, so code says ctr.BytesOut.
type Counters struct {
	_ cacheLinePad
	txCounters
	_ cacheLinePad
	rxCounters
	_ cacheLinePad
	// KeyRotations is written by the control session, rarely.
	KeyRotations atomic.Int64
	_            cacheLinePad
}

// txCounters: the send direction, written by the TUN reader (and by the
// control session for control packets it sends).
type txCounters struct {
	TunBytesIn, TunPktsIn atomic.Int64 // read from the TUN device
	TunReads              atomic.Int64 // device reads (fewer than packets with TSO)
	TunRingReads          atomic.Int64 // of them, read through io_uring
	BytesOut, PktsOut     atomic.Int64 // written to the transport
}

// rxCounters: the receive direction, written by the socket reader.
type rxCounters struct {
	BytesIn, PktsIn         atomic.Int64 // read from the transport
	TunBytesOut, TunPktsOut atomic.Int64 // written to the TUN device
	TunWrites               atomic.Int64 // device writes (fewer than packets when coalesced)
	TunRingWrites           atomic.Int64 // of them, written through io_uring
	Decompressed            atomic.Int64
}
