// Package offload is the packet logic of the TUN offloads: the
// virtio_net_hdr that a TUN device opened with IFF_VNET_HDR puts in front of
// every packet, the splitting of the TSO/USO super-packets the kernel hands
// out (once TUNSETOFFLOAD allows them) into the MSS-sized IP packets the
// tunnel carries, and the GRO-style coalescing of consecutive in-order TCP
// segments of one flow into one super-packet written to the device at once.
// It is pure: no syscalls, no allocation per packet; the engine owns the
// device and the buffers.
package offload

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
)

// HdrLen is the size of struct virtio_net_hdr (without num_buffers),
// which is what a TUN device with IFF_VNET_HDR and the default
// TUNSETVNETHDRSZ prefixes to every packet in both directions.
const HdrLen = 10

// Flags of Hdr.Flags.
const (
	// FlagNeedsCsum: the transport checksum is partial: the field at
	// CsumStart+CsumOffset holds the pseudo-header sum and the sum over
	// everything from CsumStart on still has to be added.
	FlagNeedsCsum = 1
	// FlagDataValid: the checksum was already verified.
	FlagDataValid = 2
)

// GSO types of Hdr.GSOType.
const (
	GSONone  = 0
	GSOTCPv4 = 1
	GSOUDP   = 3 // UFO: IP-fragmented UDP, never enabled by this client
	GSOTCPv6 = 4
	GSOUDPL4 = 5 // USO: UDP segmentation (each segment a datagram)
	GSOECN   = 0x80
)

// Hdr is a decoded virtio_net_hdr. TUN devices use the host's byte order
// for it (legacy virtio without TUNSETVNETBE/LE).
type Hdr struct {
	Flags      uint8
	GSOType    uint8
	HdrLen     uint16 // length of the headers to replicate in each segment
	GSOSize    uint16 // payload bytes per segment
	CsumStart  uint16 // where the checksummed part starts (the L4 header)
	CsumOffset uint16 // where the checksum field is, from CsumStart
}

// Decode reads the header from the first HdrLen bytes of b.
func (h *Hdr) Decode(b []byte) error {
	if len(b) < HdrLen {
		return fmt.Errorf("virtio_net_hdr: %d bytes, need %d", len(b), HdrLen)
	}
	h.Flags = b[0]
	h.GSOType = b[1]
	h.HdrLen = binary.NativeEndian.Uint16(b[2:])
	h.GSOSize = binary.NativeEndian.Uint16(b[4:])
	h.CsumStart = binary.NativeEndian.Uint16(b[6:])
	h.CsumOffset = binary.NativeEndian.Uint16(b[8:])
	return nil
}

// Encode writes the header into the first HdrLen bytes of b.
func (h *Hdr) Encode(b []byte) {
	_ = b[HdrLen-1]
	b[0] = h.Flags
	b[1] = h.GSOType
	binary.NativeEndian.PutUint16(b[2:], h.HdrLen)
	binary.NativeEndian.PutUint16(b[4:], h.GSOSize)
	binary.NativeEndian.PutUint16(b[6:], h.CsumStart)
	binary.NativeEndian.PutUint16(b[8:], h.CsumOffset)
}

// PutPlain writes the header of a packet that needs nothing from the
// kernel (no GSO, checksum complete): all zero.
func PutPlain(b []byte) { clear(b[:HdrLen]) }

// IP and TCP constants the segmentation needs.
const (
	ipv4HdrMin = 20
	ipv6HdrLen = 40
	tcpHdrMin  = 20
	udpHdrLen  = 8
	protoTCP   = 6
	protoUDP   = 17

	tcpFlagFIN = 0x01
	tcpFlagSYN = 0x02
	tcpFlagRST = 0x04
	tcpFlagPSH = 0x08
	tcpFlagACK = 0x10
	tcpFlagURG = 0x20
	tcpFlagECE = 0x40
	tcpFlagCWR = 0x80
)

var errShort = errors.New("packet shorter than its headers")

// sum adds b to a ones'-complement accumulator as big-endian 16-bit
// words. The sum is independent of byte order up to a swap of its two
// bytes (RFC 1071), so b is summed as little-endian 64-bit words with
// end-around carry, 32 bytes per round (the carry chain is the CPU's add
// with carry), folded, swapped and added: several times faster than 16-
// or 32-bit steps on the segments and datagrams of the data path.
func sum(b []byte, acc uint64) uint64 {
	var s, c uint64
	for len(b) >= 32 {
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(b), c)
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(b[8:]), c)
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(b[16:]), c)
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(b[24:]), c)
		b = b[32:]
	}
	for len(b) >= 8 {
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(b), c)
		b = b[8:]
	}
	if len(b) > 0 {
		var t [8]byte // zero padding: an odd last byte is a word's first
		copy(t[:], b)
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(t[:]), c)
	}
	s, c = bits.Add64(s, 0, c)
	s += c
	s = (s >> 32) + (s & 0xffffffff)
	return acc + uint64(bits.ReverseBytes16(fold(s)))
}

// fold reduces an accumulator to 16 bits with end-around carry.
func fold(acc uint64) uint16 {
	for acc > 0xffff {
		acc = (acc >> 16) + (acc & 0xffff)
	}
	return uint16(acc)
}

// pseudoSum is the sum of the transport pseudo-header of an IP packet
// whose addresses are in ip (v4 or v6 header) for an L4 length of n.
func pseudoSum(ip []byte, v6 bool, proto uint8, n int) uint64 {
	var acc uint64
	if v6 {
		acc = sum(ip[8:40], 0)
	} else {
		acc = sum(ip[12:20], 0)
	}
	return acc + uint64(proto) + uint64(n)
}

// ipv4HeaderChecksum recomputes the header checksum of an IPv4 header.
func ipv4HeaderChecksum(h []byte) {
	h[10], h[11] = 0, 0
	binary.BigEndian.PutUint16(h[10:], ^fold(sum(h, 0)))
}

// ipv4HeaderValid says the IPv4 header's checksum is right.
func ipv4HeaderValid(h []byte) bool { return fold(sum(h, 0)) == 0xffff }
