package control

import (
	"errors"
	"io"
	"net"
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
		// The output waits for the end of the writer's turn
		// (TestCtlConnTurns): waking the loop now would only have it
		// find the turn still going.
		t.Fatal("a write woke the control loop")
	default:
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

// The turn bookkeeping Flush relies on: the TLS side's turn is over only
// when its reader waits for input it does not have, and the handshake's
// end keeps it open, in one step, until the loop handled the event; after
// that Read no longer blocks and says so with a temporary error, which
// crypto/tls survives.
func TestCtlConnTurns(t *testing.T) {
	wake := make(chan struct{}, 1)
	c := newCtlConn(wake, nil, nil)
	if c.idle() {
		t.Fatal("idle before the reader ever waited for input")
	}
	read := make(chan error)
	go func() {
		_, err := c.Read(make([]byte, 10))
		read <- err
	}()
	<-wake // the reader found nothing to read: its turn ended
	if !c.idle() {
		t.Fatal("not idle while the reader waits for input")
	}
	c.deliver([]byte("x"))
	if err := <-read; err != nil {
		t.Fatal(err)
	}
	if c.idle() {
		t.Fatal("idle while the reader works on what it read")
	}
	c.handshakeEnded(true)
	if c.idle() {
		t.Fatal("the handshake's end did not hold the turn open for its event")
	}
	c.release()
	if !c.idle() {
		t.Fatal("not idle after the loop handled the handshake's event")
	}
	_, err := c.Read(make([]byte, 10))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Temporary() || !errors.Is(err, errWouldBlock) {
		t.Fatalf("Read without input after the handshake: %v, want the temporary would-block", err)
	}
	c.deliver([]byte("yz"))
	if n, err := c.Read(make([]byte, 10)); n != 2 || err != nil {
		t.Fatalf("Read after the handshake: %d, %v", n, err)
	}
}
