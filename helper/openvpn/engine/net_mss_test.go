package engine

import (
	"encoding/binary"
	"testing"
)

// tcpChecksum computes the TCP checksum over the pseudo header from
// scratch (src/dst addresses from the IP header).
func tcpChecksum(src, dst, tcp []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(src)
	add(dst)
	sum += 6 + uint32(len(tcp))
	add(tcp)
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// tcpSeg is a TCP header with flags, an option block (NOP, MSS, SACK-OK,
// padding) and a few payload bytes.
func tcpSeg(flags byte, mss uint16) []byte {
	t := make([]byte, 32+3)
	binary.BigEndian.PutUint16(t[0:], 40000)
	binary.BigEndian.PutUint16(t[2:], 443)
	t[12] = 8 << 4 // 32-byte header
	t[13] = flags
	copy(t[20:], []byte{1, 2, 4, 0, 0, 4, 2, 0, 0, 0, 0, 0})
	binary.BigEndian.PutUint16(t[23:], mss)
	copy(t[32:], "abc")
	return t
}

func ipv4Packet(tcp []byte) []byte {
	p := make([]byte, 20+len(tcp))
	p[0], p[8], p[9] = 0x45, 64, 6
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	copy(p[12:], []byte{10, 0, 0, 1, 10, 0, 0, 2})
	copy(p[20:], tcp)
	binary.BigEndian.PutUint16(p[36:], tcpChecksum(p[12:16], p[16:20], p[20:]))
	return p
}

// ipv6Packet has a hop-by-hop header before TCP when hbh is set.
func ipv6Packet(tcp []byte, hbh bool) []byte {
	ext := 0
	if hbh {
		ext = 8
	}
	p := make([]byte, 40+ext+len(tcp))
	p[0], p[7] = 0x60, 64
	binary.BigEndian.PutUint16(p[4:], uint16(ext+len(tcp)))
	p[8], p[24] = 0x20, 0x20
	p[23], p[39] = 1, 2
	p[6] = 6
	if hbh {
		p[6] = 0
		p[40] = 6 // next header TCP, length 0 (8 bytes), PadN
		p[42], p[43] = 1, 4
	}
	copy(p[40+ext:], tcp)
	t := p[40+ext:]
	binary.BigEndian.PutUint16(t[16:], tcpChecksum(p[8:24], p[24:40], t))
	return p
}

// mssOf reads the MSS wherever tcpSeg or mssFirst put it.
func mssOf(tcp []byte) uint16 {
	if tcp[20] == 2 {
		return binary.BigEndian.Uint16(tcp[22:])
	}
	return binary.BigEndian.Uint16(tcp[23:])
}

// mssFirst moves the MSS option to the start of the options, as Linux
// sends it (value at an even offset).
func mssFirst(t []byte) []byte {
	mss := mssOf(t)
	copy(t[20:], []byte{2, 4, 0, 0, 1, 4, 2, 0, 0, 0, 0, 0})
	binary.BigEndian.PutUint16(t[22:], mss)
	return t
}

func TestClampMSS(t *testing.T) {
	const syn, synAck, ack = 0x02, 0x12, 0x10
	for _, tc := range []struct {
		name    string
		pkt     []byte
		tcpOff  int
		want    uint16
		changed bool
	}{
		{"v4 syn", ipv4Packet(tcpSeg(syn, 1460)), 20, 1400, true},
		{"v4 syn, MSS first (even offset)", ipv4Packet(mssFirst(tcpSeg(syn, 1460))), 20, 1400, true},
		{"v4 syn-ack", ipv4Packet(tcpSeg(synAck, 1460)), 20, 1400, true},
		{"v4 syn already small", ipv4Packet(tcpSeg(syn, 1200)), 20, 1200, false},
		{"v4 ack untouched", ipv4Packet(tcpSeg(ack, 1460)), 20, 1460, false},
		{"v6 syn", ipv6Packet(tcpSeg(syn, 1440), false), 40, 1380, true},
		{"v6 syn after hop-by-hop", ipv6Packet(tcpSeg(syn, 1440), true), 48, 1380, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			changed := clampMSS(tc.pkt, 1400, 1380)
			tcp := tc.pkt[tc.tcpOff:]
			if changed != tc.changed || mssOf(tcp) != tc.want {
				t.Fatalf("changed %v mss %d, want %v %d", changed, mssOf(tcp), tc.changed, tc.want)
			}
			var src, dst []byte
			if tc.pkt[0]>>4 == 4 {
				src, dst = tc.pkt[12:16], tc.pkt[16:20]
			} else {
				src, dst = tc.pkt[8:24], tc.pkt[24:40]
			}
			stored := binary.BigEndian.Uint16(tcp[16:])
			binary.BigEndian.PutUint16(tcp[16:], 0)
			if want := tcpChecksum(src, dst, tcp); stored != want {
				t.Errorf("checksum %04x after clamping, want %04x", stored, want)
			}
		})
	}
	// A non-first fragment, UDP and a disabled clamp stay untouched.
	frag := ipv4Packet(tcpSeg(syn, 1460))
	frag[7] = 8
	udp := ipv4Packet(tcpSeg(syn, 1460))
	udp[9] = 17
	for _, p := range [][]byte{frag, udp} {
		if clampMSS(p, 1400, 1380) {
			t.Errorf("changed %x", p)
		}
	}
	if clampMSS(ipv4Packet(tcpSeg(syn, 1460)), 0, 0) {
		t.Error("changed with clamping off")
	}
}

func TestMSSLimit(t *testing.T) {
	for _, tc := range []struct {
		mssfix                   int
		mtu, v6out, tcp, v6inner bool
		want                     int
	}{
		{1492, true, false, false, false, 1492 - 28 - 24 - 40},
		{1492, true, false, false, true, 1492 - 28 - 24 - 60},
		{1492, true, true, false, false, 1492 - 48 - 24 - 40},
		{1450, false, false, false, false, 1450 - 24 - 40},
		{1450, false, false, true, false, 1450 - 24 - 2 - 40},
		{0, true, false, false, false, 0},
		{100, false, false, false, false, 516},
	} {
		if got := mssLimit(tc.mssfix, tc.mtu, tc.v6out, tc.tcp, tc.v6inner); got != tc.want {
			t.Errorf("mssLimit(%+v) = %d, want %d", tc, got, tc.want)
		}
	}
	var m mssClamp
	udp4 := endpoint{network: "udp", addr: "198.18.0.1:1194"}
	m.configure(connEntry{tunMTU: 1500}, udp4) // 2.6 default: mssfix 1492 mtu on UDP
	if m.limit4.Load() != 1400 || m.limit6.Load() != 1380 {
		t.Errorf("default UDP limits %d/%d", m.limit4.Load(), m.limit6.Load())
	}
	m.configure(connEntry{tunMTU: 1500}, endpoint{network: "tcp", addr: "198.18.0.1:1194"})
	if m.limit4.Load() != 0 {
		t.Errorf("TCP without mssfix clamps to %d", m.limit4.Load())
	}
	m.configure(connEntry{tunMTU: 1500, mssfixSet: true}, udp4)
	if m.limit4.Load() != 0 {
		t.Errorf("mssfix 0 clamps to %d", m.limit4.Load())
	}
	m.configure(connEntry{tunMTU: 1300}, udp4)
	if m.limit4.Load() != 1260 || m.limit6.Load() != 1240 {
		t.Errorf("tun-mtu 1300 limits %d/%d", m.limit4.Load(), m.limit6.Load())
	}
}

// FuzzClampMSS: any input, no panic; when it changes a packet, only the
// MSS and checksum bytes change.
func FuzzClampMSS(f *testing.F) {
	f.Add(ipv4Packet(tcpSeg(0x02, 1460)))
	f.Add(ipv6Packet(tcpSeg(0x02, 1460), true))
	f.Add([]byte{0x45})
	f.Add([]byte{0x60, 0, 0, 0, 0, 8, 0, 0})
	f.Fuzz(func(t *testing.T, pkt []byte) {
		before := append([]byte(nil), pkt...)
		if !clampMSS(pkt, 1000, 1000) {
			if string(before) != string(pkt) {
				t.Fatal("changed the packet but reported no change")
			}
			return
		}
		diff := 0
		for i := range pkt {
			if pkt[i] != before[i] {
				diff++
			}
		}
		if diff == 0 || diff > 4 {
			t.Fatalf("%d bytes changed", diff)
		}
	})
}
