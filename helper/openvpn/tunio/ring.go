package tunio

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/uring"
)

// RingReader reads a TUN device through io_uring: one multishot read
// stays armed on the device and the kernel reads every packet queued into
// a buffer of its own, in the reader thread's next io_uring_enter(2). A
// wake-up then costs one system call, however many packets it brings,
// where the read(2) path (Loop) costs one per packet. Lingers (see Loop)
// sleep without a wake-up per packet: the deferred reads only run when
// the reader enters the ring again.
//
// Its Loop runs on a goroutine locked to its thread (the ring accepts
// calls from that thread only). Close ends it: the ring holds the device
// open until then, so a device's owner closes the RingReader too.
type RingReader struct {
	name string
	lay  Layout
	dup  int // the device's descriptor, the reader's own copy
	stop int // eventfd: Close makes it readable

	ring  *uring.Ring
	bufs  *uring.BufRing
	mem   []byte // the packet buffers, one slot per buffer id
	slot  int
	offs  []int
	sizes []int
	bids  []uint16

	mu      sync.Mutex
	state   int // ringIdle, ringLooping, ringClosed
	done    chan struct{}
	cleanup error
	armed   bool // the multishot read is armed (or its end not yet seen)
	err     error
}

const (
	ringIdle = iota
	ringLooping
	ringClosed
)

// The requests' tags.
const (
	tagRead = iota + 1
	tagStop
	tagCancel
)

// ErrRingUnsupported is wrapped by NewRingReader and Loop when the kernel
// has no usable io_uring for the device: the caller reads with read(2)
// (NewReader) instead.
var ErrRingUnsupported = uring.ErrUnsupported

// NewRingReader returns a reader of d through io_uring with room for
// batch packets per wake-up, placed as lay says, or an error wrapping
// ErrRingUnsupported when the kernel refuses io_uring (ENOSYS, EPERM from
// io_uring_disabled or seccomp) or lacks a multishot read, or when d is
// not backed by a non-blocking file.
func NewRingReader(d PacketDevice, batch int, lay Layout) (*RingReader, error) {
	fd, ok := d.(fileDevice)
	if !ok || fd.File() == nil {
		return nil, fmt.Errorf("%w: %s has no file", ErrRingUnsupported, d.Name())
	}
	rc, err := nonBlocking(fd.File())
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrRingUnsupported, d.Name(), err)
	}
	entries := uint16(1)
	for int(entries) < batch {
		entries <<= 1
	}
	r := &RingReader{name: d.Name(), lay: lay, dup: -1, stop: -1, slot: (lay.Head + lay.Max + lay.Tail + 7) &^ 7}
	var dupErr error
	if err := rc.Control(func(f uintptr) { r.dup, dupErr = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0) }); err != nil || dupErr != nil {
		return nil, fmt.Errorf("tun ring %s: dup: %w", r.name, errors.Join(err, dupErr))
	}
	if err := r.open(entries); err != nil {
		r.release()
		return nil, fmt.Errorf("tun ring %s: %w", r.name, err)
	}
	return r, nil
}

func (r *RingReader) open(entries uint16) error {
	var err error
	if r.stop, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return fmt.Errorf("eventfd: %w", err)
	}
	// Completions: one per buffer at most before the reader gives them
	// back, the stop poll's and the cancel's.
	if r.ring, err = uring.New(8, 2*uint32(entries)+8); err != nil {
		return err
	}
	if r.bufs, err = r.ring.RegisterBufRing(entries, 0); err != nil {
		return err
	}
	// Untouched pages of the buffers take no memory: a slot holds a
	// super-packet, most packets use a page or two of it.
	if r.mem, err = unix.Mmap(-1, 0, int(entries)*r.slot, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS); err != nil {
		return fmt.Errorf("mmap buffers: %w", err)
	}
	for i := range int(entries) {
		r.put(uint16(i))
	}
	r.bufs.Publish()
	r.offs, r.sizes, r.bids = make([]int, entries), make([]int, entries), make([]uint16, entries)
	return nil
}

// put queues buffer id for the kernel.
func (r *RingReader) put(id uint16) {
	off := int(id)*r.slot + r.lay.Head
	r.bufs.Put(r.mem[off:off+r.lay.Max], id)
}

// release frees what open took; the ring's requests are done (or were
// never submitted).
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
	for _, fd := range []*int{&r.stop, &r.dup} {
		if *fd >= 0 {
			errs = append(errs, unix.Close(*fd))
			*fd = -1
		}
	}
	return errors.Join(errs...)
}

// Close ends Loop (which returns an error wrapping os.ErrClosed) and
// frees the ring, its buffers and descriptors; it returns once they are
// gone. The device itself stays open.
func (r *RingReader) Close() error {
	r.mu.Lock()
	switch r.state {
	case ringIdle:
		r.state = ringClosed
		r.cleanup = r.release()
		r.mu.Unlock()
		return r.cleanup
	case ringClosed:
		r.mu.Unlock()
		return r.cleanup
	}
	done := r.done
	var one [8]byte
	one[0] = 1 // an eventfd counter in host order: 1 on little-endian hosts, not 0 on others
	_, err := unix.Write(r.stop, one[:])
	r.mu.Unlock()
	if err != nil {
		return fmt.Errorf("tun ring %s: stop: %w", r.name, err)
	}
	<-done
	return r.cleanup
}

// Loop reads packets as Loop does for a file-backed device: it hands each
// batch to handle (packet i is buf[offs[i]:offs[i]+sizes[i]], placed as
// NewRingReader's lay says, until handle returns) and lingers as handle
// asks (sleep; nil: nanosleep(2) as a raw call). It returns an error
// wrapping os.ErrClosed after Close, and one wrapping ErrRingUnsupported
// when the kernel refused the read before the first packet (the caller
// then reads with NewReader). One call per reader.
func (r *RingReader) Loop(handle func(buf []byte, offs, sizes []int) time.Duration, sleep func(time.Duration)) error {
	r.mu.Lock()
	if r.state != ringIdle {
		r.mu.Unlock()
		return &os.PathError{Op: "read", Path: r.name, Err: os.ErrClosed}
	}
	r.state, r.done = ringLooping, make(chan struct{})
	r.mu.Unlock()
	if sleep == nil {
		sleep = rawSleep
	}
	runtime.LockOSThread()
	err := r.loop(handle, sleep)
	cleanup := r.end()
	r.mu.Lock()
	// The ring takes its unregistration from this thread only; Close
	// reads the descriptors under mu.
	r.state, r.cleanup = ringClosed, errors.Join(cleanup, r.release())
	runtime.UnlockOSThread()
	close(r.done)
	r.mu.Unlock()
	return err
}

// ringRawWait is how long the ring reader waits for packets as a raw
// system call before it waits as the scheduler knows. A blocking call the
// scheduler knows of costs, on two Ps, a wake-up of its monitor thread
// at every call and often a hand-off of the P to another thread and back
// (the first io_uring reader waited so: 7 times the context switches per
// MB of read(2), docs/bench/upload.md). Held this long, the P delays a
// stop-the-world at most as long.
const ringRawWait = 2 * time.Millisecond

// errStopped ends loop after Close.
var errStopped = errors.New("stopped")

func (r *RingReader) loop(handle func(buf []byte, offs, sizes []int) time.Duration, sleep func(time.Duration)) error {
	wrap := func(err error) error { return &os.PathError{Op: "read", Path: r.name, Err: err} }
	if err := r.ring.Enable(); err != nil {
		return wrap(err)
	}
	if err := r.ring.PollIn(r.stop, tagStop); err != nil {
		return wrap(err)
	}
	if err := r.ring.ReadMultishot(r.dup, 0, tagRead); err != nil {
		return wrap(err)
	}
	r.armed = true
	if err := r.ring.Submit(); err != nil {
		return wrap(err)
	}
	packets := 0
	for {
		n := r.reap()
		if r.err == errStopped {
			return wrap(os.ErrClosed)
		}
		if n == 0 && r.err != nil {
			if packets == 0 {
				return wrap(fmt.Errorf("%w: multishot read: %w", ErrRingUnsupported, r.err))
			}
			return wrap(r.err)
		}
		var linger time.Duration
		if n > 0 {
			packets += n
			linger = handle(r.mem, r.offs[:n], r.sizes[:n])
			for _, id := range r.bids[:n] {
				r.put(id)
			}
			r.bufs.Publish()
		}
		if !r.armed && r.err == nil {
			// The read ran out of buffers: it is armed again now that
			// every buffer is back.
			if err := r.ring.ReadMultishot(r.dup, 0, tagRead); err != nil {
				return wrap(err)
			}
			r.armed = true
		}
		var err error
		switch {
		case r.ring.Ready():
			// Completions not taken yet: the batch was full.
			if r.ring.Queued() {
				err = r.ring.Submit()
			}
		case linger > 0:
			// Deferred reads do not wake the thread: the linger
			// gathers what comes, the enter behind it reads it all.
			// A linger that brought nothing ends in a wait.
			sleep(linger)
			err = r.ring.Submit()
		case r.ring.Pending():
			// Packets came while handle ran: the enter reads them.
			err = r.ring.Submit()
		default:
			// A paced sender's next burst comes within a millisecond
			// or two: a raw wait keeps the P and the thread (see
			// WaitRaw); an idle tunnel waits as the scheduler knows.
			var got bool
			if got, err = r.ring.WaitRaw(ringRawWait); err == nil && !got {
				err = r.ring.Wait()
			}
		}
		if err != nil {
			return wrap(err)
		}
	}
}

// reap takes the posted completions: up to len(r.offs) packets into
// r.offs, r.sizes and r.bids (how many it returns); a failed read or the
// stop is left in r.err.
func (r *RingReader) reap() int {
	n := 0
	r.ring.Reap(func(c *uring.CQE) bool {
		switch c.UserData {
		case tagStop:
			r.err = errStopped
			return false
		case tagRead:
			if c.Flags&uring.CQEFMore == 0 {
				r.armed = false
			}
			switch {
			case c.Res > 0 && c.Flags&uring.CQEFBuffer != 0:
				id := uint16(c.Flags >> 16)
				r.offs[n], r.sizes[n], r.bids[n] = int(id)*r.slot+r.lay.Head, int(c.Res), id
				n++
			case c.Res == -int32(unix.ENOBUFS):
				// Re-armed once the buffers are back.
			case c.Res < 0:
				r.err = unix.Errno(-c.Res)
				return false
			case c.Res == 0:
				if c.Flags&uring.CQEFBuffer != 0 {
					r.put(uint16(c.Flags >> 16))
					r.bufs.Publish()
				}
				if !r.armed {
					r.err = errors.New("end of file")
					return false
				}
			}
		}
		return n < len(r.offs)
	})
	return n
}

// end cancels what is armed and waits for the requests' last
// completions, so that the ring no longer holds the device open.
func (r *RingReader) end() error {
	if err := r.ring.CancelAll(tagCancel); err != nil {
		return err
	}
	stopArmed := r.err != errStopped
	for cancelled := false; !cancelled || r.armed || stopArmed; {
		if err := r.ring.Wait(); err != nil {
			if errors.Is(err, unix.EEXIST) || errors.Is(err, unix.EBADFD) {
				return nil // never enabled on this thread: nothing armed
			}
			return err
		}
		r.ring.Reap(func(c *uring.CQE) bool {
			switch c.UserData {
			case tagCancel:
				cancelled = true
			case tagStop:
				stopArmed = false
			case tagRead:
				if c.Flags&uring.CQEFMore == 0 {
					r.armed = false
				}
			}
			return true
		})
	}
	return nil
}

// Mappings are the addresses of the reader's mappings (ring, buffer ring,
// buffers) and its descriptors, for tests that check Close freed them.
func (r *RingReader) Mappings() (maps []uintptr, fds []int) {
	maps = append(r.ring.Mappings(), r.bufs.Mapping(), uintptr(unsafe.Pointer(&r.mem[0])))
	return maps, []int{r.dup, r.stop}
}
