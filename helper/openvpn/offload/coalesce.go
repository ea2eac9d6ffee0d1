package offload

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// MaxSuper is the largest packet a Coalescer writes (virtio_net_hdr
// included): an IP packet's length fields cap it at 64 KiB.
const MaxSuper = HdrLen + 65535

// Coalescer builds what is written to a TUN device with IFF_VNET_HDR from
// the decrypted IP packets of the tunnel, in their order: consecutive
// in-order TCP segments of one flow (same addresses, ports, ack, options,
// full-sized but for the last) are merged into one TSO super-packet, as
// GRO does, so the device takes them in one write; every other packet is
// written alone behind a plain header. Packets are copied: the caller may
// reuse a packet's buffer as soon as Add returns. Not safe for concurrent
// use.
type Coalescer struct {
	write func([]byte) error
	buf   []byte // header + the packet under construction
	n     int    // bytes of buf in use; 0: nothing pending

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
	return &Coalescer{write: write, buf: make([]byte, MaxSuper)}
}

// Add queues one IP packet, writing out what it cannot join.
func (c *Coalescer) Add(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	if c.n > 0 && c.open && c.join(p) {
		return nil
	}
	if err := c.Flush(); err != nil {
		return err
	}
	if len(p) > len(c.buf)-HdrLen {
		return fmt.Errorf("coalesce: packet of %d bytes too long", len(p))
	}
	c.n = HdrLen + copy(c.buf[HdrLen:], p)
	c.segs = 1
	c.start(p)
	return nil
}

// Flush writes the pending packet, if any. Call it at the end of every
// batch so nothing waits for a packet that may never come.
func (c *Coalescer) Flush() error {
	if c.n == 0 {
		return nil
	}
	out := c.buf[:c.n]
	c.n, c.open = 0, false
	if c.segs == 1 {
		PutPlain(out)
		return c.write(out)
	}
	p := out[HdrLen:]
	if c.v6 {
		binary.BigEndian.PutUint16(p[4:], uint16(len(p)-ipv6HdrLen))
	} else {
		binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
		ipv4HeaderChecksum(p[:c.l4])
	}
	// A partial checksum: the kernel adds the sum over the TCP segment to
	// the pseudo-header sum left in the field.
	l4len := len(p) - c.l4
	binary.BigEndian.PutUint16(p[c.l4+16:], fold(pseudoSum(p, c.v6, protoTCP, l4len)))
	h := Hdr{Flags: FlagNeedsCsum, GSOType: GSOTCPv4, HdrLen: uint16(c.hlen), GSOSize: uint16(c.mss),
		CsumStart: uint16(c.l4), CsumOffset: 16}
	if c.v6 {
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

// start makes the just-copied packet the head of a possible super-packet.
func (c *Coalescer) start(p []byte) {
	s, ok := parseTCP(p)
	if !ok {
		return
	}
	c.open = s.flags&tcpFlagPSH == 0
	c.v6, c.l4, c.hlen, c.mss = s.v6, s.l4, s.hlen, s.payload
	c.nextSeq = s.seq + uint32(s.payload)
}

// join appends p's payload to the pending super-packet if p continues it.
func (c *Coalescer) join(p []byte) bool {
	s, ok := parseTCP(p)
	if !ok || s.v6 != c.v6 || s.hlen != c.hlen || s.seq != c.nextSeq || s.payload > c.mss ||
		c.n+s.payload > len(c.buf) {
		return false
	}
	head := c.buf[HdrLen:c.n]
	if c.v6 {
		// Version, traffic class, flow label; next header, hop limit,
		// addresses.
		if !bytes.Equal(head[0:4], p[0:4]) || !bytes.Equal(head[6:40], p[6:40]) {
			return false
		}
	} else if head[1] != p[1] || head[6] != p[6] || head[8] != p[8] || !bytes.Equal(head[12:20], p[12:20]) {
		return false // TOS, DF, TTL, addresses
	}
	ht, pt := head[c.l4:c.hlen], p[c.l4:c.hlen]
	// Ports, ack, data offset, then options; the flags were checked by
	// parseTCP, the window is taken from the newest segment.
	if !bytes.Equal(ht[0:4], pt[0:4]) || !bytes.Equal(ht[8:13], pt[8:13]) || !bytes.Equal(ht[20:], pt[20:]) {
		return false
	}
	c.n += copy(c.buf[c.n:], p[c.hlen:])
	c.segs++
	c.nextSeq += uint32(s.payload)
	copy(ht[14:16], pt[14:16])
	if s.flags&tcpFlagPSH != 0 {
		ht[13] |= tcpFlagPSH
		c.open = false
	}
	if s.payload < c.mss {
		c.open = false // a short segment ends the run
	}
	return true
}
