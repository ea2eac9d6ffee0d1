package dataplane

import (
	"fmt"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/datachan"
)

// sessionBudget is the most heap one session's data plane may keep while
// the tunnel is up: every backend holds it resident (buffers are zeroed
// when allocated, so they are resident whether packets filled them or
// not). With a 64 KiB buffer per batch slot (32 receive buffers), a 512
// KiB send arena and 64 KiB send buffers it was 2.8 MB.
const sessionBudget = 512 << 10

// liveHeap is the heap held by reachable objects after a collection.
func liveHeap() uint64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestSessionBuffersAtRest: the heap a session's data plane keeps once
// packets went both ways (TSO super-packets up and MTU-sized packets
// down with the TUN offload; plain packets without) and the tunnel is at
// rest, with the offloads on and off, stays within sessionBudget. It is
// deterministic: the buffers' sizes, not a process's RSS.
func TestSessionBuffersAtRest(t *testing.T) {
	for _, mode := range []benchMode{modeNone, modeAll} {
		t.Run("offload="+mode.name, func(t *testing.T) {
			held := sessionHeap(t, mode)
			t.Logf("one session's data plane at rest holds %d KiB", held>>10)
			if held > sessionBudget {
				t.Errorf("one session's data plane holds %d KiB at rest, more than %d KiB: are buffers sized for the largest packet times the batch?", held>>10, sessionBudget>>10)
			}
		})
	}
}

// sessionHeap runs 100 packets each way through a new plane and returns
// the live heap it added, measured while it is still up.
func sessionHeap(t *testing.T, mode benchMode) uint64 {
	const n = 100
	ckey, skey := dataPlaneKeys(t, 3)
	peer := newTestPeer(t, skey) // nobody reads: what arrives stays queued
	defer peer.c.Close()
	tr, conn := dialBenchTransport(t, peer)
	up, _ := upTun(1400, mode, n)
	down := sealDown(t, skey, mode, n)
	liveHeap() // settles what the set-up left (finalizers, lazily made runtime state)
	before := liveHeap()

	p := New(Config{Offloads: mode.offloads()})
	c := p.NewConn(ConnConfig{Transport: tr})
	if err := c.InstallKey(Primary, ckey); err != nil {
		t.Fatal(err)
	}
	readEnd := make(chan error, 1)
	go func() { readEnd <- c.ReadLoop() }()
	defer func() { tr.Close(); <-readEnd }()
	p.StartTun(up)
	defer p.CloseTun()
	<-up.drained
	for _, pkt := range down {
		if _, err := peer.c.WriteTo(pkt, conn.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for up.wrote.Load() < n && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := up.wrote.Load(); got < n {
		t.Fatalf("%d of %d packets reached the TUN device (%d dropped)", got, n, c.Dropped())
	}
	after := liveHeap()
	// What was made before (keys, sockets, the packets to send) stays
	// live through the second reading, the plane through both.
	runtime.KeepAlive([]any{p, c, ckey, skey, peer, tr, up, down})
	if after < before {
		t.Fatalf("live heap shrank from %d to %d bytes: something made before the plane was freed", before, after)
	}
	return after - before
}

// sealDown returns n packets the server sends: TCP segments of one flow
// for a device with the TUN offload, plain packets without.
func sealDown(t *testing.T, skey *datachan.Key, mode benchMode, n int) [][]byte {
	pkts := make([][]byte, n)
	plain := ipPacket(1400)
	for i := range pkts {
		if mode.tun {
			plain = tcpSegment(make([]byte, 1400), 1400, uint32(i*1360))
		}
		pkt, err := skey.Seal(nil, plain)
		if err != nil {
			t.Fatal(err)
		}
		pkts[i] = pkt
	}
	return pkts
}

// A datagram longer than the receive buffer it lands in (a jumbo MTU
// behind a standard one) is dropped, once: the connection's buffers then
// hold any packet, and the next such datagram arrives intact; also
// when the plane opens in parallel.
func TestReadLoopGrowsForJumboDatagrams(t *testing.T) {
	for _, mode := range []benchMode{modeNone, parallelModes[0]} {
		t.Run(mode.name, func(t *testing.T) { testReadLoopGrows(t, mode) })
	}
}

func testReadLoopGrows(t *testing.T, mode benchMode) {
	ckey, skey := dataPlaneKeys(t, 3)
	peer := newTestPeer(t, skey)
	defer peer.c.Close()
	tr, conn := dialBenchTransport(t, peer)
	p := mode.plane()
	small, jumbo := ipPacket(1000), ipPacket(8000)
	tun := newGenTun(small, 0)
	p.tunW.Store(&tunWriter{w: tun})
	c := p.NewConn(ConnConfig{Transport: tr})
	if err := c.InstallKey(Primary, ckey); err != nil {
		t.Fatal(err)
	}
	send := func(plain []byte) {
		t.Helper()
		pkt, err := skey.Seal(nil, plain)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := peer.c.WriteTo(pkt, conn.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	// Queued before the loop reads: one recvmmsg takes both, the jumbo
	// one in the second (small) buffer.
	send(small)
	send(jumbo)
	readEnd := make(chan error, 1)
	go func() { readEnd <- c.ReadLoop() }()
	defer func() { tr.Close(); <-readEnd }()
	waitFor(t, func() bool { return tun.wrote.Load() == 1 && c.Dropped() == 1 }, func() string {
		return fmt.Sprintf("%d packets written, %d dropped; want the small one written and the cut one dropped", tun.wrote.Load(), c.Dropped())
	})
	send(small)
	send(jumbo)
	waitFor(t, func() bool { return tun.wrote.Load() == 3 }, func() string {
		return fmt.Sprintf("after the first cut datagram: %d packets written, %d dropped; want both new ones written", tun.wrote.Load()-1, c.Dropped()-1)
	})
	if c.Dropped() != 1 || tun.wroteBytes.Load() != int64(2*len(small)+len(jumbo)) {
		t.Errorf("%d dropped, %d bytes written; want 1 and %d", c.Dropped(), tun.wroteBytes.Load(), 2*len(small)+len(jumbo))
	}
}

func waitFor(t *testing.T, ok func() bool, what func() string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal(what())
		}
		time.Sleep(time.Millisecond)
	}
}

// A renegotiation's key swap reuses the connection's send buffers (batch
// writer, seal buffer): it allocated 580 KB each time when every key had
// its own.
func TestKeySwapReusesSendBuffers(t *testing.T) {
	ckey, skey := dataPlaneKeys(t, 3)
	peer := newTestPeer(t, skey)
	defer peer.c.Close()
	tr, _ := dialBenchTransport(t, peer)
	defer tr.Close()
	p := New(Config{Offloads: modeAll.offloads()})
	c := p.NewConn(ConnConfig{Transport: tr})
	if err := c.InstallKey(Primary, ckey); err != nil {
		t.Fatal(err)
	}
	block := make([]byte, datachan.KeyBlockLen)
	next, err := datachan.NewKey("AES-256-GCM", 1, block, 3)
	if err != nil {
		t.Fatal(err)
	}
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	before := s[0].Value.Uint64()
	if err := c.InstallKey(Secondary, next); err != nil {
		t.Fatal(err)
	}
	if err := c.SwapKeys(); err != nil {
		t.Fatal(err)
	}
	metrics.Read(s)
	if n := s[0].Value.Uint64() - before; n > 4<<10 {
		t.Errorf("a key swap allocated %d bytes: the send path's buffers were made again", n)
	}
	if p.SendKey() != next {
		t.Fatal("the swapped-in key does not send")
	}
}
