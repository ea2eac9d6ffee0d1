package offload

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// tcpOpts describes a test TCP/IP packet.
type tcpOpts struct {
	v6      bool
	src     byte // last byte of the source address (a different flow)
	sport   uint16
	seq     uint32
	ack     uint32
	flags   uint8
	window  uint16
	opts    []byte // TCP options, a multiple of 4 bytes
	payload []byte
	id      uint16
	tos     byte
}

// tcpPacket builds a valid IPv4 or IPv6 TCP packet with correct checksums.
func tcpPacket(o tcpOpts) []byte {
	l4 := ipv4HdrMin
	if o.v6 {
		l4 = ipv6HdrLen
	}
	th := tcpHdrMin + len(o.opts)
	p := make([]byte, l4+th+len(o.payload))
	if o.v6 {
		p[0] = 0x60 | o.tos>>4
		p[1] = o.tos << 4
		binary.BigEndian.PutUint16(p[4:], uint16(len(p)-ipv6HdrLen))
		p[6], p[7] = protoTCP, 64
		p[8], p[23] = 0xfd, o.src+1
		p[24], p[39] = 0xfd, 2
	} else {
		p[0], p[1] = 0x45, o.tos
		binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
		binary.BigEndian.PutUint16(p[4:], o.id)
		p[6], p[8], p[9] = 0x40, 64, protoTCP
		copy(p[12:], []byte{10, 8, 0, o.src + 1, 10, 8, 0, 2})
		ipv4HeaderChecksum(p[:l4])
	}
	t := p[l4:]
	binary.BigEndian.PutUint16(t[0:], 40000+o.sport)
	binary.BigEndian.PutUint16(t[2:], 443)
	binary.BigEndian.PutUint32(t[4:], o.seq)
	binary.BigEndian.PutUint32(t[8:], o.ack)
	t[12] = byte(th/4) << 4
	t[13] = o.flags
	binary.BigEndian.PutUint16(t[14:], o.window)
	copy(t[20:], o.opts)
	copy(t[th:], o.payload)
	binary.BigEndian.PutUint16(t[16:], ^fold(sum(t, pseudoSum(p, o.v6, protoTCP, len(t)))))
	return p
}

func pattern(n, seed int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31 + seed)
	}
	return b
}

// tsoPacket turns a whole-payload TCP packet into what a TUN device with
// TSO hands out: a virtio_net_hdr asking for segments of mss bytes and a
// partial checksum (the pseudo-header sum for the whole length).
func tsoPacket(p []byte, v6 bool, mss int) []byte {
	l4 := ipv4HdrMin
	gso := uint8(GSOTCPv4)
	if v6 {
		l4, gso = ipv6HdrLen, GSOTCPv6
	}
	th := int(p[l4+12]>>4) * 4
	out := make([]byte, HdrLen+len(p))
	h := Hdr{Flags: FlagNeedsCsum, GSOType: gso, HdrLen: uint16(l4 + th), GSOSize: uint16(mss), CsumStart: uint16(l4), CsumOffset: 16}
	h.Encode(out)
	q := out[HdrLen:]
	copy(q, p)
	binary.BigEndian.PutUint16(q[l4+16:], fold(pseudoSum(q, v6, protoTCP, len(q)-l4)))
	return out
}

// splitAll runs a Segmenter over b and returns copies of its packets.
func splitAll(t testing.TB, b []byte) [][]byte {
	t.Helper()
	var s Segmenter
	if err := s.Reset(b); err != nil {
		t.Fatalf("Reset: %v", err)
	}
	var out [][]byte
	dst := make([]byte, s.MaxLen())
	count, length, total := s.Count(), s.Len(), 0
	for {
		n, ok := s.Next(dst)
		if !ok {
			break
		}
		out = append(out, append([]byte(nil), dst[:n]...))
		total += n
	}
	if len(out) != count {
		t.Fatalf("Count %d, Next produced %d", count, len(out))
	}
	if total != length {
		t.Fatalf("Len %d, Next produced %d bytes", length, total)
	}
	return out
}

// checkTCP fails unless p is a sound TCP/IP packet (lengths, IPv4 header
// checksum, TCP checksum) and returns its parse.
func checkTCP(t testing.TB, p []byte) tcpSeg {
	t.Helper()
	s, ok := parseTCP(p)
	if !ok {
		// parseTCP refuses SYN/FIN packets too: check the checksum alone.
		v6 := p[0]>>4 == 6
		l4 := ipv4HdrMin
		if v6 {
			l4 = ipv6HdrLen
		}
		if fold(sum(p[l4:], pseudoSum(p, v6, protoTCP, len(p)-l4))) != 0xffff {
			t.Fatalf("segment has a wrong TCP checksum")
		}
		if !v6 && !ipv4HeaderValid(p[:20]) {
			t.Fatalf("segment has a wrong IPv4 header checksum")
		}
		s.v6, s.l4 = v6, l4
		s.hlen = l4 + int(p[l4+12]>>4)*4
		s.payload = len(p) - s.hlen
		s.seq = binary.BigEndian.Uint32(p[l4+4:])
		s.flags = p[l4+13]
	}
	return s
}

func TestHdrRoundTrip(t *testing.T) {
	h := Hdr{Flags: FlagNeedsCsum, GSOType: GSOTCPv6 | GSOECN, HdrLen: 74, GSOSize: 1428, CsumStart: 40, CsumOffset: 16}
	b := make([]byte, HdrLen)
	h.Encode(b)
	var g Hdr
	if err := g.Decode(b); err != nil || g != h {
		t.Fatalf("decoded %+v, %v; want %+v", g, err, h)
	}
	if err := g.Decode(b[:9]); err == nil {
		t.Fatal("a 9-byte header decoded")
	}
}

func TestSplitTSO(t *testing.T) {
	opts := []byte{1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2} // NOP NOP timestamps
	for _, v6 := range []bool{false, true} {
		for _, mss := range []int{1, 536, 1360, 1448, 70000 - 65535} {
			payload := pattern(64000, mss)
			whole := tcpPacket(tcpOpts{v6: v6, seq: 0xfffff000, ack: 77, id: 0xfffe, window: 500, opts: opts,
				flags: tcpFlagACK | tcpFlagPSH | tcpFlagFIN | tcpFlagCWR, payload: payload})
			segs := splitAll(t, tsoPacket(whole, v6, mss))
			if want := (len(payload) + mss - 1) / mss; len(segs) != want {
				t.Fatalf("v6=%v mss %d: %d segments, want %d", v6, mss, len(segs), want)
			}
			var got []byte
			for i, p := range segs {
				s := checkTCP(t, p)
				if s.payload > mss || (i < len(segs)-1 && s.payload != mss) {
					t.Fatalf("segment %d carries %d bytes at mss %d", i, s.payload, mss)
				}
				if s.seq != 0xfffff000+uint32(i*mss) {
					t.Fatalf("segment %d seq %#x", i, s.seq)
				}
				last := i == len(segs)-1
				if (s.flags&(tcpFlagFIN|tcpFlagPSH) != 0) != last {
					t.Fatalf("segment %d of %d has flags %#x", i, len(segs), s.flags)
				}
				if (s.flags&tcpFlagCWR != 0) != (i == 0) {
					t.Fatalf("segment %d has CWR %#x", i, s.flags)
				}
				if !v6 && binary.BigEndian.Uint16(p[4:]) != uint16(0xfffe+i) {
					t.Fatalf("segment %d IPv4 id %d", i, binary.BigEndian.Uint16(p[4:]))
				}
				if !bytes.Equal(p[s.l4+20:s.hlen], opts) {
					t.Fatalf("segment %d lost its options", i)
				}
				got = append(got, p[s.hlen:]...)
			}
			if !bytes.Equal(got, payload) {
				t.Fatalf("v6=%v mss %d: payload differs after split", v6, mss)
			}
		}
	}
}

func TestSplitUSO(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		l4 := ipv4HdrMin
		if v6 {
			l4 = ipv6HdrLen
		}
		// Reuse the TCP builder for the IP header, then make it UDP.
		payload := pattern(5000, 3)
		ip := tcpPacket(tcpOpts{v6: v6, payload: make([]byte, len(payload)-12)})
		if v6 {
			ip[6] = protoUDP
		} else {
			ip[9] = protoUDP
			ipv4HeaderChecksum(ip[:l4])
		}
		copy(ip[l4+8:], payload)
		binary.BigEndian.PutUint16(ip[l4:], 5353)
		binary.BigEndian.PutUint16(ip[l4+2:], 53)
		b := make([]byte, HdrLen+len(ip))
		(&Hdr{Flags: FlagNeedsCsum, GSOType: GSOUDPL4, HdrLen: uint16(l4 + 8), GSOSize: 1200, CsumStart: uint16(l4), CsumOffset: 6}).Encode(b)
		copy(b[HdrLen:], ip)
		segs := splitAll(t, b)
		if len(segs) != 5 {
			t.Fatalf("%d datagrams, want 5", len(segs))
		}
		var got []byte
		for i, p := range segs {
			u := p[l4:]
			if int(binary.BigEndian.Uint16(u[4:])) != len(u) || binary.BigEndian.Uint16(u) != 5353 {
				t.Fatalf("datagram %d: UDP length %d of %d", i, binary.BigEndian.Uint16(u[4:]), len(u))
			}
			if fold(sum(u, pseudoSum(p, v6, protoUDP, len(u)))) != 0xffff {
				t.Fatalf("datagram %d: wrong UDP checksum", i)
			}
			if !v6 && !ipv4HeaderValid(p[:l4]) {
				t.Fatalf("datagram %d: wrong IPv4 header checksum", i)
			}
			got = append(got, u[8:]...)
		}
		if !bytes.Equal(got, payload) {
			t.Fatal("UDP payload differs after split")
		}
	}
}

func TestSplitPlainCompletesChecksum(t *testing.T) {
	p := tcpPacket(tcpOpts{seq: 5, flags: tcpFlagACK, payload: pattern(300, 1)})
	// As the kernel hands it out with TUN_F_CSUM: pseudo-header sum only.
	b := make([]byte, HdrLen+len(p))
	(&Hdr{Flags: FlagNeedsCsum, CsumStart: 20, CsumOffset: 16}).Encode(b)
	q := b[HdrLen:]
	copy(q, p)
	binary.BigEndian.PutUint16(q[36:], fold(pseudoSum(q, false, protoTCP, len(q)-20)))
	segs := splitAll(t, b)
	if len(segs) != 1 || !bytes.Equal(segs[0], p) {
		t.Fatalf("completed packet differs from the original")
	}
	// Without the flag the packet passes untouched.
	PutPlain(b)
	copy(b[HdrLen:], p)
	if segs := splitAll(t, b); len(segs) != 1 || !bytes.Equal(segs[0], p) {
		t.Fatal("a plain packet was changed")
	}
}

func TestSplitRejects(t *testing.T) {
	good := tsoPacket(tcpPacket(tcpOpts{flags: tcpFlagACK, payload: pattern(3000, 0)}), false, 1000)
	mut := func(f func(b []byte)) []byte {
		b := append([]byte(nil), good...)
		f(b)
		return b
	}
	cases := map[string][]byte{
		"short header":     good[:5],
		"gso size 0":       mut(func(b []byte) { b[4], b[5] = 0, 0 }),
		"ufo":              mut(func(b []byte) { b[1] = GSOUDP }),
		"unknown gso":      mut(func(b []byte) { b[1] = 9 }),
		"tcpv6 on ipv4":    mut(func(b []byte) { b[1] = GSOTCPv6 }),
		"not tcp":          mut(func(b []byte) { b[HdrLen+9] = protoUDP }),
		"ip version 5":     mut(func(b []byte) { b[HdrLen] = 0x55 }),
		"ihl too small":    mut(func(b []byte) { b[HdrLen] = 0x44 }),
		"fragment":         mut(func(b []byte) { b[HdrLen+6] |= 0x20 }),
		"tcp hdr too long": mut(func(b []byte) { b[HdrLen+20+12] = 0xf0 })[:HdrLen+40],
		"truncated ip":     good[:HdrLen+10],
		"csum outside": func() []byte {
			b := make([]byte, HdrLen+40)
			(&Hdr{Flags: FlagNeedsCsum, CsumStart: 30, CsumOffset: 16}).Encode(b)
			return b
		}(),
	}
	for name, b := range cases {
		var s Segmenter
		if err := s.Reset(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// coalesceAll adds every packet and flushes, returning copies of what
// was written.
func coalesceAll(t testing.TB, pkts [][]byte) [][]byte {
	t.Helper()
	var out [][]byte
	c := NewCoalescer(func(b []byte) error { out = append(out, append([]byte(nil), b...)); return nil })
	for _, p := range pkts {
		if err := c.Add(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	return out
}

// flow returns n in-order full segments of mss bytes of one flow.
func flow(v6 bool, src byte, seq uint32, n, mss int) [][]byte {
	var pkts [][]byte
	for i := range n {
		pkts = append(pkts, tcpPacket(tcpOpts{v6: v6, src: src, seq: seq + uint32(i*mss), ack: 9, flags: tcpFlagACK,
			id: uint16(i), window: 100, opts: []byte{1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2}, payload: pattern(mss, i+int(src))}))
	}
	return pkts
}

func TestCoalesceRoundTrip(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		in := flow(v6, 0, 1000, 40, 1388)
		out := coalesceAll(t, in)
		if len(out) != 1 {
			t.Fatalf("v6=%v: %d writes for one flow of 40 segments, want 1", v6, len(out))
		}
		var h Hdr
		_ = h.Decode(out[0])
		want := GSOTCPv4
		if v6 {
			want = GSOTCPv6
		}
		if h.GSOType != uint8(want) || h.GSOSize != 1388 || h.Flags != FlagNeedsCsum {
			t.Fatalf("super-packet header %+v", h)
		}
		// What the kernel would do with it (resegment) gives back the input.
		back := splitAll(t, out[0])
		if len(back) != len(in) {
			t.Fatalf("resegmented into %d, want %d", len(back), len(in))
		}
		for i := range in {
			if !bytes.Equal(back[i], in[i]) {
				t.Fatalf("v6=%v: segment %d differs after coalesce+split", v6, i)
			}
		}
	}
}

func TestCoalesceBoundaries(t *testing.T) {
	a := flow(false, 0, 1000, 6, 1000)
	b := flow(false, 1, 5000, 3, 1000)
	short := tcpPacket(tcpOpts{seq: 7000, ack: 9, flags: tcpFlagACK, window: 100, opts: []byte{1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2}, payload: pattern(10, 0)})
	push := append([]byte(nil), a[3]...)
	push[33] |= tcpFlagPSH
	binary.BigEndian.PutUint16(push[36:], 0)
	binary.BigEndian.PutUint16(push[36:], ^fold(sum(push[20:], pseudoSum(push, false, protoTCP, len(push)-20))))
	badsum := append([]byte(nil), a[1]...)
	badsum[len(badsum)-1] ^= 0xff
	udp := append([]byte(nil), a[0]...)
	udp[9] = protoUDP
	ipv4HeaderChecksum(udp[:20])
	cases := []struct {
		name string
		in   [][]byte
		segs []int // segments per write
	}{
		{"one flow", a, []int{6}},
		{"interleaved flows keep order", [][]byte{a[0], a[1], b[0], b[1], a[2], b[2]}, []int{2, 2, 1, 1}},
		{"gap", [][]byte{a[0], a[2], a[3]}, []int{1, 2}},
		{"reordered", [][]byte{a[1], a[0]}, []int{1, 1}},
		{"duplicate", [][]byte{a[0], a[0]}, []int{1, 1}},
		{"short segment ends a run", [][]byte{a[4], a[5], short, a[0]}, []int{2 + 1, 1}},
		{"push ends a run", [][]byte{a[2], push, a[4]}, []int{2, 1}},
		{"bad checksum not merged", [][]byte{a[0], badsum, a[2]}, []int{1, 1, 1}},
		{"not tcp", [][]byte{udp, a[1], a[2]}, []int{1, 2}},
		{"ipv4 then ipv6", [][]byte{a[0], flow(true, 0, 2000, 1, 1000)[0]}, []int{1, 1}},
	}
	for _, tc := range cases {
		out := coalesceAll(t, tc.in)
		if len(out) != len(tc.segs) {
			t.Errorf("%s: %d writes, want %d", tc.name, len(out), len(tc.segs))
			continue
		}
		k := 0
		for i, w := range out {
			var h Hdr
			_ = h.Decode(w)
			if tc.segs[i] == 1 {
				if h != (Hdr{}) || !bytes.Equal(w[HdrLen:], tc.in[k]) {
					t.Errorf("%s: write %d is not packet %d unchanged behind a plain header", tc.name, i, k)
				}
				k++
				continue
			}
			back := splitAll(t, w)
			if len(back) != tc.segs[i] {
				t.Errorf("%s: write %d holds %d segments, want %d", tc.name, i, len(back), tc.segs[i])
			}
			for j, p := range back {
				s := checkTCP(t, p)
				want := tc.in[k+j]
				if !bytes.Equal(p[s.hlen:], want[s.hlen:]) {
					t.Errorf("%s: write %d segment %d payload differs", tc.name, i, j)
				}
			}
			k += len(back)
		}
	}
}

func TestCoalesceLimit(t *testing.T) {
	// 60 segments of 1400 bytes exceed 64 KiB: the run is cut, nothing lost.
	in := flow(false, 0, 0, 60, 1400)
	out := coalesceAll(t, in)
	total := 0
	for _, w := range out {
		if len(w) > MaxSuper {
			t.Fatalf("write of %d bytes", len(w))
		}
		total += len(splitAll(t, w))
	}
	if len(out) != 2 || total != 60 {
		t.Fatalf("%d writes with %d segments, want 2 with 60", len(out), total)
	}
}

func TestCoalescerNoAlloc(t *testing.T) {
	in := flow(false, 0, 0, 40, 1400)
	c := NewCoalescer(func([]byte) error { return nil })
	var s Segmenter
	super := tsoPacket(tcpPacket(tcpOpts{flags: tcpFlagACK, payload: pattern(60000, 0)}), false, 1400)
	dst := make([]byte, 2000)
	allocs := testing.AllocsPerRun(20, func() {
		for _, p := range in {
			_ = c.Add(p)
		}
		_ = c.Flush()
		_ = s.Reset(super)
		for {
			if _, ok := s.Next(dst); !ok {
				break
			}
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per batch", allocs)
	}
}
