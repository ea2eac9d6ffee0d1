package transport

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestUDPReadBatch: datagrams that queued up come back from one ReadBatch
// (recvmmsg), each intact and in order, and WriteBatch sends each as one
// datagram.
func TestUDPReadBatch(t *testing.T) {
	srv, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c, err := Dial(context.Background(), nil, "udp4", srv.LocalAddr().String(), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b := Batched(c)
	if _, ok := b.(*UDP); !ok || b.BatchSize() != UDPBatch {
		t.Fatalf("Batched(UDP) = %T with batch %d, want the UDP transport itself with %d", b, b.BatchSize(), UDPBatch)
	}
	pkts := [][]byte{[]byte("one"), []byte("two"), bytes.Repeat([]byte{3}, 1400)}
	if err := b.WriteBatch(pkts); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	srv.SetDeadline(time.Now().Add(5 * time.Second))
	var client net.Addr
	for i, want := range pkts {
		n, from, err := srv.ReadFrom(buf)
		if err != nil || !bytes.Equal(buf[:n], want) {
			t.Fatalf("server datagram %d: %q, %v", i, buf[:n], err)
		}
		client = from
	}
	for _, p := range pkts {
		srv.WriteTo(p, client)
	}
	bufs, sizes := [][]byte{make([]byte, MaxPacket), make([]byte, MaxPacket), make([]byte, MaxPacket), make([]byte, MaxPacket)}, make([]int, 4)
	var got [][]byte
	deadline := time.Now().Add(5 * time.Second)
	for len(got) < len(pkts) && time.Now().Before(deadline) {
		n, err := b.ReadBatch(bufs, sizes)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			got = append(got, append([]byte(nil), bufs[i][:sizes[i]]...))
		}
	}
	if len(got) != len(pkts) {
		t.Fatalf("read %d datagrams, want %d", len(got), len(pkts))
	}
	for i := range pkts {
		if !bytes.Equal(got[i], pkts[i]) {
			t.Errorf("datagram %d: %q, want %q", i, got[i], pkts[i])
		}
	}
}

// A datagram longer than its buffer is reported with its own size, beyond
// the buffer (the reader can tell it was cut), and the others are intact.
func TestUDPReadBatchCutDatagram(t *testing.T) {
	srv, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c, err := Dial(context.Background(), nil, "udp4", srv.LocalAddr().String(), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.WritePacket([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	srv.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 16)
	_, client, err := srv.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	pkts := [][]byte{[]byte("small"), bytes.Repeat([]byte{7}, 3000), []byte("after")}
	for _, p := range pkts {
		srv.WriteTo(p, client)
	}
	b := Batched(c)
	bufs, sizes := [][]byte{make([]byte, MaxPacket), make([]byte, 1024), make([]byte, 1024)}, make([]int, 3)
	var got []int
	var last []byte
	deadline := time.Now().Add(5 * time.Second)
	for len(got) < len(pkts) && time.Now().Before(deadline) {
		n, err := b.ReadBatch(bufs[len(got):], sizes[len(got):])
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, sizes[len(got):len(got)+n]...)
		last = bufs[len(got)-1][:min(sizes[len(got)-1], len(bufs[len(got)-1]))]
	}
	if len(got) != 3 || got[0] != 5 || got[1] != 3000 || got[2] != 5 || string(last) != "after" {
		t.Fatalf("sizes %v (last %q), want [5 3000 5]: the 3000-byte datagram in a 1024-byte buffer reported as 3000", got, last)
	}
}

// TestBatchedSingle: a transport without its own batching (float here)
// reads one packet per ReadBatch — FromPeer speaks of it — and writes a
// batch as one datagram per packet.
func TestBatchedSingle(t *testing.T) {
	srv, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	f, err := ListenFloat(context.Background(), nil, netip.MustParseAddrPort(srv.LocalAddr().String()), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := Batched(f)
	if b.BatchSize() != 1 {
		t.Fatalf("float batch size %d, want 1", b.BatchSize())
	}
	if err := b.WriteBatch([][]byte{[]byte("abc"), []byte("de")}); err != nil {
		t.Fatal(err)
	}
	srv.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	var client net.Addr
	for _, want := range []string{"abc", "de"} {
		n, from, err := srv.ReadFrom(buf)
		if err != nil || string(buf[:n]) != want {
			t.Fatalf("server got %q, %v; want %q", buf[:n], err, want)
		}
		client = from
	}
	srv.WriteTo([]byte("x"), client)
	srv.WriteTo([]byte("yz"), client)
	f.c.SetDeadline(time.Now().Add(5 * time.Second))
	bufs, sizes := [][]byte{make([]byte, MaxPacket), make([]byte, MaxPacket)}, []int{0, 0}
	for _, want := range []string{"x", "yz"} {
		if n, err := b.ReadBatch(bufs, sizes); err != nil || n != 1 || string(bufs[0][:sizes[0]]) != want || !f.FromPeer() {
			t.Fatalf("ReadBatch = %d %q, %v (from the peer %v); want 1 %q", n, bufs[0][:sizes[0]], err, f.FromPeer(), want)
		}
	}
}

// tcpPair is a TCP transport and the server end of its connection.
func tcpPair(t *testing.T) (*TCP, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := Dial(context.Background(), nil, "tcp", ln.Addr().String(), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); srv.Close() })
	srv.SetDeadline(time.Now().Add(10 * time.Second))
	return c.(*TCP), srv
}

func frame(pkts ...string) []byte {
	var b []byte
	for _, p := range pkts {
		b = append(b, byte(len(p)>>8), byte(len(p)))
		b = append(b, p...)
	}
	return b
}

// TestTCPReadBatch: framed packets that arrived together come out of one
// ReadBatch; a packet whose prefix and body arrive in pieces comes out
// whole; ReadPacket continues where ReadBatch stopped; a batch is written
// framed in one write; a zero length is refused.
func TestTCPReadBatch(t *testing.T) {
	c, srv := tcpPair(t)
	b := Batched(c)
	if b != BatchConn(c) || b.BatchSize() != TCPBatch {
		t.Fatalf("Batched(TCP) = %T with batch %d", b, b.BatchSize())
	}
	bufs, sizes := make([][]byte, 4), make([]int, 4)
	for i := range bufs {
		bufs[i] = make([]byte, MaxPacket)
	}
	big := string(bytes.Repeat([]byte{9}, 3000))
	// Five packets in one write: four fit the batch, the fifth waits.
	srv.Write(frame("a", "bb", big, "ccc", "dddd"))
	var got []string
	for len(got) < 4 {
		n, err := b.ReadBatch(bufs, sizes)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			got = append(got, string(bufs[i][:sizes[i]]))
		}
	}
	if len(got) != 4 || got[0] != "a" || got[1] != "bb" || got[2] != big || got[3] != "ccc" {
		t.Fatalf("batch %q", got)
	}
	// A packet split inside its prefix and its body.
	split := frame("efgh")
	go func() {
		for _, part := range [][]byte{split[:1], split[1:3], split[3:]} {
			srv.Write(part)
			time.Sleep(10 * time.Millisecond)
		}
	}()
	buf := make([]byte, MaxPacket)
	for _, want := range []string{"dddd", "efgh"} {
		if n, err := c.ReadPacket(buf); err != nil || string(buf[:n]) != want {
			t.Fatalf("ReadPacket = %q, %v; want %q", buf[:n], err, want)
		}
	}
	if err := b.WriteBatch([][]byte{[]byte("xy"), []byte("z")}); err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, 7)
	if _, err := io.ReadFull(srv, raw); err != nil || !bytes.Equal(raw, frame("xy", "z")) {
		t.Fatalf("server read %x, %v", raw, err)
	}
	srv.Write([]byte{0, 0})
	if _, err := b.ReadBatch(bufs, sizes); err == nil || !strings.Contains(err.Error(), "zero-length") {
		t.Fatalf("zero length: %v", err)
	}
}

// TestTCPReadEOF: the end of the stream inside a packet is an error
// naming where it happened.
func TestTCPReadEOF(t *testing.T) {
	c, srv := tcpPair(t)
	srv.Write([]byte{0, 5, 'a'})
	srv.Close()
	if _, err := c.ReadPacket(make([]byte, MaxPacket)); !errors.Is(err, io.ErrUnexpectedEOF) || !strings.Contains(err.Error(), "read packet") {
		t.Fatalf("EOF inside a packet: %v", err)
	}
}
