// Package dataplane is the client's data plane: it moves IP packets in
// batches between the TUN device (tunio) and the transport (transport,
// udpbatch), sealing them with the data-channel keys (datachan) on the
// way out and opening them in place on the way in, with the compression
// framing the server expects and the TUN and UDP offloads (offload).
//
// A Plane lives for a whole session: it owns the TUN device and the
// goroutine reading it. Each connection attempt plugs its transport in as
// a Conn, installs its keys there (swapped on renegotiation) and runs the
// Conn's read loop; the control session drives all of it and the plane
// knows nothing of the control channel beyond handing its packets over.
// With Config.Parallel, batches are sealed and opened on worker goroutines
// while each session's packet order is kept (parallel.go). Steady-state
// sending and receiving allocate nothing per packet; the traffic counters
// of each direction sit on cache lines of their own.
package dataplane

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/datachan"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/transport"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/tunio"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/udpbatch"
)

// MaxTunPacket is the largest TUN packet the data path handles.
const MaxTunPacket = 65535

// Offloads is what the profile switched off (ovpn3go-offload NAME off).
type Offloads struct{ NoTUN, NoGSO, NoMmsg, NoRxMod, NoTxMod, NoUring bool }

// Config is what a Plane needs from its session.
type Config struct {
	Log *slog.Logger     // nil: discard
	Now func() time.Time // nil: time.Now
	// Counters receives the traffic counts; nil: the plane's own.
	Counters *Counters
	// LastSent is set to the time (unix nanos) of every data packet sent,
	// for the session's keepalive timer. nil: the plane's own.
	LastSent *atomic.Int64
	Offloads Offloads
	// Parallel seals and opens batches on GOMAXPROCS worker goroutines
	// per direction, keeping the packet order (parallel.go); with one P
	// everything stays inline.
	Parallel bool
}

// Plane owns the TUN device and its reader goroutine for a whole session;
// connection attempts plug their transport and send key in through a
// Conn.
type Plane struct {
	log *slog.Logger
	now func() time.Time
	ctr *Counters
	off Offloads

	// tun is owned by the session's control goroutine; the socket reader
	// of the current Conn writes it through tunW.
	tun   tunio.PacketDevice
	tunW  atomic.Pointer[tunWriter]
	tunWG sync.WaitGroup
	// tunRing reads a device with a virtio_net_hdr through io_uring
	// (nil: read(2)); CloseTun closes it after the device. tunRingW
	// writes it (nil: write(2)).
	tunRing  *tunio.RingReader
	tunRingW *tunio.RingWriter

	tx       atomic.Pointer[txPath] // nil while not connected: TUN packets are dropped
	lastSent *atomic.Int64          // unix nanos of the last data-channel packet sent

	// With workers > 1 sealing and opening go through pipelines. seq
	// orders every send while the TUN reader's pipeline (send) runs:
	// packet ids must reach the wire in the order they were taken.
	workers int
	seq     sync.Mutex
	send    *sendPipe // guarded by seq
	batches atomic.Int64

	// modSleep puts a moderated socket read off (moderate.go); nil: the
	// thread sleeps. Tests count the calls instead.
	modSleep func(time.Duration)
	// txSleep is the TUN reader's linger (offload.go); nil: tunio's
	// raw nanosleep. Tests count the calls instead.
	txSleep func(time.Duration)
}

// New returns a Plane without a TUN device.
func New(cfg Config) *Plane {
	p := &Plane{log: cfg.Log, now: cfg.Now, ctr: cfg.Counters, lastSent: cfg.LastSent, off: cfg.Offloads}
	if p.log == nil {
		p.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if p.now == nil {
		p.now = time.Now
	}
	if p.ctr == nil {
		p.ctr = new(Counters)
	}
	if p.lastSent == nil {
		p.lastSent = new(atomic.Int64)
	}
	if n := runtime.GOMAXPROCS(0); cfg.Parallel && n > 1 {
		p.workers = n
	}
	return p
}

// Counters are the plane's traffic counters.
func (p *Plane) Counters() *Counters { return p.ctr }

// Tun is the device StartTun was given, nil after CloseTun.
func (p *Plane) Tun() tunio.PacketDevice { return p.tun }

// SendKey is the key packets are sealed with, nil while nothing sends.
func (p *Plane) SendKey() *datachan.Key {
	if tx := p.tx.Load(); tx != nil {
		return tx.key
	}
	return nil
}

// ParallelBatches counts the batches sealed or opened by worker
// goroutines so far.
func (p *Plane) ParallelBatches() int64 { return p.batches.Load() }

// StopSending drops TUN packets until a Conn installs a primary key.
func (p *Plane) StopSending() { p.tx.Store(nil) }

// txPath is the send side of one connection with one key: the socket,
// the key packets are sealed with and the compression framing. The
// connection's sender (its mutex and buffers) outlives key changes.
type txPath struct {
	*sender
	tr   transport.Conn
	key  *datachan.Key
	comp Framing
}

// sender is what every txPath of one connection shares: its mutex
// serialises Seal (one sender at a time per key) and the use of the
// buffers between the TUN reader and pings, also across a key change, so
// a renegotiation allocates no new buffers.
type sender struct {
	mu  sync.Mutex
	buf []byte           // sealed packet, without bw; grown to the largest yet
	bw  *udpbatch.Writer // nil: one WritePacket per packet
}

// sealBuf returns buf with room for n bytes: sized by the packets the
// path really carries (MTU-sized), not the 64 KiB a packet may have.
func (s *sender) sealBuf(n int) []byte {
	if cap(s.buf) < n {
		s.buf = make([]byte, 0, n)
	}
	return s.buf[:0]
}

// Send seals a payload the plane did not read from the TUN device
// (keepalive pings, OCC messages) and sends it; nothing is sent while no
// key is installed.
func (p *Plane) Send(plain []byte) error {
	var buf [frameHeadroom + 64 + frameTailroom]byte
	if len(plain) > 64 {
		return fmt.Errorf("internal data message of %d bytes", len(plain))
	}
	n := copy(buf[frameHeadroom:], plain)
	p.seq.Lock()
	defer p.seq.Unlock()
	if p.send != nil {
		p.send.q.drain() // behind the packets already numbered
	}
	return p.sendFramed(buf[:], frameHeadroom, n)
}

// SendPing sends a keepalive ping.
func (p *Plane) SendPing() error { return p.Send(datachan.PingPayload[:]) }

// sendFramed seals the payload buf[off:off+n], which has frameHeadroom
// bytes before it and frameTailroom after it for the compression framing
// (which may rewrite the payload in place).
func (p *Plane) sendFramed(buf []byte, off, n int) error {
	tx := p.tx.Load()
	if tx == nil {
		return nil
	}
	tx.mu.Lock()
	n, err := tx.sealQueue(buf, off, n)
	if err == nil {
		err = tx.flush()
	}
	tx.mu.Unlock()
	if err != nil {
		return err
	}
	p.countSent(1, int64(n))
	return nil
}

// Clamped is a TUN device that clamps the TCP MSS of every packet in its
// Read and Write. With a virtio_net_hdr it cannot (super-packets,
// headers), so the plane reads and writes the device under it and
// applies the clamp to each IP packet itself.
type Clamped interface {
	Unclamped() (dev tunio.PacketDevice, clamp func(ipPacket []byte))
}

// StartTun takes the device and starts the goroutine that reads it, in
// batches where the device batches (tunio), and sends each packet
// through the current Conn. It stops when CloseTun closes the device.
func (p *Plane) StartTun(tun tunio.PacketDevice) {
	p.tun = tun
	var sp *sendPipe
	if p.workers > 1 {
		sp = newSendPipe(p, p.workers)
		p.seq.Lock()
		p.send = sp
		p.seq.Unlock()
	}
	dev := tun
	var clamp func([]byte)
	if c, ok := tun.(Clamped); ok {
		dev, clamp = c.Unclamped()
	}
	vnet, err := tunVnet(dev, !p.off.NoTUN)
	if err != nil {
		p.log.Debug("tun offload not enabled", "err", err)
	}
	if vnet {
		p.tunRingW = p.openRingWriter(dev)
		p.tunW.Store(&tunWriter{w: tunio.NewWriter(dev), ring: p.tunRingW, vnet: true, clamp: clamp})
		p.tunRing = p.openRing(dev)
		ring := p.tunRing
		p.tunWG.Add(1)
		go func() {
			defer p.tunWG.Done()
			p.readVnet(dev, ring, clamp, sp)
		}()
		return
	}
	// Packets are read from and written to the device under the clamp
	// (which Batched can then drain per wake-up, and NewWriter write with
	// raw system calls) and clamped here.
	p.tunW.Store(&tunWriter{w: tunio.NewWriter(dev), clamp: clamp})
	p.tunWG.Add(1)
	go func() {
		defer p.tunWG.Done()
		p.readTun(tunio.Batched(dev), clamp, sp)
	}()
}

// readTun is the TUN reader's loop for a device without a virtio_net_hdr:
// inline, a batch's packets are sealed under one lock and leave in one
// flush of the batch writer.
func (p *Plane) readTun(dev tunio.Device, clamp func([]byte), sp *sendPipe) {
	bufs, sizes := make([][]byte, dev.BatchSize()), make([]int, dev.BatchSize())
	for i := range bufs {
		// Packets are read at tunio.Headroom; the framing's tailroom
		// is behind len, inside cap.
		bufs[i] = make([]byte, tunio.Headroom+MaxTunPacket+frameTailroom)[:tunio.Headroom+MaxTunPacket]
	}
	for {
		k, err := dev.ReadBatch(bufs, sizes, tunio.Headroom)
		if err != nil {
			if !errors.Is(err, os.ErrClosed) {
				p.log.Debug("tun read ended", "err", err)
			}
			return
		}
		p.ctr.TunReads.Add(int64(k)) // one read(2) per packet
		p.countReads(sizes[:k])
		if clamp != nil {
			for i, n := range sizes[:k] {
				clamp(bufs[i][tunio.Headroom : tunio.Headroom+n])
			}
		}
		if sp != nil {
			p.seq.Lock()
			if tx := p.tx.Load(); tx != nil && parallelOK(tx, k, sum(sizes[:k]), slices.Max(sizes[:k])) {
				if err := p.sendPacketsParallel(sp, tx, bufs[:k], sizes[:k], tunio.Headroom); err != nil {
					p.log.Debug("data send failed", "err", err)
				}
				p.seq.Unlock()
				continue
			}
			sp.q.drain() // inline, behind what is in flight
		}
		if err := p.sendInline(bufs[:k], sizes[:k]); err != nil {
			p.log.Debug("data send failed", "err", err)
		}
		if sp != nil {
			p.seq.Unlock()
		}
	}
}

// sendInline seals the packets bufs[i][tunio.Headroom:][:sizes[i]] under
// one lock and sends them with one flush; without a key they are dropped.
func (p *Plane) sendInline(bufs [][]byte, sizes []int) error {
	tx := p.tx.Load()
	if tx == nil {
		return nil
	}
	var b batch
	var err error
	tx.mu.Lock()
	for i, n := range sizes {
		if n > 0 {
			if err = b.seal(tx, bufs[i], tunio.Headroom, n); err != nil {
				break
			}
		}
	}
	return errors.Join(err, p.endBatch(tx, &b))
}

// The framing's headroom is part of the TUN read's.
var _ [tunio.Headroom - frameHeadroom]struct{}

// CloseTun stops sending, closes the device and waits for its reader.
func (p *Plane) CloseTun() {
	if p.tun == nil {
		return
	}
	p.tx.Store(nil)
	p.tunW.Store(nil)
	if err := p.tun.Close(); err != nil {
		p.log.Debug("tun close", "err", err)
	}
	p.tunWG.Wait()
	if p.tunRing != nil {
		// The reader ended with the device; this frees an unused ring.
		if err := p.tunRing.Close(); err != nil {
			p.log.Debug("tun ring close", "err", err)
		}
		p.tunRing = nil
	}
	if p.tunRingW != nil {
		// A socket reader that loaded the writer before tunW was cleared
		// finds it closed.
		if err := p.tunRingW.Close(); err != nil {
			p.log.Debug("tun ring writer close", "err", err)
		}
		p.tunRingW = nil
	}
	p.seq.Lock()
	if p.send != nil {
		p.send.q.stop() // writes what the reader queued
		p.send = nil
	}
	p.seq.Unlock()
	p.tun = nil
}

// tunWriter is the device's writer behind an atomic pointer. With vnet,
// packets carry a virtio_net_hdr and go through the socket reader's
// tunSink; either way the MSS clamp is applied before the write.
type tunWriter struct {
	w     tunio.Writer
	ring  *tunio.RingWriter // with vnet: batches through io_uring (nil: w)
	vnet  bool
	clamp func([]byte) // nil: none
}
