package offload

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// MaxSuper is the largest packet a Coalescer writes (virtio_net_hdr
// included): an IP packet's length fields cap it at 64 KiB.
const MaxSuper = HdrLen + 65535

// MaxFlows is how many TCP flows a Coalescer builds super-packets for at
// once: the downloads of a busy tunnel interleave their segments in a
// batch, and each flow's run is merged as GRO does, not only the
// segments that happen to follow one another.
const MaxFlows = 4

// Coalescer builds what is written to a TUN device with IFF_VNET_HDR from
// the decrypted IP packets of the tunnel: in-order TCP segments of one
// flow (same addresses, ports, ack, options, full-sized but for the last)
// are merged into one TSO super-packet, as GRO does, so the device takes
// them in one write; every other packet is written alone behind a plain
// header. Up to MaxFlows flows have a super-packet pending at once, so a
// segment joins its own flow's even when other flows' segments came in
// between. Each flow's packets are written in their order; packets of
// different flows may pass one another (a non-TCP packet goes out at
// once, before other flows' pending super-packets). Packets are copied:
// the caller may reuse a packet's buffer as soon as Add returns. Not safe
// for concurrent use.
type Coalescer struct {
	write func([]byte) error
	// slots[0] exists from the start; the others (64 KiB each) are made
	// only when that many flows are pending at once.
	slots []*slot
	clock uint64 // orders the pending packets by when they were started
}

// slot holds one flow's pending packet.
type slot struct {
	buf   []byte // header + the packet under construction
	n     int    // bytes of buf in use; 0: nothing pending
	key   [36]byte
	klen  int
	start uint64 // Coalescer.clock when the packet was started

	// The pending packet can take more segments only while open.
	open    bool
	segs    int
	v6      bool
	l4      int    // offset of the TCP header in the IP packet
	hlen    int    // IP + TCP header length
	mss     int    // payload of the first segment: every segment's but the last
	nextSeq uint32 // sequence number the next segment must have
}

// NewCoalescer returns a Coalescer handing each finished packet
// (virtio_net_hdr first) to write.
func NewCoalescer(write func([]byte) error) *Coalescer {
	c := &Coalescer{write: write, slots: make([]*slot, 1, MaxFlows)}
	c.slots[0] = &slot{buf: make([]byte, MaxSuper)}
	return c
}

// Flow kinds of flowKey.
const (
	flowTCP     = iota // a TCP segment: its key says which flow
	flowOther          // not TCP: never part of a pending super-packet
	flowUnknown        // no telling (fragment, extension header, garbage)
)

// flowKey reads which flow p belongs to: for TCP the addresses and ports,
// written to key, whose used length it returns.
func flowKey(p []byte, key *[36]byte) (kind, klen int) {
	if len(p) < ipv4HdrMin {
		return flowUnknown, 0
	}
	var l4 int
	switch p[0] >> 4 {
	case 4:
		if p[9] != protoTCP {
			return flowOther, 0
		}
		if binary.BigEndian.Uint16(p[6:])&0x3fff != 0 {
			return flowUnknown, 0 // a fragment
		}
		l4 = int(p[0]&0x0f) * 4
		klen = copy(key[:], p[12:20])
	case 6:
		if len(p) < ipv6HdrLen {
			return flowUnknown, 0
		}
		switch p[6] {
		case protoTCP:
		case protoUDP, 58: // ICMPv6
			return flowOther, 0
		default:
			return flowUnknown, 0
		}
		l4 = ipv6HdrLen
		klen = copy(key[:], p[8:40])
	default:
		return flowUnknown, 0
	}
	if l4 < ipv4HdrMin || len(p) < l4+4 {
		return flowUnknown, 0
	}
	klen += copy(key[klen:], p[l4:l4+4])
	return flowTCP, klen
}

// Add queues one IP packet, writing out what it cannot join.
func (c *Coalescer) Add(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	if len(p) > MaxSuper-HdrLen {
		return fmt.Errorf("coalesce: packet of %d bytes too long", len(p))
	}
	var key [36]byte
	kind, klen := flowKey(p, &key)
	switch kind {
	case flowOther:
		return c.writeAlone(p)
	case flowUnknown:
		// It might belong to any pending flow: they go first.
		if err := c.Flush(); err != nil {
			return err
		}
		return c.writeAlone(p)
	}
	seg, ok := parseTCP(p)
	var own *slot
	for _, s := range c.slots {
		if s.n > 0 && s.klen == klen && bytes.Equal(s.key[:klen], key[:klen]) {
			own = s
			break
		}
	}
	if own != nil {
		if ok && own.open && own.join(p, seg) {
			return nil
		}
		// It cannot join: what the flow has pending goes first.
		if err := c.flushSlot(own); err != nil {
			return err
		}
	}
	if !ok || seg.flags&tcpFlagPSH != 0 {
		return c.writeAlone(p) // nothing may join it
	}
	s := own
	if s == nil {
		var err error
		if s, err = c.emptySlot(); err != nil {
			return err
		}
	}
	s.n = HdrLen + copy(s.buf[HdrLen:], p)
	s.key, s.klen = key, klen
	c.clock++
	s.start = c.clock
	s.begin(seg)
	return nil
}

// emptySlot returns a slot for a new flow's packet: an empty one, else a
// new one while fewer than MaxFlows exist, else the oldest, written out.
func (c *Coalescer) emptySlot() (*slot, error) {
	var oldest *slot
	for _, s := range c.slots {
		if s.n == 0 {
			return s, nil
		}
		if oldest == nil || s.start < oldest.start {
			oldest = s
		}
	}
	if len(c.slots) < MaxFlows {
		s := &slot{buf: make([]byte, MaxSuper)}
		c.slots = append(c.slots, s)
		return s, nil
	}
	return oldest, c.flushSlot(oldest)
}

// writeAlone writes p behind a plain header at once, built in the free
// tail of the emptiest slot's buffer (writes do not keep the buffer), so
// a lone packet neither costs a buffer nor ends another flow's run
// unless every buffer is nearly full.
func (c *Coalescer) writeAlone(p []byte) error {
	s := c.slots[0]
	for _, t := range c.slots[1:] {
		if t.n < s.n {
			s = t
		}
	}
	if len(s.buf)-s.n < HdrLen+len(p) {
		if err := c.flushSlot(s); err != nil {
			return err
		}
	}
	out := s.buf[s.n : s.n+HdrLen+copy(s.buf[s.n+HdrLen:], p)]
	PutPlain(out)
	return c.write(out)
}

// Flush writes every pending packet, oldest first. Call it at the end of
// every batch so nothing waits for a packet that may never come.
func (c *Coalescer) Flush() error {
	var first error
	for {
		var oldest *slot
		for _, s := range c.slots {
			if s.n > 0 && (oldest == nil || s.start < oldest.start) {
				oldest = s
			}
		}
		if oldest == nil {
			return first
		}
		if err := c.flushSlot(oldest); err != nil && first == nil {
			first = err
		}
	}
}

// flushSlot writes s's pending packet, if any, and empties s.
func (c *Coalescer) flushSlot(s *slot) error {
	if s.n == 0 {
		return nil
	}
	out := s.buf[:s.n]
	s.n, s.open, s.klen = 0, false, 0
	if s.segs == 1 {
		PutPlain(out)
		return c.write(out)
	}
	p := out[HdrLen:]
	if s.v6 {
		binary.BigEndian.PutUint16(p[4:], uint16(len(p)-ipv6HdrLen))
	} else {
		binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
		ipv4HeaderChecksum(p[:s.l4])
	}
	// A partial checksum: the kernel adds the sum over the TCP segment to
	// the pseudo-header sum left in the field.
	l4len := len(p) - s.l4
	binary.BigEndian.PutUint16(p[s.l4+16:], fold(pseudoSum(p, s.v6, protoTCP, l4len)))
	h := Hdr{Flags: FlagNeedsCsum, GSOType: GSOTCPv4, HdrLen: uint16(s.hlen), GSOSize: uint16(s.mss),
		CsumStart: uint16(s.l4), CsumOffset: 16}
	if s.v6 {
		h.GSOType = GSOTCPv6
	}
	h.Encode(out)
	return c.write(out)
}

// tcpSeg is what coalescing needs from one packet.
type tcpSeg struct {
	v6      bool
	l4      int // TCP header offset
	hlen    int // IP + TCP header length
	payload int
	seq     uint32
	flags   uint8
}

// parseTCP says whether p is a TCP segment that may be merged: a sound
// IPv4 header without options or fragmentation or an IPv6 header followed
// directly by TCP, lengths that match the packet, only ACK (and PSH) set,
// a payload, and a correct TCP checksum (the merged packet's checksum is
// recomputed by the kernel, so a corrupt segment must not be hidden in it).
func parseTCP(p []byte) (s tcpSeg, ok bool) {
	if len(p) < ipv4HdrMin {
		return s, false
	}
	switch p[0] >> 4 {
	case 4:
		if p[0]&0x0f != 5 || p[9] != protoTCP || int(binary.BigEndian.Uint16(p[2:])) != len(p) ||
			p[6]&0x3f != 0 || p[7] != 0 || !ipv4HeaderValid(p[:ipv4HdrMin]) {
			return s, false
		}
		s.l4 = ipv4HdrMin
	case 6:
		if len(p) < ipv6HdrLen || p[6] != protoTCP || int(binary.BigEndian.Uint16(p[4:]))+ipv6HdrLen != len(p) {
			return s, false
		}
		s.v6, s.l4 = true, ipv6HdrLen
	default:
		return s, false
	}
	if len(p) < s.l4+tcpHdrMin {
		return s, false
	}
	th := int(p[s.l4+12]>>4) * 4
	s.hlen = s.l4 + th
	if th < tcpHdrMin || len(p) <= s.hlen {
		return s, false
	}
	s.flags = p[s.l4+13]
	if s.flags&^(tcpFlagACK|tcpFlagPSH) != 0 || s.flags&tcpFlagACK == 0 {
		return s, false
	}
	if fold(sum(p[s.l4:], pseudoSum(p, s.v6, protoTCP, len(p)-s.l4))) != 0xffff {
		return s, false
	}
	s.payload = len(p) - s.hlen
	s.seq = binary.BigEndian.Uint32(p[s.l4+4:])
	return s, true
}

// begin makes the just-copied segment the head of a super-packet.
func (s *slot) begin(seg tcpSeg) {
	s.segs, s.open = 1, true
	s.v6, s.l4, s.hlen, s.mss = seg.v6, seg.l4, seg.hlen, seg.payload
	s.nextSeq = seg.seq + uint32(seg.payload)
}

// join appends p's payload (seg is its parse) to the pending
// super-packet if p continues it.
func (s *slot) join(p []byte, seg tcpSeg) bool {
	if seg.v6 != s.v6 || seg.hlen != s.hlen || seg.seq != s.nextSeq || seg.payload > s.mss ||
		s.n+seg.payload > len(s.buf) {
		return false
	}
	head := s.buf[HdrLen:s.n]
	if s.v6 {
		// Version, traffic class, flow label; next header, hop limit,
		// addresses.
		if !bytes.Equal(head[0:4], p[0:4]) || !bytes.Equal(head[6:40], p[6:40]) {
			return false
		}
	} else if head[1] != p[1] || head[6] != p[6] || head[8] != p[8] || !bytes.Equal(head[12:20], p[12:20]) {
		return false // TOS, DF, TTL, addresses
	}
	ht, pt := head[s.l4:s.hlen], p[s.l4:s.hlen]
	// Ports, ack, data offset, then options; the flags were checked by
	// parseTCP, the window is taken from the newest segment.
	if !bytes.Equal(ht[0:4], pt[0:4]) || !bytes.Equal(ht[8:13], pt[8:13]) || !bytes.Equal(ht[20:], pt[20:]) {
		return false
	}
	s.n += copy(s.buf[s.n:], p[s.hlen:])
	s.segs++
	s.nextSeq += uint32(seg.payload)
	copy(ht[14:16], pt[14:16])
	if seg.flags&tcpFlagPSH != 0 {
		ht[13] |= tcpFlagPSH
		s.open = false
	}
	if seg.payload < s.mss {
		s.open = false // a short segment ends the run
	}
	return true
}
