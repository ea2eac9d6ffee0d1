// Package uring is the little of Linux io_uring the TUN reader needs: a
// ring, a ring of provided buffers, and batches of reads submitted and
// completed in one io_uring_enter(2). On a non-blocking descriptor each
// read of a batch completes during the call, with a packet or EAGAIN, so
// one system call does the work of a batch of read(2) calls (issue 14: on
// this paravirtualized machine every system call return is dear) and no
// request outlives the call: the ring never holds the device open.
//
// The ABI facts (structure layouts, constants) come from the kernel's
// uapi header linux/io_uring.h; the system's copy of that header predates
// some of them (IORING_SETUP_NO_SQARRAY, 6.6).
package uring

import (
	"errors"
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// OpRead and OpWrite are IORING_OP_READ and IORING_OP_WRITE (enum
// io_uring_op).
const (
	OpRead  = 22
	OpWrite = 23
)

// Flags of an SQE, a CQE, the setup and io_uring_enter(2).
const (
	sqeIOLink       = 1 << 2 // IOSQE_IO_LINK
	sqeBufferSelect = 1 << 5 // IOSQE_BUFFER_SELECT

	// rwfNowait (RWF_NOWAIT): a read that finds nothing completes with
	// EAGAIN at once; without it the ring would arm a poll and finish
	// the read later, holding the file.
	rwfNowait = 0x8

	// CQEFBuffer (IORING_CQE_F_BUFFER): the buffer id is in the upper 16
	// bits of the flags.
	CQEFBuffer = 1 << 0

	setupCQSize    = 1 << 3
	setupNoSQArray = 1 << 16

	featSingleMmap = 1 << 0
	featNoDrop     = 1 << 1

	enterGetEvents = 1 << 0

	offSQRing = 0
	offSQEs   = 0x10000000

	registerProbe      = 8
	registerPbufRing   = 22
	unregisterPbufRing = 23
	probeOpSupported   = 1
	sqeSize, cqeSize   = 64, 16
	pbufEntrySize      = 16
	pbufTailOff        = 14 // io_uring_buf_ring.tail overlays bufs[0].resv
	probeOps           = 256
	probeHeader        = 16
	probeOp            = 8
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
	OpFlags  uint32 // rw_flags
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

// Ring is one io_uring instance, used by one goroutine at a time.
type Ring struct {
	fd            int
	rings, sqeMem []byte

	sqHead, sqTail    *uint32
	sqMask, sqEntries uint32
	sqes              []SQE
	sqPending         uint32 // SQEs written but not yet submitted

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

// New makes a ring of entries submission slots and as many completion
// slots for the operations ops. It fails wrapping ErrUnsupported where the
// kernel lacks io_uring (or one as recent as 6.6), refuses it, or lacks
// one of ops.
func New(entries uint32, ops ...int) (*Ring, error) {
	p := params{cqEntries: entries, flags: setupCQSize | setupNoSQArray}
	fd, err := setup(entries, &p)
	if err != nil {
		return nil, fmt.Errorf("%w: io_uring_setup: %w", ErrUnsupported, err)
	}
	r := &Ring{fd: fd}
	if err := r.mapRings(&p); err != nil {
		r.Close()
		return nil, err
	}
	for _, op := range ops {
		if err := r.probe(op); err != nil {
			r.Close()
			return nil, err
		}
	}
	return r, nil
}

func (r *Ring) mapRings(p *params) error {
	if p.features&featSingleMmap == 0 || p.features&featNoDrop == 0 {
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
	r.sqHead, r.sqTail = u32(p.sqOff.head), u32(p.sqOff.tail)
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

// Close unmaps the ring and closes it.
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

// Free is how many SQEs can be queued before Enter.
func (r *Ring) Free() int {
	return int(r.sqEntries - (*r.sqTail + r.sqPending - atomic.LoadUint32(r.sqHead)))
}

// Read queues a read of at most n bytes of fd into a buffer of group
// bgid, its completion tagged tag; false if the queue is full.
func (r *Ring) Read(fd int, n uint32, bgid uint16, tag uint64) bool {
	if r.Free() == 0 {
		return false
	}
	sqe := &r.sqes[(*r.sqTail+r.sqPending)&r.sqMask]
	*sqe = SQE{Opcode: OpRead, Flags: sqeBufferSelect, Fd: int32(fd), Len: n, OpFlags: rwfNowait, BufGroup: bgid, UserData: tag}
	r.sqPending++
	return true
}

// Write queues a write of buf to fd, its completion tagged tag; false if
// the queue is full. buf must stay as it is until the completion is
// reaped. With RWF_NOWAIT a write the device cannot take at once
// completes with EAGAIN during the call instead of being handed to the
// kernel's workers: no write outlives its Enter. With link, the next SQE
// queued runs only after this write wrote all of buf, and completes with
// ECANCELED otherwise (IOSQE_IO_LINK): the writes keep their order.
func (r *Ring) Write(fd int, buf []byte, tag uint64, link bool) bool {
	if r.Free() == 0 {
		return false
	}
	var flags uint8
	if link {
		flags = sqeIOLink
	}
	sqe := &r.sqes[(*r.sqTail+r.sqPending)&r.sqMask]
	*sqe = SQE{Opcode: OpWrite, Flags: flags, Fd: int32(fd), Addr: uint64(uintptr(unsafe.Pointer(&buf[0]))), Len: uint32(len(buf)), OpFlags: rwfNowait, UserData: tag}
	r.sqPending++
	return true
}

// Enter submits the queued SQEs and waits for minComplete completions
// (0: none). It is a raw system call: on a non-blocking descriptor the
// reads complete during the call, which never blocks for them, so the
// scheduler need not know of it (see tunio's raw.go).
func (r *Ring) Enter(minComplete uint32) error {
	n := r.sqPending
	if n > 0 {
		atomic.StoreUint32(r.sqTail, *r.sqTail+n)
		r.sqPending = 0
	}
	var flags uintptr
	if minComplete > 0 {
		flags = enterGetEvents
	}
	for {
		done, _, errno := unix.RawSyscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(n), uintptr(minComplete), flags, 0, 0)
		switch errno {
		case 0:
			if uint32(done) < n {
				// The kernel takes the rest at the next Enter.
				return fmt.Errorf("io_uring_enter: submitted %d of %d", done, n)
			}
			return nil
		case unix.EINTR, unix.EAGAIN, unix.EBUSY:
			if n == 0 || done == 0 {
				continue
			}
		}
		return fmt.Errorf("io_uring_enter: %w", errno)
	}
}

// Reap calls fn for each posted completion, in order, and returns how
// many it took.
func (r *Ring) Reap(fn func(c *CQE)) int {
	head, tail := *r.cqHead, atomic.LoadUint32(r.cqTail)
	n := int(tail - head)
	for ; head != tail; head++ {
		fn(&r.cqes[head&r.cqMask])
	}
	atomic.StoreUint32(r.cqHead, head)
	return n
}

// BufRing is a ring of provided buffers registered with a Ring: the
// kernel takes one per read that returns data, the owner gives them back
// with Put and Publish.
type BufRing struct {
	ring    *Ring
	bgid    uint16
	mem     []byte // the entries
	entries uint16
	tail    uint16
}

// bufReg is struct io_uring_buf_reg.
type bufReg struct {
	ringAddr uint64
	entries  uint32
	bgid     uint16
	pad      uint16
	resv     [3]uint64
}

// RegisterBufRing registers an empty ring of entries (a power of two)
// provided buffers as group bgid.
func (r *Ring) RegisterBufRing(entries uint16, bgid uint16) (*BufRing, error) {
	if entries == 0 || entries&(entries-1) != 0 {
		return nil, fmt.Errorf("io_uring: %d buffer ring entries is not a power of two", entries)
	}
	page := unix.Getpagesize()
	size := (int(entries)*pbufEntrySize + page - 1) &^ (page - 1)
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("io_uring: mmap buffer ring: %w", err)
	}
	reg := bufReg{ringAddr: uint64(uintptr(unsafe.Pointer(&mem[0]))), entries: uint32(entries), bgid: bgid}
	if err := r.register(registerPbufRing, unsafe.Pointer(&reg), 1); err != nil {
		unix.Munmap(mem)
		return nil, fmt.Errorf("%w: register buffer ring: %w", ErrUnsupported, err)
	}
	return &BufRing{ring: r, bgid: bgid, mem: mem, entries: entries}, nil
}

// Put queues buf as buffer bid for the kernel; Publish hands the queued
// ones over.
func (b *BufRing) Put(buf []byte, bid uint16) {
	e := b.mem[int(b.tail&(b.entries-1))*pbufEntrySize:]
	*(*uint64)(unsafe.Pointer(&e[0])) = uint64(uintptr(unsafe.Pointer(&buf[0])))
	*(*uint32)(unsafe.Pointer(&e[8])) = uint32(len(buf))
	*(*uint16)(unsafe.Pointer(&e[12])) = bid
	b.tail++
}

// Publish stores the tail with release semantics. Go has no 16-bit
// atomic store: the tail goes with the 16 bits in front of it (entry 0's
// buffer id, which Put wrote before) in one 32-bit store, little-endian
// as the hosts this runs on.
func (b *BufRing) Publish() {
	bid0 := uint32(*(*uint16)(unsafe.Pointer(&b.mem[12])))
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&b.mem[pbufTailOff-2])), bid0|uint32(b.tail)<<16)
}

// Unregister removes the buffer ring from the ring and unmaps it.
func (b *BufRing) Unregister() error {
	reg := bufReg{bgid: b.bgid}
	err := b.ring.register(unregisterPbufRing, unsafe.Pointer(&reg), 1)
	return errors.Join(err, unix.Munmap(b.mem))
}

// Mapping is the address of the buffer ring's mapping, for tests.
func (b *BufRing) Mapping() uintptr { return uintptr(unsafe.Pointer(&b.mem[0])) }
