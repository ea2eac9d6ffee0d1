package engine

import "sync/atomic"

// cacheLinePad keeps what follows off the cache lines of what precedes:
// 128 bytes, because x86 prefetches cache lines in pairs (the adjacent-line
// prefetcher) and arm64's lines are up to 128 bytes.
type cacheLinePad [128]byte

// counters are the client's traffic counters, grouped by the goroutine
// that writes them per packet, each group on cache lines of its own: the
// TUN reader (send direction) and the socket reader (receive direction)
// run on different cores and would otherwise invalidate each other's line
// on every packet. Fields are promoted, so code says c.ctr.bytesOut.
type counters struct {
	_ cacheLinePad
	txCounters
	_ cacheLinePad
	rxCounters
	_ cacheLinePad
	// keyRotations is written by the control loop, rarely.
	keyRotations atomic.Int64
	_            cacheLinePad
}

// txCounters: the send direction, written by the TUN reader (and by the
// control loop for control packets it sends).
type txCounters struct {
	tunBytesIn, tunPktsIn atomic.Int64 // read from the TUN device
	tunReads              atomic.Int64 // device reads (fewer than packets with TSO)
	bytesOut, pktsOut     atomic.Int64 // written to the transport
}

// rxCounters: the receive direction, written by the socket reader.
type rxCounters struct {
	bytesIn, pktsIn         atomic.Int64 // read from the transport
	tunBytesOut, tunPktsOut atomic.Int64 // written to the TUN device
	tunWrites               atomic.Int64 // device writes (fewer than packets when coalesced)
	decompressed            atomic.Int64
}
