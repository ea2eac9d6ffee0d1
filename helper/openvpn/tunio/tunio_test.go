package tunio

import (
	"bytes"
	"errors"
	"os"
	"testing"
)

// queueDev is a PacketDevice over a queue of packets to read and a record
// of packets written; failAt makes that write fail.
type queueDev struct {
	in     [][]byte
	out    [][]byte
	failAt int
}

func (q *queueDev) Read(p []byte) (int, error) {
	if len(q.in) == 0 {
		return 0, os.ErrClosed
	}
	n := copy(p, q.in[0])
	q.in = q.in[1:]
	return n, nil
}

func (q *queueDev) Write(p []byte) (int, error) {
	if len(q.out) == q.failAt {
		return 0, errors.New("device gone")
	}
	q.out = append(q.out, append([]byte(nil), p...))
	return len(p), nil
}

func (q *queueDev) Close() error { return nil }
func (q *queueDev) Name() string { return "q0" }

// batchDev batches by itself: Batched must hand it out unwrapped.
type batchDev struct{ queueDev }

func (b *batchDev) BatchSize() int                                 { return 8 }
func (b *batchDev) ReadBatch([][]byte, []int, int) (int, error)    { return 0, nil }
func (b *batchDev) WriteBatch(bufs [][]byte, off int) (int, error) { return len(bufs), nil }

// TestBatchedSingle: a one-packet device reads one packet per ReadBatch at
// the offset (the headroom in front untouched), writes each buffer's
// packet from the offset, and reports how many were written when one
// write fails.
func TestBatchedSingle(t *testing.T) {
	q := &queueDev{in: [][]byte{[]byte("first"), []byte("second")}, failAt: -1}
	d := Batched(q)
	if d.BatchSize() != 1 || d.Name() != "q0" {
		t.Fatalf("batch size %d, name %q", d.BatchSize(), d.Name())
	}
	buf := bytes.Repeat([]byte{0xee}, Headroom+64)
	bufs, sizes := [][]byte{buf}, []int{0}
	for _, want := range []string{"first", "second"} {
		n, err := d.ReadBatch(bufs, sizes, Headroom)
		if err != nil || n != 1 || string(buf[Headroom:Headroom+sizes[0]]) != want {
			t.Fatalf("ReadBatch = %d, %q, %v; want 1, %q", n, buf[Headroom:Headroom+sizes[0]], err, want)
		}
		if !bytes.Equal(buf[:Headroom], bytes.Repeat([]byte{0xee}, Headroom)) {
			t.Fatalf("headroom overwritten: %x", buf[:Headroom])
		}
	}
	if _, err := d.ReadBatch(bufs, sizes, Headroom); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("ReadBatch at the end: %v", err)
	}

	out := [][]byte{append(make([]byte, Headroom), "a"...), append(make([]byte, Headroom), "bc"...), append(make([]byte, Headroom), "d"...)}
	if n, err := d.WriteBatch(out, Headroom); err != nil || n != 3 || len(q.out) != 3 || string(q.out[1]) != "bc" {
		t.Fatalf("WriteBatch = %d, %v; device got %q", n, err, q.out)
	}
	q.out, q.failAt = nil, 1
	if n, err := d.WriteBatch(out, Headroom); err == nil || n != 1 {
		t.Fatalf("WriteBatch with the second write failing = %d, %v; want 1 and the error", n, err)
	}
}

func TestBatchedKeepsBatchingDevice(t *testing.T) {
	b := &batchDev{}
	if d := Batched(b); d != Device(b) {
		t.Fatalf("Batched wrapped a batching device: %T", d)
	}
}
