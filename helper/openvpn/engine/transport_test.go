package engine

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

func TestNormalizeProto(t *testing.T) {
	for in, want := range map[string]string{"": "udp", "udp": "udp", "UDP6": "udp6", "tcp-client": "tcp", "tcp4-client": "tcp4", "tcp6": "tcp6"} {
		if got, err := normalizeProto(in); err != nil || got != want {
			t.Errorf("normalizeProto(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"tcp-server", "sctp", "udp5"} {
		if _, err := normalizeProto(bad); err == nil {
			t.Errorf("normalizeProto(%q) accepted", bad)
		}
	}
}

func TestResolveEndpoints(t *testing.T) {
	eps, err := resolveEndpoints(context.Background(), net.DefaultResolver, "127.0.0.1", "", "udp")
	if err != nil || len(eps) != 1 || eps[0].addr != "127.0.0.1:1194" || eps[0].String() != "127.0.0.1:1194/udp" {
		t.Fatalf("%+v %v", eps, err)
	}
	if _, err := resolveEndpoints(context.Background(), net.DefaultResolver, "127.0.0.1", "1194", "udp6"); err == nil {
		t.Error("IPv4 literal accepted for udp6")
	}
}

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
	tr, err := dialTransport(ctx, nil, endpoint{network: "tcp", addr: ln.Addr().String()})
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
	buf := make([]byte, maxPacket)
	for _, want := range [][]byte{[]byte("abc"), big} {
		n, err := tr.ReadPacket(buf)
		if err != nil || !bytes.Equal(buf[:n], want) {
			t.Fatalf("read %d bytes, %v", n, err)
		}
	}
}

func TestCtlConn(t *testing.T) {
	wake := make(chan struct{}, 1)
	c := newCtlConn(wake, nil, nil)
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-wake:
	default:
		t.Fatal("write did not wake the control loop")
	}
	c.Write([]byte("world"))
	if out := c.takeOutput(); len(out) != 2 || string(out[0]) != "hello" {
		t.Fatalf("output %q", out)
	}
	done := make(chan string)
	go func() {
		b := make([]byte, 3)
		var s []byte
		for len(s) < 6 {
			n, err := c.Read(b)
			if err != nil {
				break
			}
			s = append(s, b[:n]...)
		}
		done <- string(s)
	}()
	c.deliver([]byte("abc"))
	c.deliver([]byte("def"))
	if s := <-done; s != "abcdef" {
		t.Fatalf("read %q", s)
	}
	go func() {
		_, err := c.Read(make([]byte, 1))
		done <- err.Error()
	}()
	c.Close()
	if s := <-done; s != io.EOF.Error() {
		t.Fatalf("read after close: %s", s)
	}
	if _, err := c.Write([]byte("x")); err == nil {
		t.Fatal("write after close succeeded")
	}
}

func TestTransientUDPError(t *testing.T) {
	for _, e := range []error{syscall.EPERM, syscall.ENETUNREACH, &net.OpError{Op: "write", Err: os.NewSyscallError("write", syscall.ECONNREFUSED)}} {
		if !transientUDPError(e) {
			t.Errorf("%v not transient", e)
		}
	}
	for _, e := range []error{nil, net.ErrClosed, syscall.EBADF, io.EOF} {
		if transientUDPError(e) {
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
	ep := endpoint{network: "udp", addr: pc.LocalAddr().String(), lport: port}
	tr, err := dialTransport(context.Background(), nil, ep)
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
	dialTransport(context.Background(), custom, ep)
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
	tr, err := dialTransport(context.Background(), nil, endpoint{network: "udp4", addr: srv.LocalAddr().String()})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	raw, err := tr.(*udpTransport).c.(*net.UDPConn).SyscallConn()
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
