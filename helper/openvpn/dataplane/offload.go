package dataplane

import (
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/offload"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/transport"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/tunio"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/udpbatch"
)

// The data path's offloads (issue 14): a TUN device opened with
// IFF_VNET_HDR and TUNSETOFFLOAD hands out TSO/USO super-packets, which
// are split into MSS-sized packets before encryption, and takes coalesced
// TCP super-packets; the UDP socket sends runs of datagrams with sendmmsg
// and UDP GSO. Each is detected at run time and can be switched off by
// the profile (ovpn3go-offload).

// VnetDevice is a TUN device that says whether its packets carry a
// virtio_net_hdr (test devices do); a device with a File is asked with
// TUNGETIFF even if it says so too (tundev.Device does), since only that
// path enables the offloads with TUNSETOFFLOAD.
type VnetDevice interface {
	VnetHdr() bool
}

// fileDevice is a device backed by a TUN file descriptor.
type fileDevice interface {
	File() *os.File
}

// tunVnet says whether the device's packets carry a virtio_net_hdr and,
// for a real device, enables the offloads the kernel has (TSO with
// checksum offload, and USO where the kernel knows it) unless allow is
// false: without TUNSETOFFLOAD the header stays but never asks for
// segmentation.
func tunVnet(dev tunio.PacketDevice, allow bool) (bool, error) {
	fd, ok := dev.(fileDevice)
	if !ok || fd.File() == nil {
		if v, ok := dev.(VnetDevice); ok {
			return v.VnetHdr(), nil
		}
		return false, nil
	}
	rc, err := fd.File().SyscallConn()
	if err != nil {
		return false, fmt.Errorf("tun offload: %w", err)
	}
	var vnet bool
	var ioErr error
	err = rc.Control(func(f uintptr) {
		ifr, err := unix.NewIfreq("")
		if err != nil {
			ioErr = err
			return
		}
		if err := unix.IoctlIfreq(int(f), unix.TUNGETIFF, ifr); err != nil {
			ioErr = fmt.Errorf("TUNGETIFF: %w", err)
			return
		}
		vnet = ifr.Uint16()&unix.IFF_VNET_HDR != 0
		if !vnet || !allow {
			return
		}
		tso := unix.TUN_F_CSUM | unix.TUN_F_TSO4 | unix.TUN_F_TSO6
		// USO arrived in Linux 6.2: older kernels refuse the flags.
		if unix.IoctlSetInt(int(f), unix.TUNSETOFFLOAD, tso|unix.TUN_F_USO4|unix.TUN_F_USO6) == nil {
			return
		}
		if err := unix.IoctlSetInt(int(f), unix.TUNSETOFFLOAD, tso); err != nil {
			ioErr = fmt.Errorf("TUNSETOFFLOAD: %w", err)
		}
	})
	return vnet, errors.Join(err, ioErr)
}

// newBatchWriter returns the UDP batch writer for a plain UDP transport,
// nil when the profile switched both UDP offloads off or the transport
// is another kind (TCP, proxy, float).
func newBatchWriter(tr transport.Conn, sw Offloads) *udpbatch.Writer {
	if sw.NoGSO && sw.NoMmsg {
		return nil
	}
	u, ok := tr.(*transport.UDP)
	if !ok {
		return nil
	}
	uc, ok := u.NetConn().(*net.UDPConn)
	if !ok {
		return nil
	}
	w, err := udpbatch.New(uc, udpbatch.Options{GSO: !sw.NoGSO, Mmsg: !sw.NoMmsg})
	if err != nil {
		return nil
	}
	return w
}

// sealQueue seals the payload buf[off:off+n] (framing room around it) and
// sends it, or queues it on the batch writer; tx.mu is held. It returns
// the size of the encrypted packet.
func (tx *txPath) sealQueue(buf []byte, off, n int) (int, error) {
	plain := tx.comp.frame(buf, off, n)
	if tx.bw == nil {
		pkt, err := tx.key.Seal(tx.sealBuf(tx.key.SealBufferLen(len(plain))), plain)
		if err == nil {
			err = tx.tr.WritePacket(pkt)
		}
		return len(pkt), err
	}
	dst, err := tx.bw.Buffer(tx.key.SealBufferLen(len(plain)))
	if err != nil {
		return 0, err
	}
	pkt, err := tx.key.Seal(dst, plain)
	if err != nil {
		return 0, err
	}
	return len(pkt), tx.bw.Commit(pkt)
}

// flush sends what sealQueue queued; tx.mu is held.
func (tx *txPath) flush() error {
	if tx.bw == nil {
		return nil
	}
	return tx.bw.Flush()
}

// sendSegments splits device reads (virtio_net_hdr first) into IP
// packets and sends them sealed: read k is rbuf[offs[k]:offs[k]+sizes[k]].
// Inline, the segments of all the reads are sealed under one lock and
// leave in one flush of the batch writer (one sendmmsg, GSO runs); a read
// worth the parallel pipeline (sp) goes there as a batch of its own, in
// order. *buf grows to hold the largest segment with the framing's room
// around it.
func (p *Plane) sendSegments(seg *offload.Segmenter, rbuf []byte, offs, sizes []int, buf *[]byte, clamp func([]byte), sp *sendPipe) error {
	tx := p.tx.Load()
	if sp != nil && tx != nil {
		p.seq.Lock()
		defer p.seq.Unlock()
	}
	var b batch
	var err error
	inline := false // tx.mu held, b open
	for k, n := range sizes {
		if n <= offload.HdrLen {
			continue
		}
		if rerr := seg.Reset(rbuf[offs[k] : offs[k]+n]); rerr != nil {
			p.log.Debug("tun packet dropped", "err", rerr)
			continue
		}
		p.countTunIn(int64(seg.Len()), int64(seg.Count()))
		if tx == nil {
			continue // no key yet: dropped
		}
		if need := frameHeadroom + seg.MaxLen() + frameTailroom; len(*buf) < need {
			*buf = make([]byte, max(need, recvSlot))
		}
		if sp != nil && parallelOK(tx, seg.Count(), seg.Count()*seg.MaxLen(), seg.MaxLen()) {
			if inline {
				inline = false
				if err = p.endBatch(tx, &b); err != nil {
					return err
				}
			}
			if err = p.sendSegmentsParallel(sp, tx, seg, clamp); err != nil {
				return err
			}
			continue
		}
		if !inline {
			if sp != nil {
				sp.q.drain() // inline, behind what is in flight
			}
			tx.mu.Lock()
			inline, b = true, batch{}
		}
		if err = b.sealSegments(tx, seg, *buf, clamp); err != nil {
			break
		}
	}
	if inline {
		return errors.Join(err, p.endBatch(tx, &b))
	}
	return err
}

// batch counts the packets of one inline batch as they are sealed.
type batch struct{ pkts, bytes int64 }

// sealSegments seals and queues every segment of seg, built in buf;
// tx.mu is held.
func (b *batch) sealSegments(tx *txPath, seg *offload.Segmenter, buf []byte, clamp func([]byte)) error {
	for {
		n, ok := seg.Next(buf[frameHeadroom : len(buf)-frameTailroom])
		if !ok {
			return nil
		}
		if clamp != nil {
			clamp(buf[frameHeadroom : frameHeadroom+n])
		}
		if err := b.seal(tx, buf, frameHeadroom, n); err != nil {
			return err
		}
	}
}

// seal seals and queues the payload buf[off:off+n] (framing room around
// it), counting it; tx.mu is held.
func (b *batch) seal(tx *txPath, buf []byte, off, n int) error {
	size, err := tx.sealQueue(buf, off, n)
	if err != nil {
		return err
	}
	b.pkts++
	b.bytes += int64(size)
	return nil
}

// endBatch sends an inline batch, releases tx.mu and counts what left.
func (p *Plane) endBatch(tx *txPath, b *batch) error {
	err := tx.flush()
	tx.mu.Unlock()
	p.countSent(b.pkts, b.bytes)
	return err
}

// tunDrain is the most device reads the TUN reader takes per wake-up: the
// packets that queued up while it sealed and sent the previous ones, which
// then leave together.
const tunDrain = 64

// drainRoom is the room for further reads behind one of the largest
// super-packet: a dozen MTU-sized packets per wake-up.
const drainRoom = 16 << 10

// readVnet is the TUN reader's loop for a device with a virtio_net_hdr:
// one wake-up reads every packet queued meanwhile (through ring, or with
// read(2) calls: tunio.NewReader) and sends their segments together.
func (p *Plane) readVnet(tun tunio.PacketDevice, ring *tunio.RingReader, clamp func([]byte), sp *sendPipe) {
	// The segments' buffer grows to the largest segment yet (MTU-sized
	// with TSO): not 64 KiB per session for packets that never come.
	var buf []byte
	var seg offload.Segmenter
	handle := func(rbuf []byte, offs, sizes []int) time.Duration {
		p.ctr.TunReads.Add(int64(len(offs))) // one device read per packet or super-packet
		if err := p.sendSegments(&seg, rbuf, offs, sizes, &buf, clamp, sp); err != nil {
			p.log.Debug("data send failed", "err", err)
		}
		if !p.off.NoTxMod && bulkDatagrams(rbuf, offs, sizes) {
			return txLinger
		}
		return 0
	}
	if ring != nil {
		err := ring.Loop(func(rbuf []byte, offs, sizes []int) time.Duration {
			p.ctr.TunRingReads.Add(int64(len(offs)))
			return handle(rbuf, offs, sizes)
		}, p.txSleep)
		if !errors.Is(err, tunio.ErrRingUnsupported) {
			if !errors.Is(err, os.ErrClosed) {
				p.log.Debug("tun read ended", "err", err)
			}
			return
		}
		p.log.Debug("tun read through io_uring refused, reading with read(2)", "err", err)
	}
	r := tunio.NewReader(tun)
	rbuf := make([]byte, vnetLayout.Max+drainRoom)
	offs, sizes := make([]int, tunDrain), make([]int, tunDrain)
	err := tunio.Loop(r, rbuf, vnetLayout, offs, sizes, func(k int) time.Duration {
		return handle(rbuf, offs[:k], sizes[:k])
	}, p.txSleep)
	if !errors.Is(err, os.ErrClosed) {
		p.log.Debug("tun read ended", "err", err)
	}
}

// vnetLayout places the packets of a device with a virtio_net_hdr: the
// segments are copied out of the read buffer, which needs no room around
// them.
var vnetLayout = tunio.Layout{Max: offload.HdrLen + MaxTunPacket}

// openRing returns the reader of dev through io_uring (tunio.RingReader),
// nil where the profile switched it off (ovpn3go-offload uring off) or
// the kernel refuses it: then the TUN reader reads with read(2).
func (p *Plane) openRing(dev tunio.PacketDevice) *tunio.RingReader {
	if p.off.NoUring {
		return nil
	}
	r, err := tunio.NewRingReader(dev, tunDrain, vnetLayout)
	if err != nil {
		p.log.Debug("tun read through io_uring not enabled", "err", err)
		return nil
	}
	return r
}

// openRingWriter returns the batch writer of dev through io_uring
// (tunio.RingWriter), nil where the profile switched io_uring off
// (ovpn3go-offload uring off) or the kernel refuses it: then each packet
// is written with write(2).
func (p *Plane) openRingWriter(dev tunio.PacketDevice) *tunio.RingWriter {
	if p.off.NoUring {
		return nil
	}
	w, err := tunio.NewRingWriter(dev)
	if err != nil {
		p.log.Debug("tun write through io_uring not enabled", "err", err)
		return nil
	}
	return w
}

// Send moderation (issue 14): a sender of datagrams paces them in bursts
// (iperf3 -u sends a millisecond's worth at once, as QUIC and media
// senders pace theirs), and the TUN reader, faster than the sender,
// emptied the queue every few datagrams: a park and a wake-up in the
// poller, a sendmmsg and a wake-up of the server per handful of
// datagrams, each dear on a paravirtualized machine. After a read that
// carried a bulk datagram the reader lingers txLinger and takes what came
// meanwhile in one pass of reads and one send (tunio.Loop), lingering
// again while that brings datagrams. A datagram arriving during a linger
// waits for its end: at most txLinger, far below a network's jitter.
// TCP is never held: it is clocked by its ACKs, and its segments come as
// super-packets anyway. docs/bench/upload.md has the figures (100 µs
// saved less than 500).
const (
	txLinger       = 500 * time.Microsecond
	txLingerMinLen = 1000 // bytes of an IP packet worth lingering for: bulk, not interactive
)

// bulkDatagrams says whether one of the device reads (virtio_net_hdr
// first) is a UDP datagram of at least txLingerMinLen bytes, or a USO
// super-packet of them.
func bulkDatagrams(rbuf []byte, offs, sizes []int) bool {
	for k, n := range sizes {
		if n < offload.HdrLen+txLingerMinLen {
			continue
		}
		r := rbuf[offs[k] : offs[k]+n]
		if gso := r[1]; gso != offload.GSONone && gso != offload.GSOUDPL4 {
			continue
		}
		if ipProto(r[offload.HdrLen:]) == unix.IPPROTO_UDP {
			return true
		}
	}
	return false
}

// ipProto is the transport protocol of an IP packet (IPv6: the first
// next header; extension headers count as not UDP), -1 if it is neither.
func ipProto(ip []byte) int {
	switch {
	case len(ip) >= 20 && ip[0]>>4 == 4:
		return int(ip[9])
	case len(ip) >= 40 && ip[0]>>4 == 6:
		return int(ip[6])
	}
	return -1
}

// tunSink writes decrypted packets to a device with a virtio_net_hdr,
// coalescing TCP segments; the socket reader flushes it after every
// batch it read.
type tunSink struct {
	p    *Plane
	co   *offload.Coalescer
	ring *tunio.RingWriter // where write queued packets since the last flush; nil: none
}

// newTunSink returns the sink; its coalescer (a 64 KiB buffer) comes with
// the first packet for a device with a virtio_net_hdr.
func newTunSink(p *Plane) *tunSink { return &tunSink{p: p} }

// ringWriteMax is the largest packet (virtio_net_hdr first) the socket
// reader writes to the device through io_uring: the pure ACKs of a TCP
// upload, several per socket read. Data goes with write(2): a TCP download
// through the ring, even with only its single segments there, measured
// slower through the 2.6 server (median 1.50x against 1.72x openvpn's;
// docs/bench/upload.md, "lead").
const ringWriteMax = 256

// write hands one finished packet (virtio_net_hdr first) to the device:
// a small one (an ACK) to the io_uring writer's batch, written at flush,
// anything larger (and anything without the ring) with write(2).
func (s *tunSink) write(b []byte) error {
	tw := s.p.tunW.Load()
	if tw == nil {
		return nil
	}
	if tw.ring != nil && len(b) <= ringWriteMax {
		s.ring = tw.ring
		n, err := tw.ring.Queue(b)
		s.countRing(n)
		return err
	}
	s.flushRing() // the packets queued before it go first, in order
	_, err := tw.w.Write(b)
	if err == nil {
		s.p.ctr.TunWrites.Add(1)
	}
	return err
}

// countRing counts n packets the io_uring writer wrote.
func (s *tunSink) countRing(n int) {
	if n == 0 {
		return
	}
	// The share first: a reader who saw the writes counted sees it too.
	if s.ring.Ringed() {
		s.p.ctr.TunRingWrites.Add(int64(n))
	}
	s.p.ctr.TunWrites.Add(int64(n))
}

// add queues one decrypted IP packet for the device.
func (s *tunSink) add(tw *tunWriter, p []byte) error {
	if tw.clamp != nil {
		tw.clamp(p)
	}
	if s.co == nil {
		s.co = offload.NewCoalescer(s.write)
	}
	return s.co.Add(p)
}

// flush writes what is queued: with the io_uring writer, the batch's
// small packets in one system call.
func (s *tunSink) flush() {
	if s.co != nil {
		if err := s.co.Flush(); err != nil {
			s.p.log.Debug("tun write failed", "err", err)
		}
	}
	s.flushRing()
}

// flushRing writes the io_uring writer's batch, if packets were queued.
func (s *tunSink) flushRing() {
	if s.ring == nil {
		return
	}
	n, err := s.ring.Flush()
	s.countRing(n)
	if err != nil {
		s.p.log.Debug("tun write failed", "err", err)
	}
	s.ring = nil
}
