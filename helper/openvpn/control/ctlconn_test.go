package control

import (
	"io"
	"testing"
)

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
