package tunio

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Layout places the packets a Reader reads in its buffer: Head bytes free
// in front of every packet, Tail bytes free behind it, and room for Max
// bytes (the largest packet the device hands out) before each read, so
// that no packet is cut short.
type Layout struct{ Head, Tail, Max int }

// Reader reads as many packets per call as the device has queued. At a
// moderate packet rate each packet would otherwise cost a wake-up of the
// reader and a send of its own; read together, they leave in one batch.
type Reader interface {
	// ReadPackets blocks until a packet is queued, then reads it and,
	// without waiting, the packets queued behind it into buf as lay
	// places them, at most len(offs) packets: packet i is
	// buf[offs[i]:offs[i]+sizes[i]]. It returns how many it read. One
	// goroutine only; Close unblocks it with an error wrapping
	// os.ErrClosed.
	ReadPackets(buf []byte, lay Layout, offs, sizes []int) (int, error)
}

// fileDevice is a device backed by a TUN file descriptor.
type fileDevice interface {
	File() *os.File
}

// NewReader returns d's Reader: d itself when it reads in batches, one
// that drains the device's queue in one wake-up when d is backed by a
// non-blocking file, otherwise one that reads one packet per call.
func NewReader(d PacketDevice) Reader {
	if r, ok := d.(Reader); ok {
		return r
	}
	if fd, ok := d.(fileDevice); ok && fd.File() != nil {
		if r, err := newFileReader(fd.File()); err == nil {
			return r
		}
	}
	return singleReader{d}
}

// room says whether buf has room for one more packet at start.
func (lay Layout) room(buf []byte, start int) bool {
	return start+lay.Max+lay.Tail <= len(buf)
}

// next is where the packet after one of n bytes at start goes: behind its
// tailroom and the next one's headroom, 8-byte aligned.
func (lay Layout) next(start, n int) int {
	return (start+n+lay.Tail+7)&^7 + lay.Head
}

var errNoRoom = errors.New("tun read: buffer has no room for one packet")

// singleReader reads one packet per call.
type singleReader struct{ PacketDevice }

func (s singleReader) ReadPackets(buf []byte, lay Layout, offs, sizes []int) (int, error) {
	if len(offs) == 0 || len(sizes) == 0 || !lay.room(buf, lay.Head) {
		return 0, errNoRoom
	}
	n, err := s.Read(buf[lay.Head : lay.Head+lay.Max])
	if err != nil {
		return 0, err
	}
	offs[0], sizes[0] = lay.Head, n
	return 1, nil
}

// fileReader reads a non-blocking TUN file descriptor: the poller wakes it
// once, and one callback reads until the queue is empty or the buffer
// full. Its fields other than rc and fn belong to the current call.
type fileReader struct {
	name   string
	rc     syscall.RawConn
	fn     func(fd uintptr) bool // ReadPackets' callback
	loopFn func(fd uintptr) bool // Loop's
	handle func(n int) time.Duration
	sleep  func(time.Duration) // Loop's lingers

	buf         []byte
	lay         Layout
	offs, sizes []int
	bufs        [][]byte // readBufs: packet i into bufs[i][lay.Head:]
	n           int
	err         error
	reads       int64 // read(2) calls, for tests: the reader's goroutine's
	lingers     int64 // Loop's lingers, for tests
}

func newFileReader(f *os.File) (*fileReader, error) {
	// A blocking descriptor would block the drain (and is not in the
	// poller): then one packet per read(2) it is.
	rc, err := nonBlocking(f)
	if err != nil {
		return nil, err
	}
	r := &fileReader{name: f.Name(), rc: rc}
	r.fn, r.loopFn = r.read, r.loopRead
	return r, nil
}

func (r *fileReader) ReadPackets(buf []byte, lay Layout, offs, sizes []int) (int, error) {
	if len(offs) == 0 || len(sizes) == 0 || !lay.room(buf, lay.Head) {
		return 0, errNoRoom
	}
	r.buf, r.lay, r.offs, r.sizes = buf, lay, offs[:min(len(offs), len(sizes))], sizes
	return r.call()
}

// readBufs is ReadPackets reading packet i into bufs[i][offset:], each
// buffer as long as the largest packet.
func (r *fileReader) readBufs(bufs [][]byte, sizes []int, offset int) (int, error) {
	if len(bufs) == 0 || len(sizes) == 0 || len(bufs[0]) <= offset {
		return 0, errNoRoom
	}
	r.bufs, r.lay, r.sizes = bufs[:min(len(bufs), len(sizes))], Layout{Head: offset}, sizes
	return r.call()
}

// call runs one read callback in the poller.
func (r *fileReader) call() (int, error) {
	r.n, r.err = 0, nil
	err := r.rc.Read(r.fn)
	n, rerr := r.n, r.err
	r.buf, r.offs, r.sizes, r.bufs = nil, nil, nil, nil
	if err != nil {
		// The poller fails a read only for a closed file (no deadline is
		// ever set on it).
		return 0, &os.PathError{Op: "read", Path: r.name, Err: fmt.Errorf("%w: %w", os.ErrClosed, err)}
	}
	if n == 0 {
		return 0, &os.PathError{Op: "read", Path: r.name, Err: rerr}
	}
	return n, nil
}

// read is the RawConn.Read callback: false (nothing read yet, the queue
// is empty) asks the poller to wait.
func (r *fileReader) read(fd uintptr) bool {
	return !r.drain(fd) || r.n > 0
}

// drain reads packets until the device's queue is empty (it returns
// true), the call's room runs out or a read fails (false).
func (r *fileReader) drain(fd uintptr) (empty bool) {
	start := r.lay.Head
	for r.more(start) {
		dst := r.target(start)
		n, err := rawRead(fd, dst)
		r.reads++
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return true
		case err != nil:
			// Returned now if nothing was read, else by the next call.
			if r.n == 0 {
				r.err = err
			}
			return false
		case n == 0 && r.n == 0:
			r.err = errors.New("tun read: end of file")
			return false
		}
		if r.bufs == nil {
			r.offs[r.n] = start
			start = r.lay.next(start, n)
		}
		r.sizes[r.n] = n
		r.n++
	}
	return false
}

// Loop reads packets from r as ReadPackets does and hands each read to
// handle (packet i is buf[offs[i]:offs[i]+sizes[i]] until handle
// returns), until a read fails; it returns that error (wrapping
// os.ErrClosed once the device is closed). One goroutine only.
//
// A file-backed device's reader calls handle inside its poller callback:
// a read that emptied the device's queue is followed by the wait, not by
// another read. A packet queued while handle ran is not missed: its event
// waits in epoll's ready list and wakes the reader at the scheduler's
// next poll (the runtime resets a descriptor's readiness only when a
// RawConn call starts). Calling ReadPackets in a loop costs one read(2)
// more per wake-up when packets come one at a time; when they come while
// handle runs, the old loop's read would have taken them without that
// trip through the poller (docs/bench/upload.md: the bench shows neither).
//
// Handle returns how long a file-backed device's reader lingers when the
// read emptied the queue (0: it waits in the poller at once): it sleeps
// that long (sleep; nil: nanosleep(2) as a raw call), then reads what
// came meanwhile, and lingers again while handle asks and the lingers
// bring packets (at most maxLingers in a row). A sender that paces its
// datagrams in bursts then costs a wake-up and a hand-off per linger,
// not per handful of datagrams; lingering delays only the packets that
// arrive during it (docs/bench/upload.md). Other readers never linger.
func Loop(r Reader, buf []byte, lay Layout, offs, sizes []int, handle func(n int) (linger time.Duration), sleep func(time.Duration)) error {
	if f, ok := r.(*fileReader); ok {
		f.sleep = sleep
		if f.sleep == nil {
			f.sleep = rawSleep
		}
		return f.loop(buf, lay, offs, sizes, handle)
	}
	for {
		n, err := r.ReadPackets(buf, lay, offs, sizes)
		if err != nil {
			return err
		}
		handle(n)
	}
}

// maxLingers bounds the lingers of one poller callback: then the callback
// returns and the next one starts only once Loop has seen that the device
// was not closed meanwhile (Close waits for the callback to return).
const maxLingers = 16

func (r *fileReader) loop(buf []byte, lay Layout, offs, sizes []int, handle func(n int) time.Duration) error {
	if len(offs) == 0 || len(sizes) == 0 || !lay.room(buf, lay.Head) {
		return errNoRoom
	}
	r.buf, r.lay, r.offs, r.sizes, r.handle = buf, lay, offs[:min(len(offs), len(sizes))], sizes, handle
	defer func() { r.buf, r.offs, r.sizes, r.handle = nil, nil, nil, nil }()
	for {
		r.n, r.err = 0, nil
		if err := r.rc.Read(r.loopFn); err != nil {
			return &os.PathError{Op: "read", Path: r.name, Err: fmt.Errorf("%w: %w", os.ErrClosed, err)}
		}
		if r.err != nil {
			return &os.PathError{Op: "read", Path: r.name, Err: r.err}
		}
	}
}

// loopRead is Loop's RawConn.Read callback: it reads what is queued and
// hands it over, lingering as handle asks. False asks the poller to
// wait: the queue was empty. True leaves the callback: a read failed
// (r.err), the room ran out with packets perhaps still queued, or the
// lingers reached maxLingers; the next callback reads on once Loop has
// seen that the device was not closed meanwhile.
func (r *fileReader) loopRead(fd uintptr) bool {
	for range maxLingers {
		r.n = 0
		empty := r.drain(fd)
		var linger time.Duration
		if r.n > 0 {
			linger = r.handle(r.n)
		}
		if !empty {
			return true
		}
		if linger <= 0 {
			return false
		}
		r.lingers++
		r.sleep(linger)
	}
	return true
}

// rawSleep is nanosleep(2) as a raw system call. An ordinary one would
// wake the runtime's monitor thread as any ordinary call does (raw.go);
// this one keeps its P for the sleep (a stop-the-world waits that long
// at most: the data plane lingers half a millisecond). A signal ends it
// early, which is harmless: the reader reads a little sooner.
func rawSleep(d time.Duration) {
	ts := unix.Timespec{Sec: int64(d / time.Second), Nsec: int64(d % time.Second)}
	unix.RawSyscall(unix.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&ts)), 0, 0)
}

// more says whether the call may read another packet, at start in buf.
func (r *fileReader) more(start int) bool {
	if r.bufs != nil {
		return r.n < len(r.bufs)
	}
	return r.n < len(r.offs) && r.lay.room(r.buf, start)
}

// target is where the next packet is read to.
func (r *fileReader) target(start int) []byte {
	if r.bufs != nil {
		return r.bufs[r.n][r.lay.Head:]
	}
	return r.buf[start : start+r.lay.Max]
}
