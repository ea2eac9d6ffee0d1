package engine

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/datachan"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/transport"
)

// The data-plane benchmark drives the client's real per-packet code — the
// TUN reader's sendFramed (frame, seal, UDP write) and the attempt's
// socketReader (UDP read, open, TUN write) — over a real loopback UDP
// socket against an in-process peer holding the server's half of the
// keys. The TUN device is in memory (genTun), so the figures are the
// engine's and the kernel's UDP path, not a TUN driver's. The peer batches
// with recvmmsg/sendmmsg and does only the cheap half of the work (count
// on the way up, seal on the way down), so it is not the bottleneck.

// genTun is an in-memory TUN device: Read hands out copies of one packet
// until left runs out, Write counts what the data plane delivers.
type genTun struct {
	pkt     []byte
	left    atomic.Int64
	drained chan struct{} // closed when Read is called with nothing left
	closed  chan struct{}
	once    sync.Once
	dOnce   sync.Once

	wrote, wroteBytes atomic.Int64
	progress          chan struct{} // a token every 16 writes, for the peer's pacing
	lastWrite         atomic.Int64  // unix nanos
	check             []byte        // when set, every written packet must equal it
	bad               atomic.Int64
}

func newGenTun(pkt []byte, n int64) *genTun {
	g := &genTun{pkt: pkt, drained: make(chan struct{}), closed: make(chan struct{}), progress: make(chan struct{}, 1)}
	g.left.Store(n)
	return g
}

func (g *genTun) Read(p []byte) (int, error) {
	if g.left.Add(-1) < 0 {
		g.dOnce.Do(func() { close(g.drained) })
		<-g.closed
		return 0, os.ErrClosed
	}
	return copy(p, g.pkt), nil
}

func (g *genTun) Write(p []byte) (int, error) {
	if g.check != nil && !bytes.Equal(p, g.check) {
		g.bad.Add(1)
	}
	n := g.wrote.Add(1)
	g.wroteBytes.Add(int64(len(p)))
	g.lastWrite.Store(time.Now().UnixNano())
	if n%16 == 0 {
		select {
		case g.progress <- struct{}{}:
		default:
		}
	}
	return len(p), nil
}

func (g *genTun) Close() error { g.once.Do(func() { close(g.closed) }); return nil }
func (g *genTun) Name() string { return "gen0" }

// testPeer is the server end: a UDP socket with the server's keys.
type testPeer struct {
	c    *net.UDPConn
	pc   *ipv4.PacketConn
	key  *datachan.Key // server side: seals what the client opens and vice versa
	got  atomic.Int64
	last atomic.Int64 // unix nanos of the last datagram received
	// open: decrypt every received packet and compare it with want.
	open      bool
	want      []byte
	bad       atomic.Int64
	done      chan struct{}
	readerEnd sync.WaitGroup
}

// dataPlaneKeys returns a client key and the matching server key: the
// server's block has the two directions' halves swapped.
func dataPlaneKeys(tb testing.TB, peerID int) (client, server *datachan.Key) {
	tb.Helper()
	block := make([]byte, datachan.KeyBlockLen)
	for i := range block {
		block[i] = byte(i * 7)
	}
	swapped := append(append([]byte(nil), block[128:]...), block[:128]...)
	client, err := datachan.NewKey("AES-256-GCM", 0, block, peerID)
	if err != nil {
		tb.Fatal(err)
	}
	if server, err = datachan.NewKey("AES-256-GCM", 0, swapped, peerID); err != nil {
		tb.Fatal(err)
	}
	return client, server
}

func newTestPeer(tb testing.TB, key *datachan.Key) *testPeer {
	tb.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	setBigBuffers(c)
	return &testPeer{c: c, pc: ipv4.NewPacketConn(c), key: key, done: make(chan struct{})}
}

// setBigBuffers gives the peer's socket room for bursts (forced past
// rmem_max when the test runs as root), so its drops are not the limit.
func setBigBuffers(c *net.UDPConn) {
	_ = c.SetReadBuffer(8 << 20)
	_ = c.SetWriteBuffer(8 << 20)
	if raw, err := c.SyscallConn(); err == nil {
		_ = raw.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, 8<<20)
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUFFORCE, 8<<20)
		})
	}
}

// receive counts (and with open, checks) datagrams in batches until the
// socket is closed.
func (p *testPeer) receive() {
	p.readerEnd.Add(1)
	go func() {
		defer p.readerEnd.Done()
		r, err := transport.NewMmsgReader(p.c, 64)
		if err != nil {
			panic(err)
		}
		bufs, sizes := make([][]byte, 64), make([]int, 64)
		for i := range bufs {
			bufs[i] = make([]byte, 2048)
		}
		plain := make([]byte, 0, 2048)
		for {
			n, err := r.Read(bufs, sizes)
			if err != nil {
				return
			}
			for i := range n {
				if p.open {
					pt, err := p.key.Open(plain[:0], bufs[i][:sizes[i]])
					if err != nil || !bytes.Equal(pt, p.want) {
						p.bad.Add(1)
					}
				}
			}
			p.got.Add(int64(n))
			p.last.Store(time.Now().UnixNano())
		}
	}()
}

// sendSealed seals payload n times with the server key and sends the
// packets to addr in sendmmsg batches of 64, keeping at most window
// packets ahead of what reached the TUN device (so the client's socket
// does not overflow: a sender that floods only measures the drops).
// In a benchmark (mayLose) a stall of 5 ms counts as loss and widens the
// window; otherwise nothing may be lost and the peer just waits.
func (p *testPeer) sendSealed(tb testing.TB, addr net.Addr, payload []byte, n int, tun *genTun, window int64, mayLose bool) {
	msgs := make([]ipv4.Message, 64)
	bufs := make([][]byte, 64)
	for i := range bufs {
		bufs[i] = make([]byte, 0, p.key.SealBufferLen(len(payload)))
		msgs[i].Addr = addr
		msgs[i].Buffers = [][]byte{nil}
	}
	lost := time.NewTimer(time.Hour)
	defer lost.Stop()
	for sent := 0; sent < n; {
		for int64(sent)-tun.wrote.Load() > window {
			lost.Reset(5 * time.Millisecond)
			select {
			case <-tun.progress:
			case <-lost.C: // lost packets never arrive
				if mayLose {
					window += 64
				}
			}
		}
		k := min(64, n-sent, int(window))
		for i := range k {
			pkt, err := p.key.Seal(bufs[i][:0], payload)
			if err != nil {
				tb.Fatal(err)
			}
			msgs[i].Buffers[0] = pkt
		}
		for off := 0; off < k; {
			w, err := p.pc.WriteBatch(msgs[off:k], 0)
			if err != nil {
				tb.Fatalf("peer send: %v", err)
			}
			off += w
		}
		sent += k
	}
}

func (p *testPeer) close() { p.c.Close(); p.readerEnd.Wait() }

// ipPacket is an IPv4/UDP-looking packet of n bytes.
func ipPacket(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)
	}
	b[0] = 0x45
	return b
}

func benchClient() *Client {
	return &Client{clock: systemClock{}, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		cfg: Config{Profile: &profile.Profile{}}}
}

// dialBenchTransport opens the client's UDP transport to the peer as a
// connection attempt does (dialTransport: socket options included).
func dialBenchTransport(tb testing.TB, peer *testPeer) (*transport.UDP, *net.UDPConn) {
	tb.Helper()
	tr, err := dialTransport(context.Background(), nil, endpoint{network: "udp4", addr: peer.c.LocalAddr().String()})
	if err != nil {
		tb.Fatal(err)
	}
	u := tr.(*transport.UDP)
	return u, u.NetConn().(*net.UDPConn)
}

// upResult is what one TUN→UDP run delivered to the peer.
type upResult struct {
	sent, received int64
	elapsed        time.Duration
}

// runUp sends n packets of pkt from the TUN device through the client's
// send path to the peer and waits until the peer has seen them all or
// went quiet (loopback drops what overflows the peer's socket).
func runUp(tb testing.TB, pkt []byte, n int, verify bool) upResult {
	return runUpWith(tb, pkt, n, verify, func(g *genTun) TunDevice { return g })
}

// runUpWith is runUp reading the TUN device that dev makes of the
// generator.
func runUpWith(tb testing.TB, pkt []byte, n int, verify bool, dev func(*genTun) TunDevice) upResult {
	ckey, skey := dataPlaneKeys(tb, 3)
	peer := newTestPeer(tb, skey)
	peer.open, peer.want = verify, pkt
	peer.receive()
	defer peer.close()
	tr, _ := dialBenchTransport(tb, peer)
	defer tr.Close()
	c := benchClient()
	dp := &dataPlane{c: c}
	dp.tx.Store(newTxPath(tr, ckey, framingNone))
	tun := newGenTun(pkt, int64(n))
	start := time.Now()
	dp.startTun(dev(tun), dp.tunCfg)
	<-tun.drained
	wait(tb, verify, func() int64 { return peer.got.Load() }, int64(n), "peer (up)")
	dp.closeTun()
	if verify && peer.bad.Load() != 0 {
		tb.Fatalf("peer could not open %d of %d packets", peer.bad.Load(), peer.got.Load())
	}
	return upResult{sent: c.ctr.pktsOut.Load(), received: peer.got.Load(),
		elapsed: time.Duration(peer.last.Load() - start.UnixNano())}
}

// runDown has the peer send n sealed packets of pkt to the client's
// socket; the client's socketReader opens them and writes them to the
// TUN device.
func runDown(tb testing.TB, pkt []byte, n int, verify bool) upResult {
	ckey, skey := dataPlaneKeys(tb, 3)
	peer := newTestPeer(tb, skey)
	defer peer.close()
	tr, conn := dialBenchTransport(tb, peer)
	c := benchClient()
	dp := &dataPlane{c: c}
	tun := newGenTun(pkt, 0)
	if verify {
		tun.check = pkt
	}
	dp.tunW.Store(&tunWriter{tun})
	a := &attempt{c: c, dp: dp, tr: tr, log: c.log, ctlIn: make(chan []byte, 1), readErr: make(chan error, 1), done: make(chan struct{})}
	a.rx.Store(&rxKeys{0: ckey})
	a.wg.Add(1)
	go a.socketReader()
	defer func() { tr.Close(); close(a.done); a.wg.Wait() }()
	start := time.Now()
	window := int64(96)
	if verify {
		window = 32 // well inside the default socket buffer: nothing may be lost
	}
	peer.sendSealed(tb, conn.LocalAddr(), pkt, n, tun, window, !verify)
	wait(tb, verify, func() int64 { return tun.wrote.Load() }, int64(n), fmt.Sprintf("TUN (down, %d dropped as undecryptable)", a.dropped.Load()))
	if verify && (tun.bad.Load() != 0 || a.dropped.Load() != 0) {
		tb.Fatalf("TUN got %d wrong packets, %d dropped as undecryptable", tun.bad.Load(), a.dropped.Load())
	}
	return upResult{sent: int64(n), received: tun.wrote.Load(),
		elapsed: time.Duration(tun.lastWrite.Load() - start.UnixNano())}
}

// wait waits for want packets: in a correctness run (verify) every one
// must arrive; in a benchmark, loopback may drop what overflows a socket,
// so it also returns once the count stops growing.
func wait(tb testing.TB, verify bool, count func() int64, want int64, what string) {
	if !verify {
		waitQuiet(count, want)
		return
	}
	deadline := time.After(30 * time.Second)
	for count() < want {
		select {
		case <-deadline:
			tb.Fatalf("%s: %d of %d packets arrived (verify run)", what, count(), want)
		case <-time.After(time.Millisecond):
		}
	}
}

// waitQuiet returns once count reaches want or stops growing for 50 ms.
func waitQuiet(count func() int64, want int64) {
	last, since := int64(-1), time.Now()
	for {
		n := count()
		if n >= want {
			return
		}
		if n != last {
			last, since = n, time.Now()
		} else if time.Since(since) > 50*time.Millisecond {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// TestDataPlaneBenchPath checks what BenchmarkDataPlane measures: packets
// from the TUN device reach the peer sealed so that the server key opens
// them to the same bytes, and packets the peer seals reach the TUN device
// intact, in both sizes.
func TestDataPlaneBenchPath(t *testing.T) {
	for _, size := range []int{1400, 64} {
		// runUp and runDown fail unless all 200 arrive intact.
		if up := runUp(t, ipPacket(size), 200, true); up.sent != 200 || up.received != 200 {
			t.Errorf("%d bytes up: sent %d, peer got %d", size, up.sent, up.received)
		}
		if down := runDown(t, ipPacket(size), 200, true); down.received != 200 {
			t.Errorf("%d bytes down: TUN got %d of 200", size, down.received)
		}
	}
}

// TestDataPlaneNoAllocPerPacket: the steady-state send (TUN read, seal,
// UDP write) and receive (UDP read, open, TUN write) paths do not allocate
// per packet: 20000 packets cost no more allocations than the fixed set-up
// (keys, sockets, goroutines, buffers).
func TestDataPlaneNoAllocPerPacket(t *testing.T) {
	const n = 20000
	for _, run := range []struct {
		name string
		f    func(testing.TB, []byte, int, bool) upResult
	}{{"send", runUp}, {"receive", runDown}} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		r := run.f(t, ipPacket(1400), n, false)
		runtime.ReadMemStats(&after)
		if allocs := after.Mallocs - before.Mallocs; allocs > 2000 {
			t.Errorf("%s: %d allocations for %d packets (%d arrived): the path allocates per packet", run.name, allocs, n, r.received)
		}
	}
}

// BenchmarkDataPlane reports what the client's data path moves per
// direction for 1400- and 64-byte packets: Gbit/s of TUN payload and
// packets/s that arrived (UDP over loopback drops what overflows a socket,
// so "delivered%" says how much of what was offered arrived).
//
//	go test -run '^$' -bench DataPlane -benchmem -cpu 1,2 ./helper/openvpn/engine/
func BenchmarkDataPlane(b *testing.B) {
	for _, dir := range []string{"up", "down"} {
		for _, size := range []int{1400, 64} {
			b.Run(fmt.Sprintf("%s/%dB", dir, size), func(b *testing.B) {
				pkt := ipPacket(size)
				b.ReportAllocs()
				b.ResetTimer()
				var r upResult
				if dir == "up" {
					r = runUp(b, pkt, b.N, false)
				} else {
					r = runDown(b, pkt, b.N, false)
				}
				b.StopTimer()
				if r.received == 0 || r.elapsed <= 0 {
					b.Fatalf("nothing arrived (%d of %d)", r.received, b.N)
				}
				secs := r.elapsed.Seconds()
				b.ReportMetric(float64(r.received)*float64(size)*8/secs/1e9, "Gbit/s")
				b.ReportMetric(float64(r.received)/secs, "pkts/s")
				b.ReportMetric(100*float64(r.received)/float64(b.N), "delivered%")
			})
		}
	}
}
