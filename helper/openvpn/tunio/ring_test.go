package tunio

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/tunio/tuniotest"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/uring"
)

// ringRead runs r's Loop on a goroutine that hands each pass's packets
// (copies) to the returned channel; stop closes the device, then r, and
// returns Loop's error.
func ringRead(t *testing.T, d *tuniotest.SeqDev, r *RingReader, linger time.Duration) (<-chan [][]byte, func() error) {
	t.Helper()
	got := make(chan [][]byte, 1024)
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
			d.F.Close()
			err = <-errc
			if cerr := r.Close(); cerr != nil {
				t.Errorf("Close: %v", cerr)
			}
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
		t.Fatalf("NewRingReader: %v (this kernel has io_uring)", err)
	}
	return r
}

// collect reads passes until want packets came.
func collect(t *testing.T, got <-chan [][]byte, want int) (all [][]byte, passes int) {
	t.Helper()
	for len(all) < want {
		select {
		case b := <-got:
			all = append(all, b...)
			passes++
		case <-time.After(10 * time.Second):
			t.Fatalf("read %d packets, want %d", len(all), want)
		}
	}
	return all, passes
}

func TestRingReaderReadsEveryPacketInOrder(t *testing.T) {
	d := newFileDev(t, true)
	lay := Layout{Head: 16, Tail: 32, Max: 3000}
	r := newRing(t, d, 8, lay)
	got, stop := ringRead(t, d, r, 0)
	var want [][]byte
	for i := range 100 {
		want = append(want, packet(i, 1+i*29))
	}
	d.Send(t, want...)
	all, _ := collect(t, got, len(want))
	for i := range want {
		if !bytes.Equal(all[i], want[i]) {
			t.Fatalf("packet %d: %d bytes, want %d bytes of %x", i, len(all[i]), len(want[i]), want[i][0])
		}
	}
	if err := stop(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Loop after the device closed: %v, want os.ErrClosed", err)
	}
}

// Packets queued together are read together: one io_uring_enter reads a
// batch of them (at most the batch size per pass), what came during a
// linger comes in the next pass, and far fewer system calls than packets
// are made.
func TestRingReaderReadsABatchPerSystemCall(t *testing.T) {
	d := newFileDev(t, true)
	r := newRing(t, d, 16, Layout{Max: 200})
	got, stop := ringRead(t, d, r, time.Millisecond)
	var want [][]byte
	for i := range 200 {
		want = append(want, packet(i, 100))
	}
	d.Send(t, want...)
	all, passes := collect(t, got, len(want))
	for i := range want {
		if !bytes.Equal(all[i], want[i]) {
			t.Fatalf("packet %d differs", i)
		}
	}
	stop()
	if passes > len(want)/4 {
		t.Errorf("200 packets queued at once came in %d passes, want at most 50", passes)
	}
	if r.enters > int64(len(want))/4 {
		t.Errorf("200 packets took %d io_uring_enter calls, want at most 50", r.enters)
	}
}

func mapped(t *testing.T, addrs []uintptr) []uintptr { return tuniotest.Mapped(t, addrs) }

// Closing the device ends Loop, which frees the ring: no mapping or
// goroutine is left, and nothing holds the device open (the peer sees the
// end of the stream). A reader closed before its Loop ran frees the same.
func TestRingReaderCloseFreesEverything(t *testing.T) {
	for _, looped := range []bool{true, false} {
		t.Run(fmt.Sprintf("looped=%v", looped), func(t *testing.T) {
			d := newFileDev(t, true)
			before := runtime.NumGoroutine()
			r := newRing(t, d, 16, Layout{Max: 1500})
			maps := r.Mappings()
			if got := mapped(t, maps); len(got) != len(maps) {
				t.Fatalf("mappings %x found %x", maps, got)
			}
			if looped {
				got, stop := ringRead(t, d, r, 0)
				d.Send(t, packet(1, 100))
				collect(t, got, 1)
				if err := stop(); !errors.Is(err, os.ErrClosed) {
					t.Fatalf("Loop: %v", err)
				}
			} else {
				if err := r.Close(); err != nil {
					t.Fatal(err)
				}
				d.F.Close()
			}
			if left := mapped(t, maps); len(left) > 0 {
				t.Fatalf("mappings %x left after Close", left)
			}
			if err := r.Loop(func([]byte, []int, []int) time.Duration { return 0 }, nil); !errors.Is(err, os.ErrClosed) {
				t.Fatalf("Loop after Close: %v", err)
			}
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
// ErrRingUnsupported; a blocking device is not read through a ring either.
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
	if _, err := NewRingReader(newFileDev(t, false), 8, Layout{Max: 100}); !errors.Is(err, ErrRingUnsupported) {
		t.Fatalf("blocking device: %v", err)
	}
}

// A device whose first read the kernel refuses (here an eventfd read
// into fewer than 8 bytes: EINVAL) makes Loop say so with
// ErrRingUnsupported, so that the caller reads it with read(2) instead;
// the ring is freed.
func TestRingReaderLoopRefused(t *testing.T) {
	efd, err := unix.Eventfd(1, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(efd), "eventfd")
	defer f.Close()
	r, err := NewRingReader(fileDev{f}, 8, Layout{Max: 4})
	if err != nil {
		t.Fatal(err)
	}
	maps := r.Mappings()
	err = r.Loop(func([]byte, []int, []int) time.Duration { t.Error("a packet from a read the kernel refuses"); return 0 }, nil)
	if !errors.Is(err, ErrRingUnsupported) || !errors.Is(err, unix.EINVAL) {
		t.Fatalf("Loop: %v, want ErrRingUnsupported (EINVAL)", err)
	}
	if left := mapped(t, maps); len(left) > 0 {
		t.Fatalf("mappings %x left after Loop ended", left)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
}

type fileDev struct{ f *os.File }

func (d fileDev) Read(p []byte) (int, error)  { return d.f.Read(p) }
func (d fileDev) Write(p []byte) (int, error) { return d.f.Write(p) }
func (d fileDev) Close() error                { return d.f.Close() }
func (d fileDev) Name() string                { return d.f.Name() }
func (d fileDev) File() *os.File              { return d.f }

// A pass's first batch is sized by the last pass of its kind: a burst as
// large as the previous one after a wake-up takes one io_uring_enter,
// and the empty passes after lingers do not shrink it.
func TestRingReaderSizesBatchesByPassKind(t *testing.T) {
	d := newFileDev(t, true)
	r := newRing(t, d, 64, Layout{Max: 200})
	defer r.Close()
	var fd uintptr
	if err := r.rc.Control(func(f uintptr) { fd = f }); err != nil {
		t.Fatal(err)
	}
	burst := func(after, n int) (enters int64) {
		t.Helper()
		var want [][]byte
		for i := range n {
			want = append(want, packet(i, 50))
		}
		d.Send(t, want...)
		before := r.enters
		if empty := r.drain(fd, after); !empty || r.err != nil || r.n != n {
			t.Fatalf("drain: %d packets (queue empty %v, %v), want %d", r.n, empty, r.err, n)
		}
		r.recycle()
		return r.enters - before
	}
	burst(0, 20) // learns the burst
	burst(1, 0)  // a linger that brought nothing
	if got := burst(0, 20); got != 1 {
		t.Errorf("a burst of 20 after one of 20 took %d io_uring_enter calls, want 1", got)
	}
}

// A TSO upload's super-packets fill whole 64 KiB slots: the reader keeps
// using the few slots it used last (a pass of them is short, its buffers
// go back on top), so only those stay resident, not every slot of the
// ring (4 MB with 64 slots).
func TestRingReaderKeepsFewSlotsResident(t *testing.T) {
	d := newFileDev(t, true)
	r := newRing(t, d, 64, Layout{Max: 64 << 10})
	got, stop := ringRead(t, d, r, 0)
	const n, size = 150, 60 << 10
	go func() {
		for i := range n {
			if _, err := d.Peer.Write(packet(i, size)); err != nil {
				return // the test failed and closed the device
			}
		}
	}()
	all, _ := collect(t, got, n)
	for i, p := range all {
		if len(p) != size || p[0] != byte(i+1) {
			t.Fatalf("packet %d: %d bytes of %x, want %d of %x", i, len(p), p[0], size, byte(i+1))
		}
	}
	resident := residentPages(t, r.mem)
	stop()
	slots := float64(resident*unix.Getpagesize()) / float64(r.slot)
	if limit := 2 * bigPass; slots > float64(limit) {
		t.Errorf("after %d super-packets %.1f slots' worth of buffer pages are resident, want at most %d of the ring's %d", n, slots, limit, r.entries)
	}
}

// residentPages counts the pages of mem in memory (mincore(2)).
func residentPages(t *testing.T, mem []byte) int {
	t.Helper()
	page := unix.Getpagesize()
	vec := make([]byte, (len(mem)+page-1)/page)
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&mem[0])), uintptr(len(mem)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatalf("mincore: %v", errno)
	}
	n := 0
	for _, v := range vec {
		n += int(v & 1)
	}
	return n
}

// A burst that used many slots at once leaves them resident until the
// reader is idle: trim then gives back all but the top few, and only once
// per ringTrimEvery.
func TestRingReaderTrimsAfterADeepBurst(t *testing.T) {
	d := newFileDev(t, true)
	r := newRing(t, d, 64, Layout{Max: 64 << 10}) // page-aligned slots
	defer r.Close()
	var fd uintptr
	if err := r.rc.Control(func(f uintptr) { fd = f }); err != nil {
		t.Fatal(err)
	}
	var burst [][]byte
	for i := range 40 {
		burst = append(burst, packet(i, 3000))
	}
	d.Send(t, burst...)
	if empty := r.drain(fd, 0); !empty || r.err != nil || r.n != len(burst) {
		t.Fatalf("drain: %d packets (queue empty %v, %v), want %d", r.n, empty, r.err, len(burst))
	}
	r.recycle()
	if got := residentPages(t, r.mem); got < len(burst) {
		t.Fatalf("%d pages resident after a burst into %d slots", got, len(burst))
	}
	now := time.Now()
	r.trim(func() time.Time { return now })
	if got := residentPages(t, r.mem); got > ringKeepSlots {
		t.Errorf("%d pages resident after trim, want at most %d (the top slots)", got, ringKeepSlots)
	}
	d.Send(t, burst...)
	if r.drain(fd, 0); r.n != len(burst) {
		t.Fatalf("second burst: %d packets", r.n)
	}
	r.recycle()
	r.trim(func() time.Time { return now.Add(ringTrimEvery / 2) })
	if got := residentPages(t, r.mem); got < len(burst) {
		t.Errorf("%d pages resident after a second trim within ringTrimEvery, want the burst's %d kept", got, len(burst))
	}
	r.trim(func() time.Time { return now.Add(ringTrimEvery) })
	if got := residentPages(t, r.mem); got > ringKeepSlots {
		t.Errorf("%d pages resident after the next trim, want at most %d", got, ringKeepSlots)
	}
}
