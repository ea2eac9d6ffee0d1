package tunio

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/uring"
)

// ringRead runs r's Loop on a goroutine that hands each batch's packets
// (copies) to the returned channel; stop closes r and waits for Loop's
// error.
func ringRead(t *testing.T, r *RingReader, linger time.Duration) (<-chan [][]byte, func() error) {
	t.Helper()
	got := make(chan [][]byte, 64)
	errc := make(chan error, 1)
	go func() {
		errc <- r.Loop(func(buf []byte, offs, sizes []int) time.Duration {
			var b [][]byte
			for i, off := range offs {
				b = append(b, bytes.Clone(buf[off:off+sizes[i]]))
			}
			got <- b
			return linger
		}, nil)
	}()
	var once sync.Once
	var err error
	stop := func() error {
		once.Do(func() {
			if cerr := r.Close(); cerr != nil {
				t.Errorf("Close: %v", cerr)
			}
			err = <-errc
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return got, stop
}

func newRing(t *testing.T, d PacketDevice, batch int, lay Layout) *RingReader {
	t.Helper()
	r, err := NewRingReader(d, batch, lay)
	if err != nil {
		t.Fatalf("NewRingReader: %v (this kernel has io_uring with multishot reads)", err)
	}
	return r
}

// collect reads batches until want packets came.
func collect(t *testing.T, got <-chan [][]byte, want int) [][]byte {
	t.Helper()
	var all [][]byte
	for len(all) < want {
		select {
		case b := <-got:
			all = append(all, b...)
		case <-time.After(10 * time.Second):
			t.Fatalf("read %d packets, want %d", len(all), want)
		}
	}
	return all
}

func TestRingReaderReadsEveryPacketInOrder(t *testing.T) {
	d := newFileDev(t, true)
	lay := Layout{Head: 16, Tail: 32, Max: 3000}
	r := newRing(t, d, 8, lay)
	got, stop := ringRead(t, r, 0)
	var want [][]byte
	for i := range 100 {
		want = append(want, packet(i, 1+i*29))
	}
	d.Send(t, want...)
	all := collect(t, got, len(want))
	for i := range want {
		if !bytes.Equal(all[i], want[i]) {
			t.Fatalf("packet %d: %d bytes, want %d bytes of %x", i, len(all[i]), len(want[i]), want[i][0])
		}
	}
	if err := stop(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Loop after Close: %v, want os.ErrClosed", err)
	}
}

// Packets sent while handle runs and during a linger come in one batch
// (up to the batch size), and a burst larger than the buffers re-arms
// the read when it ran out of them.
func TestRingReaderBatchesAndRunsOutOfBuffers(t *testing.T) {
	d := newFileDev(t, true)
	r := newRing(t, d, 4, Layout{Max: 200})
	got, _ := ringRead(t, r, time.Millisecond)
	d.Send(t, packet(0, 10))
	if b := collect(t, got, 1); len(b) != 1 {
		t.Fatalf("first batch %d packets", len(b))
	}
	var want [][]byte
	for i := range 40 {
		want = append(want, packet(i, 100))
	}
	d.Send(t, want...)
	var all [][]byte
	batches, most := 0, 0
	for len(all) < len(want) {
		select {
		case b := <-got:
			all = append(all, b...)
			batches++
			most = max(most, len(b))
		case <-time.After(10 * time.Second):
			t.Fatalf("read %d packets, want %d", len(all), len(want))
		}
	}
	if most > 4 {
		t.Fatalf("a batch of %d packets, more than the batch size 4", most)
	}
	if most < 2 {
		t.Fatalf("40 packets queued at once came one per batch (%d batches)", batches)
	}
	for i := range want {
		if !bytes.Equal(all[i], want[i]) {
			t.Fatalf("packet %d differs", i)
		}
	}
}

// mapped says which of addrs lie in a mapping of this process (the
// kernel merges neighbouring anonymous ones).
func mapped(t *testing.T, addrs []uintptr) []uintptr {
	t.Helper()
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	var out []uintptr
	for _, a := range addrs {
		for line := range strings.Lines(string(b)) {
			var lo, hi uintptr
			if _, err := fmt.Sscanf(line, "%x-%x", &lo, &hi); err == nil && lo <= a && a < hi {
				out = append(out, a)
				break
			}
		}
	}
	return out
}

// Close ends Loop and frees the ring: no mapping, descriptor or goroutine
// is left, and the ring no longer holds the device open (the peer sees
// the end of the stream once the device is closed too). A reader closed
// before its Loop ran frees the same.
func TestRingReaderCloseFreesEverything(t *testing.T) {
	for _, looped := range []bool{true, false} {
		t.Run(fmt.Sprintf("looped=%v", looped), func(t *testing.T) {
			d := newFileDev(t, true)
			before := runtime.NumGoroutine()
			r := newRing(t, d, 16, Layout{Max: 1500})
			maps, fds := r.Mappings()
			if got := mapped(t, maps); len(got) != len(maps) {
				t.Fatalf("mappings %x found %x", maps, got)
			}
			if looped {
				got, stop := ringRead(t, r, 0)
				d.Send(t, packet(1, 100))
				collect(t, got, 1)
				if err := stop(); !errors.Is(err, os.ErrClosed) {
					t.Fatalf("Loop: %v", err)
				}
			} else if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			if left := mapped(t, maps); len(left) > 0 {
				t.Fatalf("mappings %x left after Close", left)
			}
			for _, fd := range fds {
				if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != unix.EBADF {
					t.Fatalf("descriptor %d still open after Close (%v)", fd, err)
				}
			}
			if err := r.Loop(func([]byte, []int, []int) time.Duration { return 0 }, nil); !errors.Is(err, os.ErrClosed) {
				t.Fatalf("Loop after Close: %v", err)
			}
			d.F.Close()
			d.Peer.SetReadDeadline(time.Now().Add(10 * time.Second))
			if n, err := d.Peer.Read(make([]byte, 10)); n != 0 || err == nil {
				t.Fatalf("peer read %d bytes, %v: want the end of the stream (nothing holds the device open)", n, err)
			}
			waitGoroutines(t, before)
		})
	}
}

func waitGoroutines(t *testing.T, want int) {
	t.Helper()
	for range 500 {
		if runtime.NumGoroutine() <= want {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%d goroutines, %d before", runtime.NumGoroutine(), want)
}

// Where the kernel refuses io_uring (ENOSYS, EPERM from
// io_uring_disabled=2 or seccomp), NewRingReader says so with
// ErrRingUnsupported and nothing is left open.
func TestRingReaderRefused(t *testing.T) {
	for _, errno := range []syscall.Errno{unix.ENOSYS, unix.EPERM} {
		restore := uring.Refuse(errno)
		d := newFileDev(t, true)
		_, err := NewRingReader(d, 8, Layout{Max: 100})
		restore()
		if !errors.Is(err, ErrRingUnsupported) || !errors.Is(err, errno) {
			t.Fatalf("refused with %v: %v, want ErrRingUnsupported", errno, err)
		}
	}
	// A blocking descriptor is not read through the ring either.
	if _, err := NewRingReader(newFileDev(t, false), 8, Layout{Max: 100}); !errors.Is(err, ErrRingUnsupported) {
		t.Fatalf("blocking device: %v", err)
	}
}

// A file the kernel cannot read through a multishot read (a regular file
// cannot be polled) makes Loop say so with ErrRingUnsupported before any
// packet, so that the caller reads it with read(2) instead, and frees
// the ring.
func TestRingReaderLoopRefused(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "notpollable")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Write(packet(0, 100))
	if err := unix.SetNonblock(int(f.Fd()), true); err != nil {
		t.Fatal(err)
	}
	r, err := NewRingReader(fileDev{f}, 8, Layout{Max: 100})
	if err != nil {
		t.Fatal(err)
	}
	maps, _ := r.Mappings()
	err = r.Loop(func([]byte, []int, []int) time.Duration {
		t.Error("a packet from a file the ring cannot read")
		return 0
	}, nil)
	if !errors.Is(err, ErrRingUnsupported) {
		t.Fatalf("Loop: %v, want ErrRingUnsupported", err)
	}
	if left := mapped(t, maps); len(left) > 0 {
		t.Fatalf("mappings %x left after Loop ended", left)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
}

type fileDev struct {
	f *os.File
}

func (d fileDev) Read(p []byte) (int, error)  { return d.f.Read(p) }
func (d fileDev) Write(p []byte) (int, error) { return d.f.Write(p) }
func (d fileDev) Close() error                { return d.f.Close() }
func (d fileDev) Name() string                { return d.f.Name() }

func (d fileDev) File() *os.File { return d.f }
