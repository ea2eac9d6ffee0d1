package dataplane

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
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
	"github.com/ovpn3go/ovpn3go/helper/openvpn/offload"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/transport"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/tunio"
)

// The data-plane benchmark drives the client's real per-packet code — the
// Plane's TUN reader (frame, seal, UDP write) and the Conn's ReadLoop
// (UDP read, open, TUN write) — over a real loopback UDP
// socket against an in-process peer holding the server's half of the
// keys. The TUN device is in memory (genTun), so the figures are the
// data plane's and the kernel's UDP path, not a TUN driver's. The peer batches
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
	check             []byte        // when set, every written packet must equal it but for its stamp
	bad               atomic.Int64
	// counted, when set, is the plane's TunPktsOut: a write it does not
	// yet count is early (a reader who saw the packet arrive must see it
	// counted).
	counted func() int64
	early   atomic.Int64

	// stamp: Read numbers the plain packets it hands out (seqAt); with
	// check, written packets must carry the numbers in order.
	stamp   bool
	readSeq uint32
	nextSeq uint32
	nextTCP uint32 // with checkSeg: the sequence number the next segment must have

	// With vnet, packets carry a virtio_net_hdr: pkt is a TSO
	// super-packet of perRead segments (or a plain packet, perRead 1),
	// and writes are checked segment by segment with checkSeg.
	vnet     bool
	perRead  int64
	checkSeg func([]byte) bool
	seg      offload.Segmenter
	segBuf   []byte
}

func newGenTun(pkt []byte, n int64) *genTun {
	g := &genTun{pkt: pkt, drained: make(chan struct{}), closed: make(chan struct{}), progress: make(chan struct{}, 1)}
	g.left.Store(n)
	return g
}

func (g *genTun) Read(p []byte) (int, error) {
	left := g.left.Load() // one reader: no race between Load and Store
	if left <= 0 {
		g.dOnce.Do(func() { close(g.drained) })
		<-g.closed
		return 0, os.ErrClosed
	}
	k := min(left, max(g.perRead, 1))
	g.left.Store(left - k)
	n := copy(p, g.pkt)
	if g.stamp {
		binary.BigEndian.PutUint32(p[seqAt:], g.readSeq)
		g.readSeq++
	}
	if g.perRead > 1 && k < g.perRead {
		// The last read: a super-packet of the k segments left.
		var h offload.Hdr
		_ = h.Decode(p)
		n = int(h.HdrLen) + offload.HdrLen + int(k)*int(h.GSOSize)
		binary.BigEndian.PutUint16(p[offload.HdrLen+2:], uint16(n-offload.HdrLen))
	}
	return n, nil
}

// VnetHdr says the packets carry a virtio_net_hdr (VnetDevice).
func (g *genTun) VnetHdr() bool { return g.vnet }

func (g *genTun) Write(p []byte) (int, error) {
	segs := int64(1)
	if g.vnet {
		segs = g.writeVnet(p)
	} else if g.check != nil {
		if !sameButStamp(p, g.check) || binary.BigEndian.Uint32(p[seqAt:]) != g.nextSeq {
			g.bad.Add(1)
		}
		g.nextSeq++
	}
	n := g.wrote.Add(segs)
	if g.counted != nil && g.counted() < n {
		g.early.Add(1)
	}
	g.wroteBytes.Add(int64(len(p)))
	g.lastWrite.Store(time.Now().UnixNano())
	if (n-segs)/16 != n/16 {
		select {
		case g.progress <- struct{}{}:
		default:
		}
	}
	return len(p), nil
}

// writeVnet counts (and with checkSeg checks) the IP packets of one
// write to a device with a virtio_net_hdr.
func (g *genTun) writeVnet(p []byte) int64 {
	if err := g.seg.Reset(p); err != nil {
		g.bad.Add(1)
		return 1
	}
	if g.checkSeg == nil {
		return int64(g.seg.Count())
	}
	if len(g.segBuf) < g.seg.MaxLen() {
		g.segBuf = make([]byte, 65535)
	}
	var segs int64
	for {
		n, ok := g.seg.Next(g.segBuf)
		if !ok {
			return segs
		}
		if !g.checkSeg(g.segBuf[:n]) || binary.BigEndian.Uint32(g.segBuf[24:]) != g.nextTCP {
			g.bad.Add(1)
		}
		g.nextTCP = binary.BigEndian.Uint32(g.segBuf[24:]) + uint32(n-40)
		segs++
	}
}

func (g *genTun) Close() error { g.once.Do(func() { close(g.closed) }); return nil }
func (g *genTun) Name() string { return "gen0" }

// testPeer is the server end: a UDP socket with the server's keys.
type testPeer struct {
	c     *net.UDPConn
	pc    *ipv4.PacketConn
	key   *datachan.Key // server side: seals what the client opens and vice versa
	got   atomic.Int64
	pings atomic.Int64 // keepalive pings among them (counted only with open)
	last  atomic.Int64 // unix nanos of the last datagram received
	// open: decrypt every received packet and compare it with want.
	open      bool
	want      []byte
	check     func([]byte) bool // instead of want
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
		r, err := newGROReader(p.c, 64)
		if err != nil {
			panic(err)
		}
		plain := make([]byte, 0, 65535)
		var lastID, nextSeq uint32
		check := func(d []byte) {
			// Packet ids must arrive in order (DATA_V2: after the
			// 4-byte header), stamped packets in the order read.
			if id := binary.BigEndian.Uint32(d[4:]); id <= lastID {
				p.bad.Add(1)
			} else {
				lastID = id
			}
			pt, err := p.key.Open(plain[:0], d)
			switch {
			case err != nil:
				p.bad.Add(1)
			case datachan.IsPing(pt):
				p.pings.Add(1)
				return
			case p.check != nil:
				if !p.check(pt) {
					p.bad.Add(1)
				}
			case !sameButStamp(pt, p.want) || binary.BigEndian.Uint32(pt[seqAt:]) != nextSeq:
				p.bad.Add(1)
			}
			nextSeq++
		}
		count := func([]byte) {}
		for {
			n, err := r.read()
			if err != nil {
				return
			}
			got := 0
			for i := range n {
				if p.open {
					got += r.datagrams(i, check)
				} else {
					got += r.datagrams(i, count)
				}
			}
			p.got.Add(int64(got))
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
func (p *testPeer) sendSealed(tb testing.TB, addr net.Addr, payload func(i int) []byte, n int, tun *genTun, window int64, mayLose bool) {
	msgs := make([]ipv4.Message, 64)
	bufs := make([][]byte, 64)
	for i := range bufs {
		bufs[i] = make([]byte, 0, p.key.SealBufferLen(MaxTunPacket))
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
			pkt, err := p.key.Seal(bufs[i][:0], payload(sent+i))
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

// seqAt is where a stamped packet carries its number (the IPv4 header's
// identification and fragment fields, which nothing on the path reads).
const seqAt = 4

// sameButStamp says p equals want but for the stamp.
func sameButStamp(p, want []byte) bool {
	return len(p) == len(want) && bytes.Equal(p[:seqAt], want[:seqAt]) && bytes.Equal(p[seqAt+4:], want[seqAt+4:])
}

// ipPacket is an IPv4/UDP-looking packet of n bytes.
func ipPacket(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)
	}
	b[0] = 0x45
	return b
}

// benchMode is which offloads a data-plane run may use and whether it
// seals and opens in parallel (GOMAXPROCS workers, or workers when set).
type benchMode struct {
	name           string
	tun, gso, mmsg bool
	rxmod          bool // receive moderation (moderate.go)
	parallel       bool
	workers        int
	pings          bool // send keepalive pings while the TUN is read (up)
}

// plane is a Plane as mode says.
func (mode benchMode) plane() *Plane {
	p := New(Config{Offloads: mode.offloads(), Parallel: mode.parallel})
	if mode.workers > 0 {
		p.workers = mode.workers
	}
	return p
}

var (
	modeNone = benchMode{name: "none"}
	modeAll  = benchMode{name: "all", tun: true, gso: true, mmsg: true, rxmod: true}
	// upModes: each offload alone, then all; downModes: only the TUN
	// offload (coalescing) and receive moderation act on the receive
	// path.
	upModes = []benchMode{modeNone, {name: "udp-mmsg", mmsg: true}, {name: "udp-gso", gso: true},
		{name: "tun", tun: true}, modeAll}
	downModes = []benchMode{modeNone, {name: "tun", tun: true}, {name: "tun+rx-moderation", tun: true, rxmod: true}}
)

// offloads switches off what mode does not use.
func (mode benchMode) offloads() Offloads {
	return Offloads{NoTUN: !mode.tun, NoGSO: !mode.gso, NoMmsg: !mode.mmsg, NoRxMod: !mode.rxmod}
}

// dialBenchTransport opens the client's UDP transport to the peer as a
// connection attempt does (socket options included).
func dialBenchTransport(tb testing.TB, peer *testPeer) (*transport.UDP, *net.UDPConn) {
	tb.Helper()
	tr, err := transport.Dial(context.Background(), nil, "udp4", peer.c.LocalAddr().String(), nil, 0)
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
	batches        int64 // sealed or opened by the workers
	sends          int64 // up: the batch writer's send syscalls (0 without one)
}

// tcpSegment writes into b an IPv4/TCP packet of size bytes (20+20
// bytes of headers) at sequence number seq, whose payload bytes are
// byte(seq+j), with correct checksums, and returns it.
func tcpSegment(b []byte, size int, seq uint32) []byte {
	p := b[:size]
	clear(p[:40])
	p[0], p[6], p[8], p[9] = 0x45, 0x40, 64, 6
	binary.BigEndian.PutUint16(p[2:], uint16(size))
	copy(p[12:], []byte{10, 8, 0, 2, 10, 8, 0, 1})
	binary.BigEndian.PutUint16(p[10:], ^foldSum(p[:20], 0))
	t := p[20:]
	binary.BigEndian.PutUint16(t[0:], 40000)
	binary.BigEndian.PutUint16(t[2:], 5201)
	binary.BigEndian.PutUint32(t[4:], seq)
	binary.BigEndian.PutUint32(t[8:], 1)
	t[12], t[13] = 5<<4, 0x10 // ACK
	binary.BigEndian.PutUint16(t[14:], 1000)
	for j := range t[20:] {
		t[20+j] = byte(seq + uint32(j))
	}
	binary.BigEndian.PutUint16(t[16:], ^foldSum(t, tcpPseudo(p)))
	return p
}

// tcpPseudo is the TCP pseudo-header sum of an IPv4 packet.
func tcpPseudo(p []byte) uint64 {
	return uint64(binary.BigEndian.Uint16(p[12:])) + uint64(binary.BigEndian.Uint16(p[14:])) +
		uint64(binary.BigEndian.Uint16(p[16:])) + uint64(binary.BigEndian.Uint16(p[18:])) + 6 + uint64(len(p)-20)
}

// foldSum is the folded ones'-complement sum of b added to acc.
func foldSum(b []byte, acc uint64) uint16 {
	for ; len(b) >= 2; b = b[2:] {
		acc += uint64(binary.BigEndian.Uint16(b))
	}
	if len(b) == 1 {
		acc += uint64(b[0]) << 8
	}
	for acc > 0xffff {
		acc = acc>>16 + acc&0xffff
	}
	return uint16(acc)
}

// validSegment says p is what tcpSegment builds for its sequence number:
// correct checksums, lengths and payload.
func validSegment(p []byte) bool {
	if len(p) < 40 || p[0] != 0x45 || int(binary.BigEndian.Uint16(p[2:])) != len(p) ||
		foldSum(p[:20], 0) != 0xffff || foldSum(p[20:], tcpPseudo(p)) != 0xffff {
		return false
	}
	seq := binary.BigEndian.Uint32(p[24:])
	for j, c := range p[40:] {
		if c != byte(seq+uint32(j)) {
			return false
		}
	}
	return true
}

// upTun is the TUN device of an upward run: plain packets without the
// TUN offload; with it, TSO super-packets of 1400-byte segments as a
// kernel with TUNSETOFFLOAD hands out for a bulk TCP flow, and small
// packets one per read behind a plain header (TCP does not batch those).
func upTun(size int, mode benchMode, n int) (*genTun, func([]byte) bool) {
	if !mode.tun {
		g := newGenTun(ipPacket(size), int64(n))
		g.stamp = true
		return g, nil
	}
	if size < 200 {
		pkt := append(make([]byte, offload.HdrLen), tcpSegment(make([]byte, size), size, 0)...)
		g := newGenTun(pkt, int64(n))
		g.vnet = true
		return g, validSegment
	}
	mss := size - 40
	per := (65535 - 40) / mss
	super := tcpSegment(make([]byte, 40+per*mss), 40+per*mss, 0)
	h := offload.Hdr{Flags: offload.FlagNeedsCsum, GSOType: offload.GSOTCPv4, HdrLen: 40, GSOSize: uint16(mss), CsumStart: 20, CsumOffset: 16}
	pkt := make([]byte, offload.HdrLen+len(super))
	h.Encode(pkt)
	copy(pkt[offload.HdrLen:], super)
	g := newGenTun(pkt, int64(n))
	g.vnet, g.perRead = true, int64(per)
	return g, validSegment
}

// runUp sends n packets of size bytes from the TUN device through the
// client's send path to the peer and waits until the peer has seen them
// all or went quiet (loopback drops what overflows the peer's socket).
func runUp(tb testing.TB, size int, mode benchMode, n int, verify bool) upResult {
	return runUpWith(tb, size, mode, n, verify, func(g *genTun) tunio.PacketDevice { return g })
}

// runUpWith is runUp reading the TUN device that dev makes of the
// generator.
func runUpWith(tb testing.TB, size int, mode benchMode, n int, verify bool, dev func(*genTun) tunio.PacketDevice) upResult {
	ckey, skey := dataPlaneKeys(tb, 3)
	peer := newTestPeer(tb, skey)
	tun, check := upTun(size, mode, n)
	peer.open, peer.want, peer.check = verify, tun.pkt, check
	peer.receive()
	defer peer.close()
	tr, _ := dialBenchTransport(tb, peer)
	defer tr.Close()
	p := mode.plane()
	if err := p.NewConn(ConnConfig{Transport: tr}).InstallKey(Primary, ckey); err != nil {
		tb.Fatal(err)
	}
	tx := p.tx.Load()
	start := time.Now()
	p.StartTun(dev(tun))
	var pings int64
	if mode.pings {
		// Keepalive pings from another goroutine, in between.
		stop, done := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			for {
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Microsecond):
					if err := p.SendPing(); err != nil {
						tb.Error(err)
						return
					}
					pings++
				}
			}
		}()
		<-tun.drained
		close(stop)
		<-done
		wait(tb, verify, func() int64 { return peer.pings.Load() }, pings, "peer (pings)")
	}
	<-tun.drained
	wait(tb, verify, func() int64 { return peer.got.Load() - peer.pings.Load() }, int64(n), "peer (up)")
	p.CloseTun()
	if verify && peer.bad.Load() != 0 {
		tb.Fatalf("peer found %d of %d packets wrong, out of order or not opening", peer.bad.Load(), peer.got.Load())
	}
	r := upResult{sent: p.Counters().PktsOut.Load() - pings, received: peer.got.Load() - peer.pings.Load(),
		elapsed: time.Duration(peer.last.Load() - start.UnixNano()), batches: p.ParallelBatches()}
	if tx != nil && tx.bw != nil {
		r.sends = tx.bw.Sends
	}
	return r
}

// runDown has the peer send n sealed packets of size bytes to the
// client's socket; the client's ReadLoop opens them and writes them
// to the TUN device. With the TUN offload they are the in-order segments
// of one TCP flow, which the client coalesces.
func runDown(tb testing.TB, size int, mode benchMode, n int, verify bool) upResult {
	ckey, skey := dataPlaneKeys(tb, 3)
	peer := newTestPeer(tb, skey)
	defer peer.close()
	tr, conn := dialBenchTransport(tb, peer)
	p := mode.plane()
	pkt := ipPacket(size)
	stamped := bytes.Clone(pkt)
	payload := func(i int) []byte { binary.BigEndian.PutUint32(stamped[seqAt:], uint32(i)); return stamped }
	tun := newGenTun(pkt, 0)
	if mode.tun {
		tun.vnet = true
		scratch := make([]byte, size)
		payload = func(i int) []byte { return tcpSegment(scratch, size, uint32(i*(size-40))) }
		if verify {
			tun.checkSeg = validSegment
		}
	} else if verify {
		tun.check = pkt
	}
	tun.counted = p.Counters().TunPktsOut.Load
	p.tunW.Store(&tunWriter{w: tun, vnet: mode.tun})
	dc := p.NewConn(ConnConfig{Transport: tr})
	if err := dc.InstallKey(Primary, ckey); err != nil {
		tb.Fatal(err)
	}
	readEnd := make(chan error, 1)
	go func() { readEnd <- dc.ReadLoop() }()
	defer func() { tr.Close(); <-readEnd }()
	start := time.Now()
	window := int64(96)
	if verify {
		window = 32 // well inside the default socket buffer: nothing may be lost
	}
	peer.sendSealed(tb, conn.LocalAddr(), payload, n, tun, window, !verify)
	wait(tb, verify, func() int64 { return tun.wrote.Load() }, int64(n), fmt.Sprintf("TUN (down, %d dropped as undecryptable)", dc.Dropped()))
	if verify && (tun.bad.Load() != 0 || dc.Dropped() != 0) {
		tb.Fatalf("TUN got %d wrong packets, %d dropped as undecryptable", tun.bad.Load(), dc.Dropped())
	}
	if verify && tun.early.Load() != 0 {
		tb.Fatalf("%d of %d TUN writes came before the plane counted them", tun.early.Load(), tun.wrote.Load())
	}
	return upResult{sent: int64(n), received: tun.wrote.Load(),
		elapsed: time.Duration(tun.lastWrite.Load() - start.UnixNano()), batches: p.ParallelBatches()}
}

// processCPU is the CPU time (user and system) the process used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
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

// waitQuiet returns once count reaches want or, after the first packet
// arrived, stops growing for 50 ms (the rest overflowed a socket). The
// first packet gets 30 s: on a loaded machine the path's goroutines may
// not run within 50 ms of the send, which once read as "nothing arrived".
func waitQuiet(count func() int64, want int64) {
	last, since := int64(-1), time.Now()
	for {
		n := count()
		if n >= want {
			return
		}
		quiet := 50 * time.Millisecond
		if n == 0 {
			quiet = 30 * time.Second
		}
		if n != last {
			last, since = n, time.Now()
		} else if time.Since(since) > quiet {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// TestDataPlaneBenchPath checks what BenchmarkDataPlane measures, with
// every offload off, each alone and all on: packets from the TUN device
// (TSO super-packets split, with the TUN offload) reach the peer sealed
// so that the server key opens them to the right bytes, and packets the
// peer seals reach the TUN device intact (coalesced and resegmented
// back, with the TUN offload), in both sizes.
func TestDataPlaneBenchPath(t *testing.T) {
	for _, size := range []int{1400, 64} {
		for _, mode := range upModes {
			// runUp and runDown fail unless all 200 arrive intact.
			if up := runUp(t, size, mode, 200, true); up.sent != 200 || up.received != 200 {
				t.Errorf("%d bytes up, offload %s: sent %d, peer got %d", size, mode.name, up.sent, up.received)
			}
		}
		for _, mode := range downModes {
			if down := runDown(t, size, mode, 200, true); down.received != 200 {
				t.Errorf("%d bytes down, offload %s: TUN got %d of 200", size, mode.name, down.received)
			}
		}
	}
}

// TestDataPlaneNoAllocPerPacket: the steady-state send (TUN read, seal,
// UDP write) and receive (UDP read, open, TUN write) paths do not allocate
// per packet, with the offloads off and on: 20000 packets cost no more
// allocations than the fixed set-up (keys, sockets, goroutines, buffers).
func TestDataPlaneNoAllocPerPacket(t *testing.T) {
	const n = 20000
	for _, mode := range append([]benchMode{modeNone, modeAll}, parallelModes...) {
		for _, run := range []struct {
			name string
			f    func(testing.TB, int, benchMode, int, bool) upResult
		}{{"send", runUp}, {"receive", runDown}} {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			r := run.f(t, 1400, mode, n, false)
			runtime.ReadMemStats(&after)
			if allocs := after.Mallocs - before.Mallocs; allocs > 2000 {
				t.Errorf("%s, offload %s: %d allocations for %d packets (%d arrived): the path allocates per packet", run.name, mode.name, allocs, n, r.received)
			}
		}
	}
}

// BenchmarkDataPlane reports what the client's data path moves per
// direction for 1400- and 64-byte packets, with the offloads off, each
// alone and all on, sealing and opening inline or in parallel (with one
// P parallel stays inline): Gbit/s of TUN payload and packets/s that
// arrived (UDP over loopback drops what overflows a socket, so
// "delivered%" says how much of what was offered arrived), and the
// process's CPU time (client, peer and kernel work on their behalf) per
// packet that arrived, which a loaded machine skews less than speed.
//
//	go test -run '^$' -bench DataPlane -benchmem -cpu 1,2 ./helper/openvpn/dataplane/
func BenchmarkDataPlane(b *testing.B) {
	for _, dir := range []string{"up", "down"} {
		modes := upModes
		if dir == "down" {
			modes = downModes
		}
		for _, size := range []int{1400, 64} {
			for _, mode := range modes {
				for _, parallel := range []bool{false, true} {
					mode.parallel = parallel
					crypto := "inline"
					if parallel {
						crypto = "parallel"
					}
					b.Run(fmt.Sprintf("%s/%dB/offload=%s/crypto=%s", dir, size, mode.name, crypto), func(b *testing.B) {
						b.ReportAllocs()
						b.ResetTimer()
						cpu0 := processCPU()
						var r upResult
						if dir == "up" {
							r = runUp(b, size, mode, b.N, false)
						} else {
							r = runDown(b, size, mode, b.N, false)
						}
						cpu := processCPU() - cpu0
						b.StopTimer()
						if r.received == 0 || r.elapsed <= 0 {
							b.Fatalf("nothing arrived (%d of %d)", r.received, b.N)
						}
						secs := r.elapsed.Seconds()
						b.ReportMetric(float64(r.received)*float64(size)*8/secs/1e9, "Gbit/s")
						b.ReportMetric(float64(r.received)/secs, "pkts/s")
						b.ReportMetric(100*float64(r.received)/float64(b.N), "delivered%")
						b.ReportMetric(float64(cpu.Nanoseconds())/float64(r.received), "cpu-ns/pkt")
					})
				}
			}
		}
	}
}
