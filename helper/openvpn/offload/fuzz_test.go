package offload

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// FuzzSplit feeds arbitrary device reads to the Segmenter: it either
// refuses them or produces exactly Count packets no longer than MaxLen,
// Len bytes in all, and segments of a TCP super-packet carry correct checksums.
func FuzzSplit(f *testing.F) {
	f.Add(tsoPacket(tcpPacket(tcpOpts{flags: tcpFlagACK | tcpFlagFIN, payload: pattern(3000, 1)}), false, 1000))
	f.Add(tsoPacket(tcpPacket(tcpOpts{v6: true, flags: tcpFlagACK, opts: []byte{1, 1, 1, 1}, payload: pattern(2500, 2)}), true, 700))
	f.Add(append(make([]byte, HdrLen), tcpPacket(tcpOpts{flags: tcpFlagSYN})...))
	f.Fuzz(func(t *testing.T, b []byte) {
		var s Segmenter
		if s.Reset(b) != nil {
			return
		}
		want, size, length := s.Count(), s.MaxLen(), s.Len()
		dst := make([]byte, size)
		got, total := 0, 0
		for {
			n, ok := s.Next(dst)
			if !ok {
				break
			}
			if n > size {
				t.Fatalf("packet of %d bytes, MaxLen %d", n, size)
			}
			if g := s.gso; g == GSOTCPv4 || g == GSOTCPv6 {
				p := dst[:n]
				if fold(sum(p[s.l4:], pseudoSum(p, s.v6, protoTCP, n-s.l4))) != 0xffff {
					t.Fatalf("segment %d: wrong TCP checksum", got)
				}
				if !s.v6 && !ipv4HeaderValid(p[:s.l4]) {
					t.Fatalf("segment %d: wrong IPv4 header checksum", got)
				}
			}
			got++
			total += n
			if got > want {
				t.Fatalf("more than Count=%d packets", want)
			}
		}
		if got != want {
			t.Fatalf("%d packets, Count said %d", got, want)
		}
		if total != length {
			t.Fatalf("%d bytes, Len said %d", total, length)
		}
	})
}

// FuzzCoalesce drives the Coalescer with packet sequences chosen by the
// input (in order, gaps, other flows, PSH, short or corrupt segments,
// non-TCP): resegmenting what it writes gives back every packet's payload
// in the original order, and merged runs only hold mergeable packets.
func FuzzCoalesce(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 1, 0, 2, 0, 3, 4, 5, 6, 7, 0, 0})
	f.Add(bytes.Repeat([]byte{0}, 80))
	f.Fuzz(func(t *testing.T, steps []byte) {
		if len(steps) > 200 {
			steps = steps[:200]
		}
		seq := [2]uint32{1000, 90000}
		var in [][]byte
		for i, st := range steps {
			fl := int(st>>7) & 1
			o := tcpOpts{v6: st&0x40 != 0, src: byte(fl), sport: uint16(fl), seq: seq[fl], ack: 5, flags: tcpFlagACK, window: 9, id: uint16(i), payload: pattern(600, i)}
			switch st & 7 {
			case 1:
				o.seq += 600 // a gap
			case 2:
				o.flags |= tcpFlagPSH
			case 3:
				o.payload = o.payload[:1+int(st>>3)%599]
			case 4:
				o.flags |= tcpFlagFIN
			case 5:
				o.window++
			}
			p := tcpPacket(o)
			switch st & 7 {
			case 6:
				p[len(p)-1] ^= 1 // corrupt: must travel alone
			case 7:
				if p[0]>>4 == 4 {
					p[9] = protoUDP
					ipv4HeaderChecksum(p[:20])
				}
			}
			seq[fl] = o.seq + uint32(len(o.payload))
			in = append(in, p)
		}
		var out [][]byte
		c := NewCoalescer(func(b []byte) error { out = append(out, append([]byte(nil), b...)); return nil })
		for _, p := range in {
			if err := c.Add(p); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
		k := 0
		for _, w := range out {
			var h Hdr
			if err := h.Decode(w); err != nil {
				t.Fatal(err)
			}
			if h.GSOType == GSONone {
				if k >= len(in) || !bytes.Equal(w[HdrLen:], in[k]) {
					t.Fatalf("plain write is not packet %d unchanged", k)
				}
				k++
				continue
			}
			var s Segmenter
			if err := s.Reset(w); err != nil {
				t.Fatalf("super-packet refused: %v", err)
			}
			dst := make([]byte, s.MaxLen())
			for {
				n, ok := s.Next(dst)
				if !ok {
					break
				}
				if k >= len(in) {
					t.Fatal("more segments than packets")
				}
				want := in[k]
				ws, ok := parseTCP(want)
				if !ok {
					t.Fatalf("packet %d merged though not mergeable", k)
				}
				if n != len(want) || !bytes.Equal(dst[ws.hlen:n], want[ws.hlen:]) ||
					binary.BigEndian.Uint32(dst[ws.l4+4:]) != ws.seq {
					t.Fatalf("segment for packet %d differs", k)
				}
				k++
			}
		}
		if k != len(in) {
			t.Fatalf("%d packets written of %d", k, len(in))
		}
	})
}
