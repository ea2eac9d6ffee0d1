package transport

import (
	"bytes"
	"context"
	"io"
	"net"
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

// TestBatchedSingle: a transport without its own batching (TCP here)
// reads one framed packet per ReadBatch and writes a batch as packets.
func TestBatchedSingle(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 2+3+2+2)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(c, buf); err == nil {
			c.Write(buf) // echo the framed stream back
		}
	}()
	c, err := Dial(context.Background(), nil, "tcp", ln.Addr().String(), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b := Batched(c)
	if b.BatchSize() != 1 {
		t.Fatalf("TCP batch size %d, want 1", b.BatchSize())
	}
	if err := b.WriteBatch([][]byte{[]byte("abc"), []byte("de")}); err != nil {
		t.Fatal(err)
	}
	bufs, sizes := [][]byte{make([]byte, MaxPacket)}, []int{0}
	for _, want := range []string{"abc", "de"} {
		if n, err := b.ReadBatch(bufs, sizes); err != nil || n != 1 || string(bufs[0][:sizes[0]]) != want {
			t.Fatalf("ReadBatch = %d %q, %v; want 1 %q", n, bufs[0][:sizes[0]], err, want)
		}
	}
}
