package dataplane

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/netip"
	"sync/atomic"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/datachan"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/transport"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/wire"
)

// Slot is where a key sits in a Conn, as in the kernel's ovpn module: the
// primary key encrypts and decrypts, the secondary only decrypts (a key
// about to become primary, or the lame duck after a swap).
type Slot uint8

const (
	Primary   Slot = 0
	Secondary Slot = 1
)

// ConnConfig is what a Conn needs from its connection attempt.
type ConnConfig struct {
	Transport transport.Conn
	// Control is handed every packet that is not a data packet; pkt is the
	// read buffer, valid only until Control returns.
	Control func(pkt []byte)
	// Floated is called when a data packet authenticated by the key came
	// from a new server address, which the transport now follows (float).
	Floated func(from, to netip.AddrPort)
	// Decompress accepts compressed packets (allow-compression asym).
	Decompress bool
	// Log takes the connection's debug events; nil: the plane's logger.
	Log *slog.Logger
	// LastRecv is set to the time (unix nanos) of every data packet that
	// authenticates; the control session stores its own packets there
	// too. nil: the Conn's own.
	LastRecv *atomic.Int64
}

// Conn is the data plane of one connection attempt: its transport, the
// keys of both slots and the loop reading the transport.
type Conn struct {
	p   *Plane
	cfg ConnConfig
	tr  transport.Conn

	slots   [2]*datachan.Key // written by the control session only
	send    *sender          // the send side's buffers, from the first primary key on
	rx      atomic.Pointer[recvKeys]
	comp    atomic.Uint32 // Framing
	dropped atomic.Int64
}

// recvKeys are the keys a connection accepts, by key_id: the current one
// and, after a renegotiation, the lame duck.
type recvKeys [8]*datachan.Key

// NewConn plugs a connection's transport into the plane. Nothing is sent
// until a key is installed in the primary slot; nothing is read until
// ReadLoop runs.
func (p *Plane) NewConn(cfg ConnConfig) *Conn {
	c := &Conn{p: p, cfg: cfg, tr: cfg.Transport}
	if c.cfg.LastRecv == nil {
		c.cfg.LastRecv = new(atomic.Int64)
	}
	if c.cfg.Log == nil {
		c.cfg.Log = p.log
	}
	return c
}

// SetFraming sets the compression framing of data payloads (from the
// profile or the push); set it before installing the key it goes with.
func (c *Conn) SetFraming(f Framing) { c.comp.Store(uint32(f)) }

// InstallKey puts a key in a slot: it decrypts from now on and, in the
// primary slot, encrypts.
func (c *Conn) InstallKey(slot Slot, k *datachan.Key) error {
	if slot > Secondary {
		return fmt.Errorf("install key: no key slot %d", slot)
	}
	c.slots[slot] = k
	c.publish(slot == Primary)
	return nil
}

// SwapKeys makes the secondary key primary and the primary secondary.
func (c *Conn) SwapKeys() error {
	if c.slots[Secondary] == nil {
		return fmt.Errorf("swap keys: the secondary slot is empty")
	}
	c.slots[0], c.slots[1] = c.slots[1], c.slots[0]
	c.publish(true)
	return nil
}

// DeleteKey empties a slot.
func (c *Conn) DeleteKey(slot Slot) error {
	if slot > Secondary {
		return fmt.Errorf("delete key: no key slot %d", slot)
	}
	c.slots[slot] = nil
	c.publish(slot == Primary)
	return nil
}

// Key returns the installed key of a key_id, nil if it is in no slot.
func (c *Conn) Key(id uint8) *datachan.Key {
	for _, k := range c.slots {
		if k != nil && k.KeyID() == id {
			return k
		}
	}
	return nil
}

// RecvKey is the key the read loop opens packets of key_id id with, nil
// if it drops them.
func (c *Conn) RecvKey(id uint8) *datachan.Key {
	if rx := c.rx.Load(); rx != nil {
		return rx[id&wire.KeyIDMask]
	}
	return nil
}

// Dropped counts data packets that did not open or unframe.
func (c *Conn) Dropped() int64 { return c.dropped.Load() }

// publish hands the slots to the read loop (receive keys by key_id) and,
// when the primary changed, to the TUN reader (send key).
func (c *Conn) publish(primaryChanged bool) {
	var rx recvKeys
	for _, k := range []*datachan.Key{c.slots[1], c.slots[0]} {
		if k != nil {
			rx[k.KeyID()] = k
		}
	}
	c.rx.Store(&rx)
	if !primaryChanged {
		return
	}
	if k := c.slots[Primary]; k != nil {
		if c.send == nil {
			c.send = &sender{bw: newBatchWriter(c.tr, c.p.off)}
		}
		c.p.tx.Store(&txPath{sender: c.send, tr: c.tr, key: k, comp: Framing(c.comp.Load())})
	} else {
		c.p.tx.Store(nil)
	}
}

// ReadLoop reads every packet of the connection until the transport is
// closed and returns the read error: data packets are opened and written
// to the TUN device here, the others are handed to Control. It reads in
// batches (recvmmsg on a plain UDP transport): one syscall for every
// datagram that queued up while the previous batch was being decrypted.
// In parallel mode, batches are opened by workers and written to the TUN
// device in the order they were read (recv.go); ReadLoop stops those
// goroutines before it returns. One goroutine runs it; the caller owns
// that goroutine.
func (c *Conn) ReadLoop() error {
	rx := c.newRxState()
	b := transport.Batched(c.tr)
	// Float speaks of the last packet read: one at a time, inline.
	if c.p.workers > 1 && b.BatchSize() >= minParallel && rx.fl == nil {
		return c.readParallel(b, rx)
	}
	bufs, sizes := recvBuffers(b.BatchSize(), recvSlot), make([]int, b.BatchSize())
	for {
		rx.mod.before()
		n, err := b.ReadBatch(bufs, sizes)
		if err != nil {
			return err
		}
		cut, bytes := false, 0
		for i := range n {
			switch {
			case sizes[i] > len(bufs[i]):
				c.dropped.Add(1)
				cut = true
			case sizes[i] > 0:
				bytes += sizes[i]
				c.handleDatagram(bufs[i][:sizes[i]], rx)
			}
		}
		rx.mod.after(n, len(bufs), bytes)
		rx.sink.flush() // one device write per coalesced run
		if cut && len(bufs[len(bufs)-1]) < transport.MaxPacket {
			c.cfg.Log.Debug("datagram longer than its receive buffer dropped; the buffers grow to the largest packet")
			bufs = recvBuffers(len(bufs), transport.MaxPacket)
		}
	}
}

// recvSlot is the size of the receive buffers after the first: a packet
// of a 1500-byte MTU sealed (with CBC, HMAC and compression framing) is
// well under 2 KiB. Batches of 64 KiB buffers would hold 2 MiB per
// connection, resident once touched or zeroed, for datagrams that are
// never that long on a standard MTU. A longer one (a jumbo MTU) that
// lands in a later slot is cut and dropped, and the connection switches
// to MaxPacket buffers: one packet lost, once.
const recvSlot = 2 << 10

// recvBuffers returns n receive buffers: the first holds any packet
// (transport.MaxPacket), the others slot bytes each, in one allocation.
func recvBuffers(n, slot int) [][]byte {
	bufs := make([][]byte, n)
	bufs[0] = make([]byte, transport.MaxPacket)
	rest := make([]byte, (n-1)*slot)
	for i := 1; i < n; i++ {
		bufs[i] = rest[(i-1)*slot : i*slot : i*slot]
	}
	return bufs
}

// rxState is what the receive path keeps across packets.
type rxState struct {
	fl   *transport.Float // nil unless the transport follows a floating server
	dec  *decompressor    // nil: compressed packets are refused
	sink *tunSink         // for a device with a virtio_net_hdr
	mod  *moderator       // when to take the next read
}

func (c *Conn) newRxState() *rxState {
	rx := &rxState{sink: newTunSink(c.p), mod: newModerator(c.moderation(), c.p.now, c.p.modSleep)}
	rx.fl, _ = c.tr.(*transport.Float)
	if c.cfg.Decompress {
		rx.dec = &decompressor{count: &c.p.ctr.Decompressed}
	}
	return rx
}

// handleDatagram processes one received packet of the transport.
func (c *Conn) handleDatagram(pkt []byte, rx *rxState) {
	key := c.dataKey(pkt, rx)
	if key == nil {
		return
	}
	// Decrypted in place: the plaintext overwrites the ciphertext in the
	// read buffer (which has room for the tag behind it), no second buffer.
	plain, err := key.Open(pkt[:0], pkt)
	if err != nil {
		c.dropped.Add(1)
		return
	}
	c.deliver(plain, rx)
}

// dataKey counts a received packet and returns the key to open it with;
// nil for a packet that is not for the TUN device: a control packet
// (handed to Control), or data for no installed key.
func (c *Conn) dataKey(pkt []byte, rx *rxState) *datachan.Key {
	p := c.p
	p.ctr.BytesIn.Add(int64(len(pkt)))
	p.ctr.PktsIn.Add(1)
	op, keyID := wire.SplitHeader(pkt[0])
	if rx.fl != nil && !rx.fl.FromPeer() && !op.IsData() {
		return nil // from elsewhere and not authenticated
	}
	if !op.IsData() {
		if c.cfg.Control != nil {
			c.cfg.Control(pkt)
		}
		return nil
	}
	keys := c.rx.Load()
	if keys == nil {
		return nil
	}
	return keys[keyID]
}

// deliver unframes an opened payload and writes it to the TUN device
// (keepalive pings end here).
func (c *Conn) deliver(plain []byte, rx *rxState) {
	p := c.p
	fl := rx.fl
	var err error
	if fl != nil && !fl.FromPeer() {
		// Authenticated by the data key: the server moved (float).
		old, now := fl.Follow()
		if c.cfg.Floated != nil {
			c.cfg.Floated(old, now)
		}
	}
	if plain, err = Framing(c.comp.Load()).unframe(plain, rx.dec); err != nil {
		c.dropped.Add(1)
		c.cfg.Log.Debug("data packet dropped", "err", err)
		return
	}
	c.cfg.LastRecv.Store(p.now().UnixNano())
	if bytes.Equal(plain, datachan.PingPayload[:]) {
		return
	}
	tw := p.tunW.Load()
	if tw == nil || len(plain) == 0 {
		return
	}
	if tw.vnet {
		if err := rx.sink.add(tw, plain); err != nil {
			p.log.Debug("tun write failed", "err", err)
			return
		}
		p.ctr.TunBytesOut.Add(int64(len(plain)))
		p.ctr.TunPktsOut.Add(1)
		return
	}
	if tw.clamp != nil {
		tw.clamp(plain)
	}
	// Counted before the write, as the sink's packets are before its
	// flush: a reader who saw the packet arrive must see it counted.
	p.ctr.TunBytesOut.Add(int64(len(plain)))
	p.ctr.TunPktsOut.Add(1)
	if _, err := tw.w.Write(plain); err != nil {
		p.ctr.TunBytesOut.Add(-int64(len(plain)))
		p.ctr.TunPktsOut.Add(-1)
		p.log.Debug("tun write failed", "err", err)
		return
	}
	p.ctr.TunWrites.Add(1)
}
