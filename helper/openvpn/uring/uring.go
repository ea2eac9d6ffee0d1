// Package uring is the little of Linux io_uring the TUN reader needs: a
// ring whose completions are run only by the thread that waits for them
// (IORING_SETUP_SINGLE_ISSUER|DEFER_TASKRUN), a ring of provided buffers,
// and the submission of multishot reads, polls and cancels. One armed
// multishot read delivers every packet a device queues, each into a buffer
// of its own, and one io_uring_enter(2) collects them all: no system call
// per packet (issue 14: on this paravirtualized machine every system call
// return is dear).
//
// The ABI facts (structure layouts, constants) come from the kernel's
// uapi header linux/io_uring.h; the system's copy of that header predates
// some of them (multishot read, 6.7; IORING_SETUP_NO_SQARRAY, 6.6).
package uring

import (
	"errors"
	"fmt"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Operations (enum io_uring_op).
const (
	OpPollAdd       = 6
	OpAsyncCancel   = 14
	OpReadMultishot = 49
)

// Flags of an SQE, a CQE, the setup and io_uring_enter(2).
const (
	sqeBufferSelect = 1 << 5 // IOSQE_BUFFER_SELECT

	CQEFBuffer = 1 << 0 // IORING_CQE_F_BUFFER: the buffer id is res's upper 16 bits
	CQEFMore   = 1 << 1 // IORING_CQE_F_MORE: the request stays armed

	setupCQSize       = 1 << 3
	setupRDisabled    = 1 << 6
	setupTaskrunFlag  = 1 << 9
	setupSingleIssuer = 1 << 12
	setupDeferTaskrun = 1 << 13
	setupNoSQArray    = 1 << 16

	featSingleMmap = 1 << 0
	featExtArg     = 1 << 8

	enterGetEvents = 1 << 0
	enterExtArg    = 1 << 3

	sqTaskrun = 1 << 2 // IORING_SQ_TASKRUN: deferred completions wait for an enter

	asyncCancelAny = 1 << 2 // IORING_ASYNC_CANCEL_ANY

	offSQRing = 0
	offSQEs   = 0x10000000

	registerProbe        = 8
	registerEnableRings  = 12
	registerPbufRing     = 22
	unregisterPbufRing   = 23
	probeOpSupported     = 1
	sqeSize, cqeSize     = 64, 16
	pbufEntrySize        = 16
	pbufTailOff          = 14 // io_uring_buf_ring.tail overlays bufs[0].resv
	probeOps             = 256
	probeHeader, probeOp = 16, 8
)

// params is struct io_uring_params.
type params struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFd uint32
	resv                                                                   [3]uint32
	sqOff                                                                  struct {
		head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
		resv2                                                           uint64
	}
	cqOff struct {
		head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
		resv2                                                           uint64
	}
}

// SQE is struct io_uring_sqe (64 bytes) as this package fills it.
type SQE struct {
	Opcode   uint8
	Flags    uint8
	Ioprio   uint16
	Fd       int32
	Off      uint64
	Addr     uint64
	Len      uint32
	OpFlags  uint32 // rw_flags, poll32_events, cancel_flags
	UserData uint64
	BufGroup uint16
	_        uint16
	_        uint32
	_        [2]uint64
}

// CQE is struct io_uring_cqe.
type CQE struct {
	UserData uint64
	Res      int32
	Flags    uint32
}

// Ring is one io_uring instance, made and used by one goroutine locked
// to its thread (Enable binds the ring to that thread).
type Ring struct {
	fd            int
	rings, sqeMem []byte

	sqHead, sqTail, sqFlags *uint32
	sqMask, sqEntries       uint32
	sqes                    []SQE
	sqPending               uint32 // SQEs written but not yet submitted

	cqHead, cqTail *uint32
	cqMask         uint32
	cqes           []CQE
}

// ErrUnsupported is wrapped by New's errors when the kernel has no
// io_uring, refuses it (io_uring_disabled, seccomp, EPERM) or lacks what
// this package needs.
var ErrUnsupported = errors.New("io_uring unsupported")

// setup is io_uring_setup(2); a variable so that tests can refuse it.
var setup = func(entries uint32, p *params) (int, error) {
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(p)), 0)
	if errno != 0 {
		return -1, errno
	}
	return int(fd), nil
}

// Refuse makes New fail with err (as a kernel refusing io_uring would)
// until the returned function restores it; for tests of fallbacks.
func Refuse(err error) (restore func()) {
	old := setup
	setup = func(uint32, *params) (int, error) { return -1, err }
	return func() { setup = old }
}

// New makes a disabled ring of sqEntries submission and cqEntries
// completion slots whose deferred completions run only in io_uring_enter
// calls of the thread that Enables it. It fails wrapping ErrUnsupported
// where the kernel lacks that ring or a multishot read.
func New(sqEntries, cqEntries uint32) (*Ring, error) {
	p := params{cqEntries: cqEntries, flags: setupCQSize | setupRDisabled | setupTaskrunFlag | setupSingleIssuer | setupDeferTaskrun | setupNoSQArray}
	fd, err := setup(sqEntries, &p)
	if err != nil {
		return nil, fmt.Errorf("%w: io_uring_setup: %w", ErrUnsupported, err)
	}
	r := &Ring{fd: fd}
	if err := r.mapRings(&p); err != nil {
		r.Close()
		return nil, err
	}
	if err := r.probe(OpReadMultishot); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

func (r *Ring) mapRings(p *params) error {
	if p.features&featSingleMmap == 0 || p.features&featExtArg == 0 {
		return fmt.Errorf("%w: kernel too old (features %#x)", ErrUnsupported, p.features)
	}
	size := int(p.cqOff.cqes) + int(p.cqEntries)*cqeSize
	if p.sqOff.array != 0 {
		size = max(size, int(p.sqOff.array)+int(p.sqEntries)*4)
	}
	rings, err := unix.Mmap(r.fd, offSQRing, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("io_uring: mmap rings: %w", err)
	}
	r.rings = rings
	sqeMem, err := unix.Mmap(r.fd, offSQEs, int(p.sqEntries)*sqeSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fmt.Errorf("io_uring: mmap sqes: %w", err)
	}
	r.sqeMem = sqeMem
	u32 := func(off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&rings[off])) }
	r.sqHead, r.sqTail, r.sqFlags = u32(p.sqOff.head), u32(p.sqOff.tail), u32(p.sqOff.flags)
	r.sqMask, r.sqEntries = *u32(p.sqOff.ringMask), p.sqEntries
	r.sqes = unsafe.Slice((*SQE)(unsafe.Pointer(&sqeMem[0])), p.sqEntries)
	r.cqHead, r.cqTail = u32(p.cqOff.head), u32(p.cqOff.tail)
	r.cqMask = *u32(p.cqOff.ringMask)
	r.cqes = unsafe.Slice((*CQE)(unsafe.Pointer(&rings[p.cqOff.cqes])), p.cqEntries)
	return nil
}

// probe fails unless the kernel has op.
func (r *Ring) probe(op int) error {
	buf := make([]byte, probeHeader+probeOps*probeOp)
	if err := r.register(registerProbe, unsafe.Pointer(&buf[0]), probeOps); err != nil {
		return fmt.Errorf("%w: probe: %w", ErrUnsupported, err)
	}
	if lastOp := int(buf[0]); op > lastOp {
		return fmt.Errorf("%w: kernel lacks operation %d (last %d)", ErrUnsupported, op, lastOp)
	}
	if flags := *(*uint16)(unsafe.Pointer(&buf[probeHeader+op*probeOp+2])); flags&probeOpSupported == 0 {
		return fmt.Errorf("%w: kernel lacks operation %d", ErrUnsupported, op)
	}
	return nil
}

func (r *Ring) register(op uintptr, arg unsafe.Pointer, n uintptr) error {
	_, _, errno := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.fd), op, uintptr(arg), n, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// Enable starts the ring and binds it to the calling thread: from then
// on only this thread may submit and wait (the caller holds
// runtime.LockOSThread until it closed the ring).
func (r *Ring) Enable() error {
	if err := r.register(registerEnableRings, nil, 0); err != nil {
		return fmt.Errorf("io_uring: enable: %w", err)
	}
	return nil
}

// Close unmaps the ring and closes it. Requests still armed are
// cancelled by the kernel after Close returns: cancel them first to be
// sure they released their files.
func (r *Ring) Close() error {
	var errs []error
	for _, m := range [][]byte{r.sqeMem, r.rings} {
		if m != nil {
			errs = append(errs, unix.Munmap(m))
		}
	}
	r.sqeMem, r.rings, r.sqes, r.cqes = nil, nil, nil, nil
	if r.fd >= 0 {
		errs = append(errs, unix.Close(r.fd))
		r.fd = -1
	}
	return errors.Join(errs...)
}

// Mappings are the addresses of the ring's mappings, for tests that
// check they are gone after Close.
func (r *Ring) Mappings() []uintptr {
	return []uintptr{uintptr(unsafe.Pointer(&r.rings[0])), uintptr(unsafe.Pointer(&r.sqeMem[0]))}
}

// next returns the next free SQE, zeroed, or nil if the queue is full.
func (r *Ring) next() *SQE {
	tail := *r.sqTail + r.sqPending
	if tail-atomic.LoadUint32(r.sqHead) >= r.sqEntries {
		return nil
	}
	sqe := &r.sqes[tail&r.sqMask]
	*sqe = SQE{}
	r.sqPending++
	return sqe
}

var errSQFull = errors.New("io_uring: submission queue full")

// ReadMultishot queues a multishot read of fd into buffers of group
// bgid, its completions tagged tag.
func (r *Ring) ReadMultishot(fd int, bgid uint16, tag uint64) error {
	sqe := r.next()
	if sqe == nil {
		return errSQFull
	}
	sqe.Opcode, sqe.Flags, sqe.Fd, sqe.BufGroup, sqe.UserData = OpReadMultishot, sqeBufferSelect, int32(fd), bgid, tag
	return nil
}

// PollIn queues a one-shot poll for fd to become readable.
func (r *Ring) PollIn(fd int, tag uint64) error {
	sqe := r.next()
	if sqe == nil {
		return errSQFull
	}
	sqe.Opcode, sqe.Fd, sqe.OpFlags, sqe.UserData = OpPollAdd, int32(fd), unix.POLLIN, tag
	return nil
}

// CancelAll queues the cancel of every request in flight.
func (r *Ring) CancelAll(tag uint64) error {
	sqe := r.next()
	if sqe == nil {
		return errSQFull
	}
	sqe.Opcode, sqe.Fd, sqe.OpFlags, sqe.UserData = OpAsyncCancel, -1, asyncCancelAny, tag
	return nil
}

// Pending says whether completions are deferred until the next enter.
func (r *Ring) Pending() bool {
	return atomic.LoadUint32(r.sqFlags)&sqTaskrun != 0
}

// Queued says whether SQEs wait for Submit or Wait.
func (r *Ring) Queued() bool { return r.sqPending > 0 }

// Ready says whether completions are posted and not yet taken.
func (r *Ring) Ready() bool {
	return atomic.LoadUint32(r.cqTail) != *r.cqHead
}

// Submit submits the queued SQEs and runs the deferred completions
// without waiting. It is a raw system call (it never blocks): the
// scheduler need not know of it (see tunio's raw.go).
func (r *Ring) Submit() error {
	return r.enter(0, false)
}

// Wait submits the queued SQEs and waits until at least one completion
// is posted. The thread blocks in the kernel, as the scheduler knows.
func (r *Ring) Wait() error {
	return r.enter(1, true)
}

// WaitRaw is Wait for at most d, as a raw system call: the scheduler
// does not see the thread block, so nothing hands its P to another
// thread or wakes the runtime's monitor (sysmon) for it; the P waits
// with it (a stop-the-world waits up to d). It says whether a completion
// is posted or deferred (false: d passed).
func (r *Ring) WaitRaw(d time.Duration) (bool, error) {
	ts := unix.NsecToTimespec(int64(d))
	arg := getEventsArg{ts: uint64(uintptr(unsafe.Pointer(&ts)))}
	n := r.sqPending
	if n > 0 {
		atomic.StoreUint32(r.sqTail, *r.sqTail+n)
		r.sqPending = 0
	}
	for {
		_, _, errno := unix.RawSyscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(n), 1, enterGetEvents|enterExtArg, uintptr(unsafe.Pointer(&arg)), unsafe.Sizeof(arg))
		n = 0
		switch errno {
		case 0, unix.ETIME:
			return r.Ready() || r.Pending(), nil
		case unix.EINTR:
			// A signal (the scheduler's preemption request): the
			// caller checks its state and waits again.
			return r.Ready() || r.Pending(), nil
		case unix.EAGAIN, unix.EBUSY:
			continue
		}
		return false, fmt.Errorf("io_uring_enter: %w", errno)
	}
}

// getEventsArg is struct io_uring_getevents_arg.
type getEventsArg struct {
	sigmask   uint64
	sigmaskSz uint32
	minWait   uint32
	ts        uint64
}

func (r *Ring) enter(minComplete uint32, block bool) error {
	for {
		n := r.sqPending
		if n > 0 {
			atomic.StoreUint32(r.sqTail, *r.sqTail+n)
		}
		var errno syscall.Errno
		var done uintptr
		if block {
			done, _, errno = unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(n), uintptr(minComplete), enterGetEvents, 0, 0)
		} else {
			done, _, errno = unix.RawSyscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(n), uintptr(minComplete), enterGetEvents, 0, 0)
		}
		if errno == 0 || (errno == unix.EINTR && n == 0) {
			r.sqPending = 0
			if errno == 0 && uint32(done) < n {
				return fmt.Errorf("io_uring_enter: submitted %d of %d", done, n)
			}
			return nil
		}
		// The tail was published: the kernel consumed what it took.
		r.sqPending = 0
		if errno == unix.EINTR || errno == unix.EAGAIN || errno == unix.EBUSY {
			continue
		}
		return fmt.Errorf("io_uring_enter: %w", errno)
	}
}

// Reap calls fn for each posted completion, in order, until fn returns
// false, and returns how many it took.
func (r *Ring) Reap(fn func(c *CQE) bool) int {
	head, tail := *r.cqHead, atomic.LoadUint32(r.cqTail)
	n := 0
	for ; head != tail; head++ {
		n++
		if !fn(&r.cqes[head&r.cqMask]) {
			head++
			break
		}
	}
	atomic.StoreUint32(r.cqHead, head)
	return n
}

// BufRing is a ring of provided buffers registered with a Ring: the
// kernel takes one per multishot read completion, the owner gives them
// back with Put and Publish.
type BufRing struct {
	ring    *Ring
	bgid    uint16
	mem     []byte // the entries
	entries uint16
	tail    uint16
}

// RegisterBufRing registers an empty ring of entries (a power of two)
// provided buffers as group bgid.
func (r *Ring) RegisterBufRing(entries uint16, bgid uint16) (*BufRing, error) {
	if entries == 0 || entries&(entries-1) != 0 {
		return nil, fmt.Errorf("io_uring: %d buffer ring entries is not a power of two", entries)
	}
	size := (int(entries)*pbufEntrySize + unix.Getpagesize() - 1) &^ (unix.Getpagesize() - 1)
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("io_uring: mmap buffer ring: %w", err)
	}
	reg := struct {
		ringAddr uint64
		entries  uint32
		bgid     uint16
		pad      uint16
		resv     [3]uint64
	}{ringAddr: uint64(uintptr(unsafe.Pointer(&mem[0]))), entries: uint32(entries), bgid: bgid}
	if err := r.register(registerPbufRing, unsafe.Pointer(&reg), 1); err != nil {
		unix.Munmap(mem)
		return nil, fmt.Errorf("%w: register buffer ring: %w", ErrUnsupported, err)
	}
	return &BufRing{ring: r, bgid: bgid, mem: mem, entries: entries}, nil
}

// Put queues buffer bid (len(b) bytes at b) for the kernel; Publish
// hands the queued ones over.
func (b *BufRing) Put(buf []byte, bid uint16) {
	e := b.mem[int(b.tail&(b.entries-1))*pbufEntrySize:]
	*(*uint64)(unsafe.Pointer(&e[0])) = uint64(uintptr(unsafe.Pointer(&buf[0])))
	*(*uint32)(unsafe.Pointer(&e[8])) = uint32(len(buf))
	*(*uint16)(unsafe.Pointer(&e[12])) = bid
	b.tail++
}

// Publish stores the tail with release semantics. Go has no 16-bit
// atomic store: the tail is stored with the 16 bits in front of it
// (entry 0's buffer id, written before), in one 32-bit store.
func (b *BufRing) Publish() {
	bid0 := uint32(*(*uint16)(unsafe.Pointer(&b.mem[12])))
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&b.mem[pbufTailOff-2])), bid0|uint32(b.tail)<<16)
}

// Unregister removes the buffer ring from the ring (no read may be
// armed on it) and unmaps it.
func (b *BufRing) Unregister() error {
	reg := struct {
		ringAddr uint64
		entries  uint32
		bgid     uint16
		pad      uint16
		resv     [3]uint64
	}{bgid: b.bgid}
	err := b.ring.register(unregisterPbufRing, unsafe.Pointer(&reg), 1)
	return errors.Join(err, unix.Munmap(b.mem))
}

// Mapping is the address of the buffer ring's mapping, for tests.
func (b *BufRing) Mapping() uintptr { return uintptr(unsafe.Pointer(&b.mem[0])) }
