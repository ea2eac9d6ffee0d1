package offload

import (
	"encoding/binary"
	"fmt"
)

// Segmenter turns one packet read from a TUN device with IFF_VNET_HDR
// (header included) into the IP packets the tunnel carries: a TSO or USO
// super-packet becomes MSS-sized packets with their own IP and transport
// headers and checksums; a plain packet with a partial checksum gets it
// completed. A Segmenter is reused across packets and never allocates.
type Segmenter struct {
	pkt     []byte // the IP packet (header stripped)
	hdr     Hdr
	v6      bool
	l4      int // offset of the transport header
	hlen    int // IP + transport header length
	seg     int // payload bytes per segment
	off     int // payload bytes already emitted
	i       int // index of the next segment
	gso     uint8
	partial bool // a non-GSO packet whose checksum must be completed
	done    bool
}

// Reset starts on b, a packet as read from the device (virtio_net_hdr
// first). It checks everything Next relies on, so Next cannot fail.
func (s *Segmenter) Reset(b []byte) error {
	*s = Segmenter{}
	if err := s.hdr.Decode(b); err != nil {
		return err
	}
	s.pkt = b[HdrLen:]
	s.gso = s.hdr.GSOType &^ GSOECN
	if s.gso == GSONone {
		if s.hdr.Flags&FlagNeedsCsum != 0 {
			cs, co := int(s.hdr.CsumStart), int(s.hdr.CsumOffset)
			if cs+co+2 > len(s.pkt) {
				return fmt.Errorf("virtio_net_hdr: checksum at %d+%d outside a %d-byte packet", cs, co, len(s.pkt))
			}
			s.partial = true
		}
		return nil
	}
	if s.hdr.GSOSize == 0 {
		return fmt.Errorf("virtio_net_hdr: GSO type %d with segment size 0", s.gso)
	}
	if len(s.pkt) < 1 {
		return errShort
	}
	ver := s.pkt[0] >> 4
	var proto uint8
	switch ver {
	case 4:
		if len(s.pkt) < ipv4HdrMin {
			return errShort
		}
		s.l4 = int(s.pkt[0]&0x0f) * 4
		if s.l4 < ipv4HdrMin || len(s.pkt) < s.l4 {
			return fmt.Errorf("IPv4 header length %d invalid", s.l4)
		}
		if s.pkt[6]&0x3f != 0 || s.pkt[7] != 0 {
			return fmt.Errorf("GSO packet is an IPv4 fragment")
		}
		proto = s.pkt[9]
	case 6:
		if len(s.pkt) < ipv6HdrLen {
			return errShort
		}
		s.v6, s.l4, proto = true, ipv6HdrLen, s.pkt[6]
	default:
		return fmt.Errorf("GSO packet with IP version %d", ver)
	}
	switch s.gso {
	case GSOTCPv4, GSOTCPv6:
		if (s.gso == GSOTCPv6) != s.v6 || proto != protoTCP {
			return fmt.Errorf("GSO type %d does not match IPv%d protocol %d", s.gso, ver, proto)
		}
		if len(s.pkt) < s.l4+tcpHdrMin {
			return errShort
		}
		th := int(s.pkt[s.l4+12]>>4) * 4
		if th < tcpHdrMin || len(s.pkt) < s.l4+th {
			return fmt.Errorf("TCP header length %d invalid", th)
		}
		s.hlen = s.l4 + th
	case GSOUDPL4:
		if proto != protoUDP {
			return fmt.Errorf("UDP GSO packet of IP protocol %d", proto)
		}
		if len(s.pkt) < s.l4+udpHdrLen {
			return errShort
		}
		s.hlen = s.l4 + udpHdrLen
	default:
		return fmt.Errorf("unsupported GSO type %d", s.gso)
	}
	s.seg = int(s.hdr.GSOSize)
	if s.hlen+s.seg > 65535 {
		return fmt.Errorf("GSO segment size %d too large", s.seg)
	}
	return nil
}

// Count is how many packets Next will produce in all.
func (s *Segmenter) Count() int {
	if s.gso == GSONone {
		return 1
	}
	n := (len(s.pkt) - s.hlen + s.seg - 1) / s.seg
	return max(n, 1)
}

// Len is how many bytes the packets Next will produce have in all: the
// payload once and the headers once per packet.
func (s *Segmenter) Len() int {
	if s.gso == GSONone {
		return len(s.pkt)
	}
	return len(s.pkt) + (s.Count()-1)*s.hlen
}

// MaxLen is the largest packet Next will produce: the size dst must have.
func (s *Segmenter) MaxLen() int {
	if s.gso == GSONone {
		return len(s.pkt)
	}
	return min(len(s.pkt), s.hlen+s.seg)
}

// Next writes the next IP packet into dst (at least MaxLen bytes) and
// returns its length; ok is false when there is none left.
func (s *Segmenter) Next(dst []byte) (n int, ok bool) {
	if s.done {
		return 0, false
	}
	if s.gso == GSONone {
		s.done = true
		n = copy(dst, s.pkt)
		if s.partial {
			completeChecksum(dst[:n], int(s.hdr.CsumStart), int(s.hdr.CsumOffset))
		}
		return n, true
	}
	payload := s.pkt[s.hlen:]
	end := min(s.off+s.seg, len(payload))
	last := end == len(payload)
	copy(dst, s.pkt[:s.hlen])
	n = s.hlen + copy(dst[s.hlen:], payload[s.off:end])
	p := dst[:n]
	if s.v6 {
		binary.BigEndian.PutUint16(p[4:], uint16(n-ipv6HdrLen))
	} else {
		binary.BigEndian.PutUint16(p[2:], uint16(n))
		binary.BigEndian.PutUint16(p[4:], binary.BigEndian.Uint16(s.pkt[4:])+uint16(s.i))
		ipv4HeaderChecksum(p[:s.l4])
	}
	l4 := p[s.l4:]
	var proto uint8 = protoTCP
	csumAt := 16
	if s.gso == GSOUDPL4 {
		proto, csumAt = protoUDP, 6
		binary.BigEndian.PutUint16(l4[4:], uint16(len(l4)))
	} else {
		seq := binary.BigEndian.Uint32(s.pkt[s.l4+4:]) + uint32(s.off)
		binary.BigEndian.PutUint32(l4[4:], seq)
		if !last {
			l4[13] &^= tcpFlagFIN | tcpFlagPSH
		}
		if s.i > 0 {
			l4[13] &^= tcpFlagCWR
		}
	}
	l4[csumAt], l4[csumAt+1] = 0, 0
	cs := ^fold(sum(l4, pseudoSum(p, s.v6, proto, len(l4))))
	if proto == protoUDP && cs == 0 {
		cs = 0xffff
	}
	binary.BigEndian.PutUint16(l4[csumAt:], cs)
	s.off = end
	s.i++
	s.done = last
	return n, true
}

// completeChecksum finishes a partial checksum: the field holds the
// pseudo-header sum, the rest is the sum from start on.
func completeChecksum(p []byte, start, offset int) {
	at := start + offset
	cs := ^fold(sum(p[start:], 0))
	if cs == 0 && offset == 6 { // UDP: zero means "no checksum"
		cs = 0xffff
	}
	binary.BigEndian.PutUint16(p[at:], cs)
}
