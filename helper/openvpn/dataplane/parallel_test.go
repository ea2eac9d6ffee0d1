package dataplane

import (
	"runtime"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/tunio"
)

// parallelModes are modeNone and modeAll with sealing and opening on
// four workers whatever GOMAXPROCS is.
var parallelModes = []benchMode{
	{name: "none/parallel", parallel: true, workers: 4},
	{name: "all/parallel", tun: true, gso: true, mmsg: true, rxmod: true, parallel: true, workers: 4},
}

// TestParallelKeepsOrder: with sealing and opening spread over four
// workers, every packet still arrives intact and in the order it was
// read. Up, the peer checks that packet ids ascend on the wire and that
// the stamped packets come in the order the TUN device handed them out,
// with keepalive pings sent from another goroutine in between (a ping
// must not overtake packets whose ids were taken before it). Down, the
// TUN device checks the peer's numbering, or with the TUN offload the TCP
// sequence, in every write. Batches must actually have gone through the
// workers.
func TestParallelKeepsOrder(t *testing.T) {
	const n = 3000
	for _, mode := range parallelModes {
		up := mode
		up.pings = true
		// A batching device (16 per read) without the TUN offload: the
		// plain path batches only what one read returns.
		r := runUpWith(t, 1400, up, n, true, func(g *genTun) tunio.PacketDevice { return &batchTun{genTun: g, size: 16} })
		if r.sent != n || r.received != n {
			t.Errorf("up, %s: sent %d, peer got %d of %d", mode.name, r.sent, r.received, n)
		}
		if r.batches == 0 {
			t.Errorf("up, %s: no batch went through the workers", mode.name)
		}
		d := runDown(t, 1400, mode, n, true)
		if d.received != n {
			t.Errorf("down, %s: TUN got %d of %d", mode.name, d.received, n)
		}
		if d.batches == 0 {
			t.Errorf("down, %s: no batch went through the workers", mode.name)
		}
	}
}

// TestParallelSmallPackets: 64-byte packets, one per read with the TUN
// offload and 16 per read without, stay inline (too few bytes to be worth
// the workers) in a plane that has workers, without losing or reordering
// a packet.
func TestParallelSmallPackets(t *testing.T) {
	for _, mode := range parallelModes {
		r := runUpWith(t, 64, mode, 1000, true, func(g *genTun) tunio.PacketDevice {
			if mode.tun {
				return g
			}
			return &batchTun{genTun: g, size: 16}
		})
		if r.sent != 1000 || r.received != 1000 || r.batches != 0 {
			t.Errorf("up, %s: sent %d, peer got %d of 1000, %d batches to the workers (want none)", mode.name, r.sent, r.received, r.batches)
		}
		if d := runDown(t, 64, mode, 1000, true); d.received != 1000 || d.batches != 0 {
			t.Errorf("down, %s: TUN got %d of 1000, %d batches to the workers (want none)", mode.name, d.received, d.batches)
		}
	}
}

// TestParallelGoroutinesStop: the pipelines' goroutines (workers and
// finisher, per direction) end with CloseTun and with ReadLoop, after the
// batches in flight were written: none is left behind.
func TestParallelGoroutinesStop(t *testing.T) {
	before := runtime.NumGoroutine()
	for _, mode := range parallelModes {
		if r := runUpWith(t, 1400, mode, 500, true, func(g *genTun) tunio.PacketDevice { return &batchTun{genTun: g, size: 16} }); r.received != 500 {
			t.Fatalf("up, %s: peer got %d of 500", mode.name, r.received)
		}
		if d := runDown(t, 1400, mode, 500, true); d.received != 500 {
			t.Fatalf("down, %s: TUN got %d of 500", mode.name, d.received)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond) // exiting goroutines may still be counted
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines before, %d after:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}
