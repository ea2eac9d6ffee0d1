package dataplane

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/offload"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/tunio"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/tunio/tuniotest"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/uring"
)

// vnetWriter is a plane whose socket reader writes decrypted packets to
// dev (a stand-in with virtio_net_hdr packets), through io_uring unless
// the profile switched it off, and a peer that sends it sealed packets.
type vnetWriter struct {
	p          *Plane
	peer       *testPeer
	addr       netip.AddrPort
	dev        *tuniotest.SeqDev
	ring       *tunio.RingWriter
	n          int // packets sent so far
	sbuf, abuf []byte
	fds        []unix.PollFd
}

func startVnetWriter(t *testing.T, noUring bool, burst int) *vnetWriter {
	t.Helper()
	ckey, skey := dataPlaneKeys(t, 3)
	peer := newTestPeer(t, skey)
	t.Cleanup(peer.close)
	tr, conn := dialBenchTransport(t, peer)
	p := modeAll.plane()
	p.off.NoUring = noUring
	v := &vnetWriter{p: p, peer: peer, addr: conn.LocalAddr().(*net.UDPAddr).AddrPort(), dev: tuniotest.NewSeqDev(t, true), sbuf: make([]byte, 256), abuf: make([]byte, 64)}
	v.fds = []unix.PollFd{{Fd: int32(v.dev.Peer.Fd()), Events: unix.POLLIN}}
	// As StartTun leaves a device with a virtio_net_hdr (whose reader
	// this test does not need): CloseTun closes device and writer.
	v.ring = p.openRingWriter(v.dev)
	p.tun, p.tunRingW = v.dev, v.ring
	p.tunW.Store(&tunWriter{w: tunio.NewWriter(v.dev), ring: v.ring, vnet: true})
	dc := p.NewConn(ConnConfig{Transport: tr})
	if err := dc.InstallKey(Primary, ckey); err != nil {
		t.Fatal(err)
	}
	// The first burst waits in the socket before the reader starts: it
	// comes in one read, its packets in one batch of device writes.
	v.queue(t, burst)
	readEnd := make(chan error, 1)
	go func() { readEnd <- dc.ReadLoop() }()
	t.Cleanup(func() {
		p.CloseTun()
		tr.Close()
		<-readEnd
	})
	return v
}

// ackPacket is the packets' template: a small IPv4 packet (a pure ACK's
// size; not TCP, so the coalescer writes each alone).
var ackPacket = ipPacket(60)

// ack is packet i, in b.
func ack(b []byte, i int) []byte {
	b = append(b[:0], ackPacket...)
	binary.BigEndian.PutUint32(b[seqAt:], uint32(i))
	return b
}

// queue seals the next k packets with the server key and sends them to
// the client's socket.
func (v *vnetWriter) queue(t *testing.T, k int) {
	t.Helper()
	for range k {
		pkt, err := v.peer.key.Seal(v.sbuf[:0], ack(v.abuf, v.n))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.peer.c.WriteToUDPAddrPort(pkt, v.addr); err != nil {
			t.Fatal(err)
		}
		v.n++
	}
}

// expect reads packets from the device until it got packet n-1 and
// checks each is the next one, behind a plain virtio_net_hdr.
func (v *vnetWriter) expect(t *testing.T, from, n int, buf []byte) {
	t.Helper()
	plain := make([]byte, offload.HdrLen)
	offload.PutPlain(plain)
	for i := from; i < n; i++ {
		k, err := v.read(buf)
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if k != offload.HdrLen+60 || !bytes.Equal(buf[:offload.HdrLen], plain) || !bytes.Equal(buf[offload.HdrLen:k], ack(v.abuf, i)) {
			t.Fatalf("packet %d: got %d bytes %x, want packet %d behind a plain header", i, k, buf[:min(k, 40)], i)
		}
	}
}

// read reads one packet from the stand-in's peer end, giving up after
// 10 s.
func (v *vnetWriter) read(buf []byte) (int, error) {
	for {
		n, err := unix.Poll(v.fds, 10000)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 {
			return 0, fmt.Errorf("nothing on the device in 10 s (%v)", err)
		}
		break
	}
	n, err := unix.Read(int(v.fds[0].Fd), buf)
	return n, err
}

// The socket reader writes a read's packets to the device with one
// io_uring_enter (with io_uring on; one write(2) each with it off), every
// packet intact and in order, and allocates nothing per packet either way.
func TestTunWriterBatchesThroughIoUring(t *testing.T) {
	const burst = 8 // the stand-in queues 10 packets before EAGAIN
	for _, noUring := range []bool{false, true} {
		t.Run(fmt.Sprintf("uring %v", !noUring), func(t *testing.T) {
			v := startVnetWriter(t, noUring, burst)
			if (v.ring != nil) == noUring {
				t.Fatalf("io_uring writer %v with uring off %v (this kernel has io_uring)", v.ring != nil, noUring)
			}
			buf := make([]byte, 2048)
			v.expect(t, 0, burst, buf)
			// Counted once the batch's write returned, maybe after the
			// packets were read here.
			ctr := v.p.Counters()
			wait(t, true, ctr.TunWrites.Load, burst, "device writes counted")
			if got := ctr.TunWrites.Load(); got != burst {
				t.Fatalf("%d device writes for %d packets", got, burst)
			}
			if noUring {
				if ctr.TunRingWrites.Load() != 0 {
					t.Fatal("packets written through io_uring although it is off")
				}
			} else {
				enters, writes := v.ring.Stats()
				if enters != 1 || writes != burst || ctr.TunRingWrites.Load() != burst {
					t.Fatalf("a read of %d packets: %d io_uring_enter calls, %d writes (counted %d); want 1 and %d", burst, enters, writes, ctr.TunRingWrites.Load(), burst)
				}
			}
			// Steady state: bursts as ACKs come, each read back.
			for range 50 {
				v.queue(t, burst)
				v.expect(t, v.n-burst, v.n, buf)
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for range 500 {
				v.queue(t, burst)
				v.expect(t, v.n-burst, v.n, buf)
			}
			runtime.ReadMemStats(&after)
			if allocs := after.Mallocs - before.Mallocs; allocs > 400 {
				t.Errorf("%d allocations for %d packets: the TUN write path allocates per packet", allocs, 500*burst)
			}
			wait(t, true, ctr.TunWrites.Load, int64(v.n), "device writes counted")
			if got := ctr.TunWrites.Load(); got != int64(v.n) {
				t.Errorf("%d device writes counted for %d packets", got, v.n)
			}
			if !noUring && ctr.TunRingWrites.Load() != int64(v.n) {
				t.Errorf("%d of %d packets written through io_uring", ctr.TunRingWrites.Load(), v.n)
			}
		})
	}
}

// Where the kernel refuses io_uring, the plane writes the device with
// write(2): every packet still arrives.
func TestTunWriterFallsBackWhenIoUringIsRefused(t *testing.T) {
	restore := uring.Refuse(unix.EPERM)
	v := startVnetWriter(t, false, 4)
	restore()
	if v.ring != nil {
		t.Fatal("the plane writes through io_uring although the kernel refused it")
	}
	buf := make([]byte, 2048)
	v.expect(t, 0, 4, buf)
	for range 20 {
		v.queue(t, 4)
		v.expect(t, v.n-4, v.n, buf)
	}
	wait(t, true, v.p.Counters().TunWrites.Load, int64(v.n), "device writes counted")
	if got := v.p.Counters().TunWrites.Load(); got != int64(v.n) {
		t.Fatalf("%d device writes for %d packets", got, v.n)
	}
}

// CloseTun closes the device and frees the io_uring writer: its mappings
// are gone, and a socket reader that still held it gets os.ErrClosed.
func TestCloseTunFreesTheRingWriter(t *testing.T) {
	v := startVnetWriter(t, false, 4)
	v.expect(t, 0, 4, make([]byte, 2048))
	maps := v.ring.Mappings()
	if got := tuniotest.Mapped(t, maps); len(got) != len(maps) {
		t.Fatalf("mappings %x found %x", maps, got)
	}
	v.p.CloseTun()
	if left := tuniotest.Mapped(t, maps); len(left) > 0 {
		t.Fatalf("mappings %x left after CloseTun", left)
	}
	if v.p.tunRingW != nil || v.p.tunW.Load() != nil {
		t.Fatal("the plane still holds the writer after CloseTun")
	}
	if _, err := v.ring.Queue(ack(v.abuf, 0)); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Queue after CloseTun: %v, want os.ErrClosed", err)
	}
}

// Data (a single segment's size or a super-packet) goes to the device with
// write(2), after the small packets queued before it (those in one
// io_uring_enter): every packet in order, only the small ones through the
// ring.
func TestTunSinkWritesDataDirectly(t *testing.T) {
	p := modeAll.plane()
	dev := tuniotest.NewSeqDev(t, true)
	ring := p.openRingWriter(dev)
	if ring == nil {
		t.Fatal("no io_uring writer (this kernel has io_uring)")
	}
	p.tun, p.tunRingW = dev, ring
	p.tunW.Store(&tunWriter{w: tunio.NewWriter(dev), ring: ring, vnet: true})
	t.Cleanup(p.CloseTun)

	// Not TCP, so the coalescer hands each on alone.
	sizes := []int{60, 80, 1400, 70, 90, 3048 /* a super-packet's size */, 66}
	var want [][]byte
	s := newTunSink(p)
	tw := p.tunW.Load()
	for i, n := range sizes {
		pkt := ipPacket(n)
		binary.BigEndian.PutUint32(pkt[seqAt:], uint32(i))
		want = append(want, bytes.Clone(pkt))
		if err := s.add(tw, pkt); err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
	}
	s.flush()

	buf := make([]byte, 1<<16)
	for i, w := range want {
		dev.Peer.SetReadDeadline(time.Now().Add(10 * time.Second))
		k, err := dev.Peer.Read(buf)
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if got := buf[offload.HdrLen:k]; !bytes.Equal(got, w) {
			t.Fatalf("packet %d: %d bytes (number %d), want %d bytes (number %d)", i, len(got), binary.BigEndian.Uint32(got[seqAt:]), len(w), i)
		}
	}
	// Two small ones before each data packet, one after: a call each.
	enters, writes := ring.Stats()
	ctr := p.Counters()
	if enters != 3 || writes != 5 || ctr.TunRingWrites.Load() != 5 || ctr.TunWrites.Load() != 7 {
		t.Fatalf("%d io_uring_enter calls, %d ring writes (counted %d of %d); want 3 calls, 5 of 7 through the ring",
			enters, writes, ctr.TunRingWrites.Load(), ctr.TunWrites.Load())
	}
}
