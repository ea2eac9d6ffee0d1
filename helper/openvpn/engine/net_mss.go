package engine

import (
	"context"
	"encoding/binary"
	"math/bits"
	"sync/atomic"

	"github.com/ovpn3go/ovpn3go/helper/netconf"
)

// mssfix: TCP connections through the tunnel are told (in the MSS option
// of their SYN and SYN-ACK) to send segments small enough that the
// encrypted packet still fits the path, so they never depend on
// fragmentation or PMTU discovery across the VPN. Both directions are
// clamped, as OpenVPN does.

// dataOverheadAEAD is what the data channel adds to a tunnelled packet:
// opcode/key id and peer id (4, DATA_V2), packet id (4) and the AEAD tag
// (16). DATA_V1 is 3 bytes shorter; the larger value keeps the clamp safe.
const dataOverheadAEAD = 4 + 4 + 16

// mssLimit is the largest MSS for a TCP connection inside the tunnel.
// mssfix is the profile's value; with mtuMode ("mssfix N mtu", the 2.6
// default) it counts the whole outer IP packet, otherwise the outer UDP/TCP
// payload. innerV6 selects the tunnelled IP header size. It returns 0 when
// no clamping applies.
func mssLimit(mssfix int, mtuMode, outerV6, overTCP, innerV6 bool) int {
	if mssfix <= 0 {
		return 0
	}
	n := mssfix
	if mtuMode {
		n -= 20 // outer IPv4 header
		if outerV6 {
			n -= 20
		}
		if overTCP {
			n -= 20
		} else {
			n -= 8
		}
	}
	n -= dataOverheadAEAD
	if overTCP {
		n -= 2 // packet length prefix
	}
	n -= 20 + 20 // inner IPv4 + TCP headers
	if innerV6 {
		n -= 20
	}
	// Never announce less than the minimum IPv4 hosts must accept.
	return max(n, 536-20)
}

// clampMSS lowers the MSS option of a TCP SYN (or SYN-ACK) in the IPv4 or
// IPv6 packet pkt to limit4 or limit6 (0: leave alone), fixing the TCP
// checksum, and reports whether it changed the packet. Anything that is
// not a well-formed unfragmented TCP SYN is left untouched.
func clampMSS(pkt []byte, limit4, limit6 int) bool {
	if len(pkt) < 1 {
		return false
	}
	var tcp []byte
	var limit int
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) < 20 || limit4 <= 0 {
			return false
		}
		ihl := int(pkt[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(pkt[2:4]))
		if pkt[9] != 6 || ihl < 20 || total > len(pkt) || total < ihl {
			return false
		}
		// Fragment offset non-zero: no TCP header here.
		if binary.BigEndian.Uint16(pkt[6:8])&0x1fff != 0 {
			return false
		}
		tcp, limit = pkt[ihl:total], limit4
	case 6:
		if len(pkt) < 40 || limit6 <= 0 {
			return false
		}
		end := 40 + int(binary.BigEndian.Uint16(pkt[4:6]))
		if end > len(pkt) {
			return false
		}
		next, off := pkt[6], 40
		// Skip hop-by-hop, routing and destination options headers; a
		// fragment header means we do not touch the packet.
		for next == 0 || next == 43 || next == 60 {
			if off+8 > end {
				return false
			}
			next, off = pkt[off], off+(int(pkt[off+1])+1)*8
		}
		if next != 6 || off > end {
			return false
		}
		tcp, limit = pkt[off:end], limit6
	default:
		return false
	}
	if len(tcp) < 20 || tcp[13]&0x02 == 0 { // no SYN
		return false
	}
	doff := int(tcp[12]>>4) * 4
	if doff < 20 || doff > len(tcp) {
		return false
	}
	opts := tcp[20:doff]
	for i := 0; i < len(opts); {
		switch kind := opts[i]; kind {
		case 0: // end of options
			return false
		case 1: // no-op
			i++
			continue
		}
		if i+1 >= len(opts) {
			return false
		}
		l := int(opts[i+1])
		if l < 2 || i+l > len(opts) {
			return false
		}
		if opts[i] == 2 && l == 4 {
			old := binary.BigEndian.Uint16(opts[i+2:])
			if int(old) <= limit {
				return false
			}
			nw := uint16(limit)
			binary.BigEndian.PutUint16(opts[i+2:], nw)
			// Incremental checksum update (RFC 1624): HC' = ~(~HC + ~m + m').
			// An MSS at an odd offset straddles two checksum words: its
			// bytes count swapped.
			m, m2 := old, nw
			if (20+i+2)%2 == 1 {
				m, m2 = bits.ReverseBytes16(m), bits.ReverseBytes16(m2)
			}
			sum := uint32(^binary.BigEndian.Uint16(tcp[16:18])) + uint32(^m) + uint32(m2)
			for sum > 0xffff {
				sum = sum&0xffff + sum>>16
			}
			binary.BigEndian.PutUint16(tcp[16:18], ^uint16(sum))
			return true
		}
		i += l
	}
	return false
}

// mssClamp holds the current connection's limits; the TUN wrapper reads
// them for every packet, the connection loop sets them per server.
type mssClamp struct {
	limit4, limit6 atomic.Int32
}

// configure sets the limits for a connection to ep under entry e's
// mssfix. Without an explicit mssfix, UDP gets OpenVPN 2.6's default
// "mssfix 1492 mtu" and TCP none (TCP carries no fragmentation risk).
func (m *mssClamp) configure(e connEntry, ep endpoint) {
	mssfix, mtuMode := e.mssfix, e.mssfixMTU
	overTCP := ep.proto() == "tcp"
	if !e.mssfixSet && !overTCP {
		mssfix, mtuMode = defaultMssfix, true
	} else if !e.mssfixSet {
		mssfix = 0
	}
	if mssfix <= 0 {
		m.limit4.Store(0)
		m.limit6.Store(0)
		return
	}
	outerV6 := ep.isIPv6()
	l4 := mssLimit(mssfix, mtuMode, outerV6, overTCP, false)
	l6 := mssLimit(mssfix, mtuMode, outerV6, overTCP, true)
	if e.tunMTU > 0 {
		// The tunnel's own MTU bounds segments too.
		l4 = positiveMin(l4, e.tunMTU-40)
		l6 = positiveMin(l6, e.tunMTU-60)
	}
	m.limit4.Store(int32(l4))
	m.limit6.Store(int32(l6))
}

func positiveMin(a, b int) int {
	if a <= 0 {
		return b
	}
	return min(a, b)
}

func (m *mssClamp) apply(pkt []byte) {
	clampMSS(pkt, int(m.limit4.Load()), int(m.limit6.Load()))
}

// mssTunProvider wraps the TUN provider so every packet between the TUN
// device and the data channel passes the clamp in both directions.
type mssTunProvider struct {
	inner TunProvider
	clamp *mssClamp
}

func (p *mssTunProvider) OpenTun(ctx context.Context, cfg netconf.Config) (TunDevice, error) {
	d, err := p.inner.OpenTun(ctx, cfg)
	if err != nil || d == nil {
		return d, err
	}
	return &mssTun{TunDevice: d, clamp: p.clamp}, nil
}

type mssTun struct {
	TunDevice
	clamp *mssClamp
}

// Read returns a packet from the system, on its way to the server.
func (t *mssTun) Read(b []byte) (int, error) {
	n, err := t.TunDevice.Read(b)
	if n > 0 {
		t.clamp.apply(b[:n])
	}
	return n, err
}

// Write takes a packet from the server, on its way to the system.
func (t *mssTun) Write(b []byte) (int, error) {
	t.clamp.apply(b)
	return t.TunDevice.Write(b)
}
