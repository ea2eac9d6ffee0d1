package tunio

import (
	"bytes"
	"errors"
	"os"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/uring"
)

func newRingWriter(t *testing.T, d PacketDevice) *RingWriter {
	t.Helper()
	w, err := NewRingWriter(d)
	if err != nil {
		t.Fatalf("NewRingWriter: %v (this kernel has io_uring)", err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// udpDev is a stand-in device for the writer that queues hundreds of
// packets (a connected UDP socket on loopback; the seqpacket stand-in
// takes 10 before EAGAIN), and its peer.
type udpDev struct {
	fileOnly
	Peer *os.File
}

func newUDPDev(t *testing.T) *udpDev {
	t.Helper()
	var fds [2]int
	for i := range fds {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		fds[i] = fd
		if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
			t.Fatal(err)
		}
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	}
	for i, fd := range fds {
		sa, err := unix.Getsockname(fds[1-i])
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.Connect(fd, sa); err != nil {
			t.Fatal(err)
		}
	}
	d := &udpDev{fileOnly{os.NewFile(uintptr(fds[0]), "udp0")}, os.NewFile(uintptr(fds[1]), "udp1")}
	t.Cleanup(func() { d.f.Close(); d.Peer.Close() })
	return d
}

// receive reads n packets from peer.
func receive(t *testing.T, peer *os.File, n int) [][]byte {
	t.Helper()
	peer.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 1<<16)
	var got [][]byte
	for range n {
		k, err := peer.Read(buf)
		if err != nil {
			t.Fatalf("packet %d of %d: %v", len(got), n, err)
		}
		got = append(got, bytes.Clone(buf[:k]))
	}
	return got
}

// Every packet queued reaches the device once, intact and in order, small
// ones (copied at Queue: the caller's buffer is reused at once) and large
// ones (written from the caller's buffer before Queue returns) mixed.
func TestRingWriterWritesEveryPacketInOrder(t *testing.T) {
	d := newUDPDev(t)
	w := newRingWriter(t, d)
	var want [][]byte
	scratch := make([]byte, 1<<16)
	wrote := 0
	for i := range 120 {
		size := 40 + i*13
		if i%17 == 5 {
			size = ringCopyMax + 1 + i*300 // a super-packet
		}
		p := packet(i, size)
		want = append(want, p)
		copy(scratch, p)
		n, err := w.Queue(scratch[:size])
		if err != nil {
			t.Fatalf("Queue %d: %v", i, err)
		}
		wrote += n
		clear(scratch[:size]) // the caller reuses its buffer
		if i%10 == 9 {
			n, err := w.Flush()
			if err != nil {
				t.Fatalf("Flush: %v", err)
			}
			wrote += n
		}
	}
	if n, err := w.Flush(); err != nil || wrote+n != len(want) {
		t.Fatalf("Flush: %d, %v; %d packets written in all, want %d", n, err, wrote+n, len(want))
	}
	got := receive(t, d.Peer, len(want))
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("packet %d: %d bytes of %x, want %d bytes of %x", i, len(got[i]), got[i][0], len(want[i]), want[i][0])
		}
	}
	if _, writes := w.Stats(); writes != int64(len(want)) {
		t.Errorf("%d packets written through the ring, want all %d", writes, len(want))
	}
}

// A batch costs one io_uring_enter: 50 packets queued, one call; 150,
// three (64 per batch at most).
func TestRingWriterWritesABatchPerSystemCall(t *testing.T) {
	d := newUDPDev(t)
	w := newRingWriter(t, d)
	for i := range 50 {
		w.Queue(packet(i, 66))
	}
	if n, err := w.Flush(); n != 50 || err != nil {
		t.Fatalf("Flush: %d, %v", n, err)
	}
	if enters, writes := w.Stats(); enters != 1 || writes != 50 {
		t.Fatalf("50 packets: %d io_uring_enter calls, %d writes; want 1 and 50", enters, writes)
	}
	receive(t, d.Peer, 50)
	for i := range 150 {
		w.Queue(packet(i, 66))
	}
	w.Flush()
	if enters, writes := w.Stats(); enters != 1+3 || writes != 200 {
		t.Fatalf("150 more packets: %d io_uring_enter calls in all, %d writes; want 4 and 200", enters, writes)
	}
	receive(t, d.Peer, 150)
}

// A device that cannot take more (its queue is full: EAGAIN) is waited for
// in the poller; once it drains, the rest follows in order and nothing is
// lost or written twice.
func TestRingWriterWaitsForAFullDevice(t *testing.T) {
	d := newFileDev(t, true)
	if err := unix.SetsockoptInt(int(d.F.Fd()), unix.SOL_SOCKET, unix.SO_SNDBUF, 4096); err != nil {
		t.Fatal(err)
	}
	w := newRingWriter(t, d)
	const n = 200
	done := make(chan error, 1)
	go func() {
		for i := range n {
			if _, err := w.Queue(packet(i, 1000)); err != nil {
				done <- err
				return
			}
		}
		_, err := w.Flush()
		done <- err
	}()
	time.Sleep(50 * time.Millisecond) // let the writer fill the device
	got := receive(t, d.Peer, n)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if !bytes.Equal(got[i], packet(i, 1000)) {
			t.Fatalf("packet %d out of order or damaged (first byte %d)", i, got[i][0])
		}
	}
	time.Sleep(20 * time.Millisecond)
	if k, _, err := unix.Recvfrom(int(d.Peer.Fd()), make([]byte, 2000), unix.MSG_DONTWAIT); err != unix.EAGAIN {
		t.Fatalf("%d bytes, %v after the last packet: want nothing more (EAGAIN)", k, err)
	}
}

// Close frees the ring and its buffer (no mapping, no goroutine left, the
// device is not held open); a Queue or Flush after it fails with
// os.ErrClosed, and a writer whose device was closed first fails the same.
func TestRingWriterCloseFreesEverything(t *testing.T) {
	d := newFileDev(t, true)
	before := runtime.NumGoroutine()
	w, err := NewRingWriter(d)
	if err != nil {
		t.Fatal(err)
	}
	maps := w.Mappings()
	if got := mapped(t, maps); len(got) != len(maps) {
		t.Fatalf("mappings %x found %x", maps, got)
	}
	w.Queue(packet(1, 100))
	w.Flush()
	w.Queue(packet(2, 100))
	d.F.Close()
	if _, err := w.Flush(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Flush to a closed device: %v, want os.ErrClosed", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if left := mapped(t, maps); len(left) > 0 {
		t.Fatalf("mappings %x left after Close", left)
	}
	if _, err := w.Queue(packet(3, 100)); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Queue after Close: %v", err)
	}
	got := receive(t, d.Peer, 1)
	if !bytes.Equal(got[0], packet(1, 100)) {
		t.Fatal("the first packet was not written")
	}
	d.Peer.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := d.Peer.Read(make([]byte, 200)); n != 0 || err == nil {
		t.Fatalf("peer read %d bytes, %v: want the end of the stream (nothing holds the device open)", n, err)
	}
	waitGoroutines(t, before)
}

// Where the kernel refuses io_uring (ENOSYS; EPERM from io_uring_disabled
// or seccomp), or the device is blocking or has no file, NewRingWriter
// says so and the caller writes with write(2).
func TestRingWriterRefused(t *testing.T) {
	for _, errno := range []unix.Errno{unix.ENOSYS, unix.EPERM} {
		restore := uring.Refuse(errno)
		_, err := NewRingWriter(newFileDev(t, true))
		restore()
		if !errors.Is(err, ErrRingUnsupported) || !errors.Is(err, errno) {
			t.Errorf("io_uring_setup refused with %v: %v", errno, err)
		}
	}
	if _, err := NewRingWriter(newFileDev(t, false)); !errors.Is(err, ErrRingUnsupported) {
		t.Errorf("blocking device: %v", err)
	}
	if _, err := NewRingWriter(packetDev{}); !errors.Is(err, ErrRingUnsupported) {
		t.Errorf("device without a file: %v", err)
	}
}

type packetDev struct{ PacketDevice }

func (packetDev) Name() string { return "nofile" }

// A device whose writes the kernel refuses through the ring (a pty master
// has no FMODE_NOWAIT: RWF_NOWAIT fails with EOPNOTSUPP) gets its packets
// with write(2) from then on, the refused batch included.
func TestRingWriterFallsBackToWrite(t *testing.T) {
	f, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := newRingWriter(t, fileOnly{f})
	for round := range 2 {
		for i := range 10 {
			w.Queue(packet(i, 10))
		}
		if n, err := w.Flush(); n != 10 || err != nil {
			t.Fatalf("round %d: Flush wrote %d of 10: %v", round, n, err)
		}
	}
	if enters, writes := w.Stats(); w.Ringed() || enters != 1 || writes != 0 {
		t.Fatalf("through the ring %v, %d io_uring_enter calls, %d writes: want write(2) after the first refused call", w.Ringed(), enters, writes)
	}
}

type fileOnly struct{ f *os.File }

func (d fileOnly) Read(p []byte) (int, error)  { return d.f.Read(p) }
func (d fileOnly) Write(p []byte) (int, error) { return d.f.Write(p) }
func (d fileOnly) Close() error                { return d.f.Close() }
func (d fileOnly) Name() string                { return d.f.Name() }
func (d fileOnly) File() *os.File              { return d.f }
