package tunio

import (
	"bytes"
	"errors"
	"os"
	"testing"
	"time"
)

// NewWriter writes a non-blocking file-backed device with its own raw
// writes, one packet per call and in order; when the device's queue is
// full it waits in the poller for room, and after Close it fails with
// os.ErrClosed.
func TestWriterWritesThroughTheFile(t *testing.T) {
	d := newFileDev(t, true)
	w, ok := NewWriter(d).(*fileWriter)
	if !ok {
		t.Fatalf("NewWriter of a non-blocking file device: %T, want the raw file writer", NewWriter(d))
	}
	want := [][]byte{packet(0, 10), packet(1, 1400), packet(2, 1)}
	for _, p := range want {
		if n, err := w.Write(p); err != nil || n != len(p) {
			t.Fatalf("Write of %d bytes: %d, %v", len(p), n, err)
		}
	}
	buf := make([]byte, 2000)
	for i, p := range want {
		n, err := d.Peer.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf[:n], p) {
			t.Fatalf("packet %d: %d bytes, want %d", i, n, len(p))
		}
	}

	// Fill the socket pair's queue: the next write must wait for room,
	// not fail or drop.
	big := packet(3, 1400)
	var queued int
	for {
		if _, err := rawWrite(d.F.Fd(), big); err != nil {
			break // EAGAIN: full
		}
		queued++
	}
	done := make(chan error, 1)
	go func() { _, err := w.Write(packet(4, 100)); done <- err }()
	select {
	case err := <-done:
		t.Fatalf("Write to a full queue returned (%v) before anything was read", err)
	case <-time.After(50 * time.Millisecond):
	}
	for range queued {
		if _, err := d.Peer.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("Write after room was made: %v", err)
	}
	if n, err := d.Peer.Read(buf); err != nil || !bytes.Equal(buf[:n], packet(4, 100)) {
		t.Fatalf("the waiting packet: %d bytes, %v", n, err)
	}

	d.F.Close()
	if _, err := w.Write(packet(5, 10)); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Write after Close: %v, want os.ErrClosed", err)
	}
}

// A device that is not backed by a non-blocking file is written through
// its own Write: a raw write could block the thread unknown to the runtime.
func TestWriterFallsBackToTheDevice(t *testing.T) {
	blocking := newFileDev(t, false)
	for name, dev := range map[string]PacketDevice{"blocking file": blocking, "no file": &queueDev{}} {
		if w := NewWriter(dev); w != Writer(dev) {
			t.Fatalf("NewWriter of a device with %s: %T, want the device", name, w)
		}
	}
}
