package transport

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestTCPFraming(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		// Echo the raw stream back, and keep a copy.
		b := make([]byte, 2+3+2+1000)
		io.ReadFull(c, b)
		got <- b
		c.Write(b)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tr, err := Dial(ctx, nil, "tcp", ln.Addr().String(), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	big := bytes.Repeat([]byte{7}, 1000)
	if err := tr.WritePacket([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	if err := tr.WritePacket(big); err != nil {
		t.Fatal(err)
	}
	raw := <-got
	if !bytes.Equal(raw[:5], []byte{0, 3, 'a', 'b', 'c'}) || raw[5] != 1000>>8 || raw[6] != 1000&0xff {
		t.Fatalf("framing %x", raw[:8])
	}
	buf := make([]byte, MaxPacket)
	for _, want := range [][]byte{[]byte("abc"), big} {
		n, err := tr.ReadPacket(buf)
		if err != nil || !bytes.Equal(buf[:n], want) {
			t.Fatalf("read %d bytes, %v", n, err)
		}
	}
}

func TestTransientUDPError(t *testing.T) {
	for _, e := range []error{syscall.EPERM, syscall.ENETUNREACH, &net.OpError{Op: "write", Err: os.NewSyscallError("write", syscall.ECONNREFUSED)}} {
		if !TransientUDPError(e) {
			t.Errorf("%v not transient", e)
		}
	}
	for _, e := range []error{nil, net.ErrClosed, syscall.EBADF, io.EOF} {
		if TransientUDPError(e) {
			t.Errorf("%v transient", e)
		}
	}
}

// TestDialLocalPort: lport reaches the default dialer (and custom ones
// through LocalPort).
func TestDialLocalPort(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	free, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := free.LocalAddr().(*net.UDPAddr).Port
	free.Close()
	tr, err := Dial(context.Background(), nil, "udp", pc.LocalAddr().String(), nil, port)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if err := tr.WritePacket([]byte{1}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, from, err := pc.ReadFrom(buf)
	if err != nil || from.(*net.UDPAddr).Port != port {
		t.Errorf("packet from %v (%v), want local port %d", from, err, port)
	}
	var seen int
	custom := func(ctx context.Context, network, address string) (net.Conn, error) {
		seen = LocalPort(ctx)
		return nil, io.EOF
	}
	Dial(context.Background(), custom, "udp", pc.LocalAddr().String(), nil, port)
	if seen != port {
		t.Errorf("custom dialer saw LocalPort %d, want %d", seen, port)
	}
}

// TestUDPTransportBuffers: the UDP transport's socket buffers are raised
// to udpSocketBuffer or the system's maximum, whichever is lower (the
// kernel reports twice what was granted).
func TestUDPTransportBuffers(t *testing.T) {
	srv, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	tr, err := Dial(context.Background(), nil, "udp4", srv.LocalAddr().String(), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	raw, err := tr.(*UDP).c.(*net.UDPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []struct {
		opt  int
		name string
	}{{syscall.SO_RCVBUF, "rmem_max"}, {syscall.SO_SNDBUF, "wmem_max"}} {
		b, err := os.ReadFile("/proc/sys/net/core/" + o.name)
		if err != nil {
			t.Fatal(err)
		}
		limit, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		var got int
		var gerr error
		if err := raw.Control(func(fd uintptr) { got, gerr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, o.opt) }); err != nil || gerr != nil {
			t.Fatal(err, gerr)
		}
		if want := 2 * min(udpSocketBuffer, limit); got < want {
			t.Errorf("socket buffer (option %d) is %d bytes, want %d (2 × min(%d, %s %d))", o.opt, got, want, udpSocketBuffer, o.name, limit)
		}
	}
}
