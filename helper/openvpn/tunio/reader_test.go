package tunio

import (
	"bytes"
	"errors"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/tunio/tuniotest"
)

func newFileDev(t *testing.T, nonblock bool) *tuniotest.SeqDev {
	return tuniotest.NewSeqDev(t, nonblock)
}

func packet(i, n int) []byte { return bytes.Repeat([]byte{byte(i + 1)}, n) }

// checkLayout checks that the packets read are the ones sent and that
// each has its headroom and tailroom inside the buffer, apart from the
// others.
func checkLayout(t *testing.T, buf []byte, lay Layout, offs, sizes []int, want [][]byte) {
	t.Helper()
	if len(offs) != len(want) {
		t.Fatalf("read %d packets, want %d", len(offs), len(want))
	}
	end := 0
	for i, off := range offs {
		if got := buf[off : off+sizes[i]]; !bytes.Equal(got, want[i]) {
			t.Fatalf("packet %d: %d bytes %x…, want %d bytes of %x", i, len(got), got[:min(4, len(got))], len(want[i]), want[i][0])
		}
		if off-lay.Head < end {
			t.Fatalf("packet %d at %d: its headroom overlaps the previous packet's tailroom (ends at %d)", i, off, end)
		}
		end = off + sizes[i] + lay.Tail
		if end > len(buf) {
			t.Fatalf("packet %d: tailroom ends at %d, past the buffer's %d bytes", i, end, len(buf))
		}
	}
}

func TestReaderDrainsTheQueueInOneCall(t *testing.T) {
	d := newFileDev(t, true)
	r := NewReader(d)
	if _, ok := r.(*fileReader); !ok {
		t.Fatalf("NewReader of a non-blocking file device: %T, want the draining reader", r)
	}
	lay := Layout{Head: 16, Tail: 32, Max: 2000}
	buf := make([]byte, 64<<10)
	offs, sizes := make([]int, 8), make([]int, 8)
	var want [][]byte
	for i := range 5 {
		want = append(want, packet(i, 100+i*301))
	}
	d.Send(t, want...)
	n, err := r.ReadPackets(buf, lay, offs, sizes)
	if err != nil {
		t.Fatal(err)
	}
	checkLayout(t, buf, lay, offs[:n], sizes[:n], want)

	// A full batch stops at len(offs); the rest waits for the next call.
	want = want[:0]
	for i := range 11 {
		want = append(want, packet(i, 60))
	}
	d.Send(t, want...)
	n, err = r.ReadPackets(buf, lay, offs, sizes)
	if err != nil {
		t.Fatal(err)
	}
	checkLayout(t, buf, lay, offs[:n], sizes[:n], want[:8])
	n, err = r.ReadPackets(buf, lay, offs, sizes)
	if err != nil {
		t.Fatal(err)
	}
	checkLayout(t, buf, lay, offs[:n], sizes[:n], want[8:])
}

// Reads stop while the buffer has no room for a packet of Max bytes: no
// packet is cut short.
func TestReaderStopsBeforeTheBufferRunsOut(t *testing.T) {
	d := newFileDev(t, true)
	r := NewReader(d)
	lay := Layout{Head: 8, Tail: 8, Max: 1000}
	buf := make([]byte, 2500) // room for two reads of 1000 bytes, not three
	offs, sizes := make([]int, 8), make([]int, 8)
	want := [][]byte{packet(0, 1000), packet(1, 1000), packet(2, 1000)}
	d.Send(t, want...)
	n, err := r.ReadPackets(buf, lay, offs, sizes)
	if err != nil {
		t.Fatal(err)
	}
	checkLayout(t, buf, lay, offs[:n], sizes[:n], want[:2])
	n, err = r.ReadPackets(buf, lay, offs, sizes)
	if err != nil {
		t.Fatal(err)
	}
	checkLayout(t, buf, lay, offs[:n], sizes[:n], want[2:])
	if _, err := r.ReadPackets(make([]byte, 1000), lay, offs, sizes); !errors.Is(err, errNoRoom) {
		t.Fatalf("a buffer without room for one packet: %v, want %v", err, errNoRoom)
	}
}

// ReadPackets waits for the first packet, and Close ends a wait with an
// error that says the device is closed.
func TestReaderWaitsAndEndsOnClose(t *testing.T) {
	d := newFileDev(t, true)
	r := NewReader(d)
	lay := Layout{Max: 100}
	buf := make([]byte, 1000)
	offs, sizes := make([]int, 4), make([]int, 4)
	type result struct {
		n   int
		err error
	}
	res := make(chan result)
	read := func() {
		n, err := r.ReadPackets(buf, lay, offs, sizes)
		res <- result{n, err}
	}
	go read()
	d.Send(t, packet(0, 10))
	if got := <-res; got.err != nil || got.n != 1 || sizes[0] != 10 {
		t.Fatalf("ReadPackets = %d, %v (size %d), want the one packet of 10 bytes", got.n, got.err, sizes[0])
	}
	go read()
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if got := <-res; !errors.Is(got.err, os.ErrClosed) {
		t.Fatalf("ReadPackets after Close = %d, %v, want os.ErrClosed", got.n, got.err)
	}
}

// A blocking descriptor is read one packet per call (a drain would block),
// as is a device without a file.
func TestReaderFallsBackToOnePacketPerCall(t *testing.T) {
	d := newFileDev(t, false)
	for name, dev := range map[string]PacketDevice{"blocking file": d, "no file": &queueDev{}} {
		if r, ok := NewReader(dev).(singleReader); !ok {
			t.Fatalf("NewReader of a device with %s: %T, want one packet per call", name, r)
		}
	}
	r := NewReader(d)
	lay := Layout{Head: 4, Max: 100}
	buf := make([]byte, 1000)
	offs, sizes := make([]int, 4), make([]int, 4)
	want := [][]byte{packet(0, 10), packet(1, 20)}
	d.Send(t, want...)
	for i, w := range want {
		n, err := r.ReadPackets(buf, lay, offs, sizes)
		if err != nil {
			t.Fatal(err)
		}
		checkLayout(t, buf, lay, offs[:n], sizes[:n], [][]byte{w})
		if offs[0] != lay.Head {
			t.Fatalf("read %d: packet at %d, want %d", i, offs[0], lay.Head)
		}
	}
}

// Batched drains a non-blocking file-backed device per ReadBatch, up to
// FileBatch packets, each at the offset of its own buffer with the room
// in front untouched; a blocking one moves one packet per call.
func TestBatchedDrainsFileDevice(t *testing.T) {
	if _, ok := Batched(newFileDev(t, false)).(single); !ok {
		t.Fatal("Batched of a blocking file device does not move one packet per call")
	}
	d := newFileDev(t, true)
	b := Batched(d)
	if b.BatchSize() != FileBatch {
		t.Fatalf("batch size %d, want %d", b.BatchSize(), FileBatch)
	}
	bufs, sizes := make([][]byte, FileBatch), make([]int, FileBatch)
	for i := range bufs {
		bufs[i] = bytes.Repeat([]byte{0xee}, Headroom+2000)
	}
	var want [][]byte
	for i := range FileBatch + 3 {
		want = append(want, packet(i, 50+i*97))
	}
	d.Send(t, want...)
	for _, w := range [][][]byte{want[:FileBatch], want[FileBatch:]} {
		n, err := b.ReadBatch(bufs, sizes, Headroom)
		if err != nil {
			t.Fatal(err)
		}
		if n != len(w) {
			t.Fatalf("ReadBatch = %d packets, want %d", n, len(w))
		}
		for i := range n {
			if got := bufs[i][Headroom : Headroom+sizes[i]]; !bytes.Equal(got, w[i]) {
				t.Fatalf("packet %d: %d bytes, want %d of %x", i, len(got), len(w[i]), w[i][0])
			}
			if !bytes.Equal(bufs[i][:Headroom], bytes.Repeat([]byte{0xee}, Headroom)) {
				t.Fatalf("packet %d: headroom overwritten", i)
			}
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.ReadBatch(bufs, sizes, Headroom); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("ReadBatch after Close: %v, want os.ErrClosed", err)
	}
}

// Loop hands every read to its handler, in order, and ends with
// os.ErrClosed when the device closes. A read that emptied the queue is
// followed by the wait, not by another read: packets arriving one at a
// time cost two read(2) calls each (the packet, the one finding the
// queue empty), where ReadPackets in a loop costs three (its next call
// first finds the queue still empty, then waits).
func TestLoopReadsEachPacketWithTwoReads(t *testing.T) {
	d := newFileDev(t, true)
	r := NewReader(d)
	fr, ok := r.(*fileReader)
	if !ok {
		t.Fatalf("NewReader of a non-blocking file device: %T", r)
	}
	lay := Layout{Head: 4, Tail: 8, Max: 100}
	buf := make([]byte, 1000)
	offs, sizes := make([]int, 4), make([]int, 4)
	const n = 10
	got := make(chan []byte, n)
	var readsAtLast int64
	done := make(chan error, 1)
	go func() {
		done <- Loop(r, buf, lay, offs, sizes, func(k int) time.Duration {
			for i := range k {
				got <- bytes.Clone(buf[offs[i] : offs[i]+sizes[i]])
			}
			readsAtLast = fr.reads
			return 0
		}, nil)
	}()
	for i := range n {
		d.Send(t, packet(i, 10+i))
		select {
		case p := <-got:
			if !bytes.Equal(p, packet(i, 10+i)) {
				t.Fatalf("packet %d: %d bytes, want %d", i, len(p), 10+i)
			}
		case err := <-done:
			t.Fatalf("Loop ended before packet %d: %v", i, err)
		}
		time.Sleep(2 * time.Millisecond) // the reader goes back to waiting
	}
	d.F.Close()
	if err := <-done; !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Loop after Close: %v, want os.ErrClosed", err)
	}
	// A readiness left over from a packet read before its wake-up may
	// cost a read that finds nothing; a few at most.
	if readsAtLast > 2*n+3 {
		t.Fatalf("%d read(2) calls for %d packets that arrived one at a time, want at most %d", readsAtLast, n, 2*n+3)
	}
}

// Loop on a reader that is not file-backed calls ReadPackets in a loop.
func TestLoopOverReadPackets(t *testing.T) {
	q := &queueDev{in: [][]byte{packet(0, 5), packet(1, 6)}}
	var got [][]byte
	buf := make([]byte, 200)
	lay := Layout{Max: 50}
	offs, sizes := make([]int, 2), make([]int, 2)
	err := Loop(NewReader(q), buf, lay, offs, sizes, func(k int) time.Duration {
		for i := range k {
			got = append(got, bytes.Clone(buf[offs[i]:offs[i]+sizes[i]]))
		}
		return time.Millisecond // a Reader that is not file-backed never lingers
	}, func(time.Duration) { t.Error("Loop over ReadPackets lingered") })
	if err == nil || len(got) != 2 || !bytes.Equal(got[1], packet(1, 6)) {
		t.Fatalf("Loop over a queue of two packets: %d packets, %v", len(got), err)
	}
}

// A handler that asks to linger gets the packets that arrived meanwhile
// in one read pass and one call, without a wait in the poller: one
// linger per pass while the passes bring packets and the handler asks,
// none once a pass finds the queue empty, none when it does not ask.
func TestLoopLingersForTheRestOfABurst(t *testing.T) {
	d := newFileDev(t, true)
	r := NewReader(d)
	fr := r.(*fileReader)
	lay := Layout{Max: 100}
	buf := make([]byte, 2000)
	offs, sizes := make([]int, 16), make([]int, 16)
	// Packet sizes: 50 and up ask to linger, smaller ones do not.
	arrive := [][]int{{60, 61, 62, 63, 64}, {65, 66}, nil} // during the 1st, 2nd, 3rd linger
	var calls [][]int
	var lingers []int64 // fr.reads at each linger
	handled := make(chan struct{}, 16)
	done := make(chan error, 1)
	d.Send(t, packet(50, 50)) // queued before the first read: no read finds the queue empty before it
	go func() {
		done <- Loop(r, buf, lay, offs, sizes, func(k int) time.Duration {
			calls = append(calls, slices.Clone(sizes[:k]))
			defer func() { handled <- struct{}{} }()
			if sizes[k-1] >= 50 {
				return 50 * time.Microsecond
			}
			return 0
		}, func(l time.Duration) {
			if l != 50*time.Microsecond {
				t.Errorf("lingered %v, want the handler's 50µs", l)
			}
			i := len(lingers)
			lingers = append(lingers, fr.reads)
			if i < len(arrive) {
				for _, n := range arrive[i] {
					if _, err := d.Peer.Write(packet(n, n)); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}()
	wait := func() {
		t.Helper()
		select {
		case <-handled:
		case err := <-done:
			t.Fatalf("Loop ended: %v", err)
		case <-time.After(30 * time.Second): // not a speed limit: the packets that only a linger sends never came
			t.Fatal("the packets sent during the lingers were never read")
		}
	}
	for range 3 { // the burst: the first packet, what the lingers brought
		wait()
	}
	time.Sleep(5 * time.Millisecond) // the third linger's pass finds nothing: the reader waits
	d.Send(t, packet(10, 10))        // no linger after a packet the handler lets go
	wait()
	time.Sleep(5 * time.Millisecond)
	d.F.Close()
	if err := <-done; !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Loop after Close: %v, want os.ErrClosed", err)
	}
	want := [][]int{{50}, {60, 61, 62, 63, 64}, {65, 66}, {10}}
	if !slices.EqualFunc(calls, want, slices.Equal) {
		t.Fatalf("handler calls %v, want %v (what each linger brought in one call)", calls, want)
	}
	if len(lingers) != 3 {
		t.Fatalf("%d lingers, want 3 (after the first packet and after each linger that brought packets)", len(lingers))
	}
	// Each pass: its packets and the read finding the queue empty.
	if lingers[0] != 2 || lingers[1] != 2+6 || lingers[2] != 2+6+3 {
		t.Fatalf("read(2) calls before each linger %v, want [2 8 11]", lingers)
	}
	if fr.lingers != 3 {
		t.Fatalf("the reader counted %d lingers, want 3", fr.lingers)
	}
}

// Lingering ends after maxLingers passes even while packets keep coming:
// the poller callback returns, so that Close, which waits for it, ends
// the Loop.
func TestLoopLingerEndsOnClose(t *testing.T) {
	d := newFileDev(t, true)
	r := NewReader(d)
	fr := r.(*fileReader)
	lay := Layout{Max: 100}
	buf := make([]byte, 1000)
	offs, sizes := make([]int, 4), make([]int, 4)
	linger := func(int) time.Duration { return time.Microsecond }
	var n int
	more := func(time.Duration) {
		n++
		d.Peer.Write(packet(1, 20)) // a packet per linger, for ever; fails once closed
	}

	// One callback: maxLingers lingers, then it returns (true: not a wait).
	fr.buf, fr.lay, fr.offs, fr.sizes, fr.handle, fr.sleep = buf, lay, offs, sizes, linger, more
	d.Send(t, packet(0, 20))
	var again bool
	if err := fr.rc.Read(func(fd uintptr) bool { again = fr.loopRead(fd); return true }); err != nil {
		t.Fatal(err)
	}
	if !again || n != maxLingers {
		t.Fatalf("one callback on a device that keeps receiving: %d lingers, returned %v; want %d, true", n, again, maxLingers)
	}

	// Loop: Close from elsewhere ends it.
	n = 0
	closed := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- Loop(r, buf, lay, offs, sizes, linger, func(d2 time.Duration) {
			if n == 2 {
				go func() { d.F.Close(); close(closed) }()
			}
			more(d2)
		})
	}()
	if err := <-done; !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Loop after Close: %v, want os.ErrClosed", err)
	}
	<-closed
}
