package tunio

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/uring"
)

// RingReader reads a TUN device as Loop reads a file-backed one (it waits
// for packets in the runtime's poller, hands each pass's packets over,
// lingers as asked), but a pass reads through io_uring: one
// io_uring_enter(2) submits a batch of reads, each completes during the
// call with a packet (into a provided buffer) or EAGAIN. A pass costs one
// system call where Loop's costs one read(2) per packet, and no read
// outlives its call.
type RingReader struct {
	name string
	rc   syscall.RawConn
	lay  Layout
	fn   func(fd uintptr) bool

	ring    *uring.Ring
	bufs    *uring.BufRing
	mem     []byte // the packet buffers, one slot per buffer id
	slot    int
	entries int
	// free holds the buffer ids the kernel does not have, the last one
	// given back on top; provided is how many the kernel has. A batch is
	// given buffers from the top just before its reads, so the slots in
	// use are the few most recently used ones: a slot holds a 64 KiB
	// super-packet, and cycling through all of them would keep every
	// slot's pages resident after a TSO upload (4 MB instead of a few
	// hundred KiB).
	free     []uint16
	provided int
	// low is the lowest depth of free since the last trim: the ids below
	// it were not used since. trimAt is when trim may next run.
	low    int
	trimAt time.Time

	// The current pass's packets: packet i is mem[offs[i]:][:sizes[i]]
	// in buffer bids[i]; res and flags are each read's result.
	offs, sizes []int
	bids        []uint16
	res         []int32
	flags       []uint32
	n           int
	// want is the first batch of a pass: [0] for a pass after the
	// poller's wake-up, [1] for one after a linger. The two differ: a
	// paced sender's burst is queued by the wake-up, and what a linger
	// brings is its tail, often nothing.
	want   [2]int
	err    error
	handle func(buf []byte, offs, sizes []int) time.Duration
	sleep  func(time.Duration)
	enters int64 // io_uring_enter calls, for tests
	passes int64 // passes that read packets, for tests

	mu      sync.Mutex
	state   int // ringIdle, ringLooping, ringClosed
	done    chan struct{}
	cleanup error
}

const (
	ringIdle = iota
	ringLooping
	ringClosed
)

// ErrRingUnsupported is wrapped by NewRingReader and Loop when the kernel
// has no usable io_uring for the device: the caller reads with read(2)
// (NewReader) instead.
var ErrRingUnsupported = uring.ErrUnsupported

// A pass's first batch: as many reads as the previous pass of its kind
// (after a wake-up, after a linger) read packets and two more, at least
// ringMinBatch; a batch that read a packet with each read is followed by
// one twice as large. A read that finds the queue empty costs little next
// to the system call.
const ringMinBatch = 4

// NewRingReader returns a reader of d through io_uring with room for
// batch packets per pass, placed as lay says, or an error wrapping
// ErrRingUnsupported when the kernel refuses io_uring (ENOSYS, EPERM from
// io_uring_disabled or seccomp) or lacks its reads with provided buffers,
// or when d is not backed by a non-blocking file.
func NewRingReader(d PacketDevice, batch int, lay Layout) (*RingReader, error) {
	rc, err := ringConn(d)
	if err != nil {
		return nil, err
	}
	entries := 1
	for entries < batch {
		entries <<= 1
	}
	r := &RingReader{name: d.Name(), rc: rc, lay: lay, entries: entries, slot: (lay.Head + lay.Max + lay.Tail + 7) &^ 7, want: [2]int{ringMinBatch, ringMinBatch}}
	r.fn = r.pass
	if err := r.open(); err != nil {
		r.release()
		return nil, fmt.Errorf("tun ring %s: %w", r.name, err)
	}
	return r, nil
}

// ringConn is the RawConn of d's file for a ring, or an error wrapping
// ErrRingUnsupported when d has no non-blocking file.
func ringConn(d PacketDevice) (syscall.RawConn, error) {
	fd, ok := d.(fileDevice)
	if !ok || fd.File() == nil {
		return nil, fmt.Errorf("%w: %s has no file", ErrRingUnsupported, d.Name())
	}
	rc, err := nonBlocking(fd.File())
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrRingUnsupported, d.Name(), err)
	}
	return rc, nil
}

func (r *RingReader) open() error {
	var err error
	if r.ring, err = uring.New(uint32(r.entries), uring.OpRead); err != nil {
		return err
	}
	if r.bufs, err = r.ring.RegisterBufRing(uint16(r.entries), 0); err != nil {
		return err
	}
	// Untouched pages of the buffers take no memory: a slot holds a
	// super-packet, most packets use a page or two of it.
	if r.mem, err = unix.Mmap(-1, 0, r.entries*r.slot, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS); err != nil {
		return fmt.Errorf("mmap buffers: %w", err)
	}
	r.free = make([]uint16, r.entries)
	for i := range r.free {
		r.free[i] = uint16(r.entries - 1 - i)
	}
	r.low = r.entries
	r.offs, r.sizes, r.bids = make([]int, r.entries), make([]int, r.entries), make([]uint16, r.entries)
	r.res, r.flags = make([]int32, r.entries), make([]uint32, r.entries)
	return nil
}

// provide gives the kernel buffers from the top of free until it has n.
func (r *RingReader) provide(n int) {
	if r.provided >= n {
		return
	}
	for r.provided < n && len(r.free) > 0 {
		id := r.free[len(r.free)-1]
		r.free = r.free[:len(r.free)-1]
		off := int(id)*r.slot + r.lay.Head
		r.bufs.Put(r.mem[off:off+r.lay.Max], id)
		r.provided++
	}
	r.low = min(r.low, len(r.free))
	r.bufs.Publish()
}

// ringKeepSlots are the slots on top of free that trim leaves resident;
// ringTrimEvery is how often it may run (it costs a system call per slot).
const (
	ringKeepSlots = 2 * bigPass
	ringTrimEvery = time.Second
)

// trim returns to the kernel the pages of the slots below the top
// ringKeepSlots of free that were used since the last trim, at most once
// per ringTrimEvery: after a burst that went deep (many slots at once,
// say a TCP upload's super-packets), the reader's resident memory falls
// back to a few slots once the device is idle. Only whole pages inside a
// slot are given back; the kernel has none of these buffers.
func (r *RingReader) trim(clock func() time.Time) {
	top := len(r.free) - ringKeepSlots
	if r.low >= top {
		return // the common case: no clock read
	}
	now := clock()
	if now.Before(r.trimAt) {
		return
	}
	r.trimAt = now.Add(ringTrimEvery)
	page := os.Getpagesize()
	for _, id := range r.free[r.low:top] {
		start, end := int(id)*r.slot, (int(id)+1)*r.slot
		// Page alignment counts from the mapping's start, which is
		// page-aligned itself.
		start = (start + page - 1) &^ (page - 1)
		end &^= page - 1
		if end > start {
			unix.Madvise(r.mem[start:end], unix.MADV_DONTNEED)
		}
	}
	r.low = len(r.free)
}

// taken notes that the kernel filled buffer id: it is the pass's until
// recycle (or free again at once when it holds no packet).
func (r *RingReader) taken(id uint16, keep bool) {
	r.provided--
	if !keep {
		r.free = append(r.free, id)
	}
}

// recycle gives the pass's buffers back, to the top of free.
func (r *RingReader) recycle() {
	for _, id := range r.bids[:r.n] {
		r.free = append(r.free, id)
	}
	r.n = 0
}

// release frees what open took.
func (r *RingReader) release() error {
	var errs []error
	if r.bufs != nil {
		errs = append(errs, r.bufs.Unregister())
		r.bufs = nil
	}
	if r.ring != nil {
		errs = append(errs, r.ring.Close())
		r.ring = nil
	}
	if r.mem != nil {
		errs = append(errs, unix.Munmap(r.mem))
		r.mem = nil
	}
	return errors.Join(errs...)
}

// Close frees the ring and its buffers. A Loop ends when the device is
// closed: Close waits for it, so the device's owner closes the device
// first.
func (r *RingReader) Close() error {
	r.mu.Lock()
	switch r.state {
	case ringIdle:
		r.state = ringClosed
		r.cleanup = r.release()
	case ringLooping:
		done := r.done
		r.mu.Unlock()
		<-done
		r.mu.Lock()
	}
	defer r.mu.Unlock()
	return r.cleanup
}

// Loop reads packets as Loop does for a file-backed device and hands
// each pass's packets to handle (packet i is buf[offs[i]:offs[i]+sizes[i]],
// placed as NewRingReader's lay says, until handle returns), lingering
// as handle asks (sleep; nil: nanosleep(2) as a raw call). It returns an
// error wrapping os.ErrClosed once the device is closed, and one wrapping
// ErrRingUnsupported when the kernel refused the first read (the caller
// then reads with NewReader). One call per reader; it frees the ring
// when it returns.
func (r *RingReader) Loop(handle func(buf []byte, offs, sizes []int) time.Duration, sleep func(time.Duration)) error {
	r.mu.Lock()
	if r.state != ringIdle {
		r.mu.Unlock()
		return &os.PathError{Op: "read", Path: r.name, Err: os.ErrClosed}
	}
	r.state, r.done = ringLooping, make(chan struct{})
	r.mu.Unlock()
	r.handle, r.sleep = handle, sleep
	if r.sleep == nil {
		r.sleep = rawSleep
	}
	var err error
	for {
		r.err = nil
		if rerr := r.rc.Read(r.fn); rerr != nil {
			// The poller fails a read only for a closed file.
			err = &os.PathError{Op: "read", Path: r.name, Err: fmt.Errorf("%w: %w", os.ErrClosed, rerr)}
			break
		}
		if r.err != nil {
			if r.passes == 0 && r.err != errEOF {
				r.err = fmt.Errorf("%w: read: %w", ErrRingUnsupported, r.err)
			}
			err = &os.PathError{Op: "read", Path: r.name, Err: r.err}
			break
		}
	}
	r.handle, r.sleep = nil, nil
	r.mu.Lock()
	r.state, r.cleanup = ringClosed, r.release()
	close(r.done)
	r.mu.Unlock()
	return err
}

var errEOF = errors.New("end of file")

// pass is the RawConn.Read callback: it reads what is queued, hands it
// over and lingers as Loop's does (the same bound, maxLingers). False
// asks the poller to wait: the queue was empty.
func (r *RingReader) pass(fd uintptr) bool {
	for i := range maxLingers {
		empty := r.drain(fd, min(i, 1))
		var linger time.Duration
		if r.n > 0 {
			r.passes++
			linger = r.handle(r.mem, r.offs[:r.n], r.sizes[:r.n])
			r.recycle()
		}
		if r.err != nil || !empty {
			return true
		}
		if linger <= 0 {
			r.trim(time.Now)
			return false
		}
		r.sleep(linger)
	}
	return true
}

// bigPacket is the size from which a packet counts as a super-packet
// (TSO/USO): a pass that read one ends after bigPass packets and the next
// of its kind begins with a small batch. A 64 KiB super-packet is ~45
// datagrams' work already, and a pass of 64 of them would hold 64 slots'
// pages at once (see free).
const (
	bigPacket = 4 << 10
	bigPass   = ringMinBatch
)

// drain reads packets in batches until a read finds the queue empty (it
// returns true), the pass's room runs out or a read fails (r.err); after
// is 0 for a pass after a wake-up, 1 for one after a linger.
func (r *RingReader) drain(fd uintptr, after int) (empty bool) {
	// A read the kernel could not finish during the call would complete
	// in this thread's task work: the thread stays put until then.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r.n = 0
	k := r.want[after]
	big := false
	for r.n < r.entries {
		k = min(k, r.entries-r.n)
		r.provide(k)
		for i := range k {
			r.ring.Read(int(fd), uint32(r.lay.Max), 0, uint64(i))
		}
		r.enters++
		if err := r.ring.Enter(uint32(k)); err != nil {
			r.err = err
			return false
		}
		r.ring.Reap(r.take)
		// Every result is looked at, so that each filled buffer is
		// accounted for; a failed read ends the pass after the packets
		// of the others (its error is returned now if none came, else
		// the next pass meets it again).
		var failed error
		for i := range k {
			res, flags := r.res[i], r.flags[i]
			switch {
			case res > 0 && flags&uring.CQEFBuffer != 0:
				id := uint16(flags >> 16)
				r.taken(id, true)
				r.offs[r.n], r.sizes[r.n], r.bids[r.n] = int(id)*r.slot+r.lay.Head, int(res), id
				r.n++
				big = big || res >= bigPacket
			case res == -int32(unix.EAGAIN):
				empty = true
			default:
				if flags&uring.CQEFBuffer != 0 {
					r.taken(uint16(flags>>16), false)
				}
				switch {
				case failed != nil:
				case res < 0:
					failed = unix.Errno(-res)
				case res == 0:
					failed = errEOF
				default:
					failed = fmt.Errorf("io_uring read of %d bytes without a buffer", res)
				}
			}
		}
		if failed != nil {
			if r.n == 0 {
				r.err = failed
			}
			return false
		}
		if empty {
			r.want[after] = max(ringMinBatch, r.n+2)
			if big {
				r.want[after] = ringMinBatch
			}
			return true
		}
		if big && r.n >= bigPass {
			r.want[after] = ringMinBatch
			return false
		}
		k *= 2
	}
	r.want[after] = r.entries
	return false
}

// take is Reap's callback: it files each read's result by its index.
func (r *RingReader) take(c *uring.CQE) {
	if c.UserData < uint64(len(r.res)) {
		r.res[c.UserData], r.flags[c.UserData] = c.Res, c.Flags
	}
}

// Mappings are the addresses of the reader's mappings (ring, buffer ring,
// buffers), for tests that check they are freed.
func (r *RingReader) Mappings() []uintptr {
	return append(r.ring.Mappings(), r.bufs.Mapping(), uintptr(unsafe.Pointer(&r.mem[0])))
}
