package engine

import (
	"context"
	"io"
	"net"
	"testing"
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
