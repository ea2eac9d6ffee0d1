package transport

import (
	"errors"
	"fmt"
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// MmsgReader reads up to batch datagrams per recvmmsg(2) from a UDP socket
// into the caller's buffers without allocating: the headers and iovecs are
// built once and only pointed at the buffers on each Read. Only one
// goroutine may call Read.
type MmsgReader struct {
	rc   syscall.RawConn
	iov  []unix.Iovec
	hdrs []unix.Mmsghdr
	k    int // headers in use by this Read
	n    int
	err  error
	fn   func(fd uintptr) bool
}

// NewMmsgReader prepares batch reads of up to batch datagrams from c.
func NewMmsgReader(c *net.UDPConn, batch int) (*MmsgReader, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("recvmmsg: %w", err)
	}
	r := &MmsgReader{rc: rc, iov: make([]unix.Iovec, batch), hdrs: make([]unix.Mmsghdr, batch)}
	for i := range batch {
		r.hdrs[i].Hdr.Iov = &r.iov[i]
		r.hdrs[i].Hdr.SetIovlen(1)
	}
	r.fn = r.recv // one closure for the reader's life
	return r, nil
}

// recvFlags: MSG_TRUNC makes each message's length the datagram's own,
// even when it was longer than its buffer (and cut to it).
const recvFlags = unix.MSG_DONTWAIT | unix.MSG_TRUNC

// recv is the RawConn.Read callback: false asks the poller to wait.
func (r *MmsgReader) recv(fd uintptr) bool {
	// Raw: MSG_DONTWAIT never blocks (EAGAIN waits in the poller), and an
	// ordinary call would wake the runtime's monitor thread whenever the
	// process was idle before it (tunio's raw.go).
	n, _, errno := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hdrs[0])), uintptr(r.k), recvFlags, 0, 0)
	for errno == unix.EINTR {
		n, _, errno = unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hdrs[0])), uintptr(r.k), recvFlags, 0, 0)
	}
	switch {
	case errno == unix.EAGAIN:
		return false
	case errno != 0:
		r.n, r.err = 0, errno
	default:
		r.n, r.err = int(n), nil
	}
	return true
}

// Read blocks until at least one datagram arrived and returns how many:
// datagram i is bufs[i][:sizes[i]]. It reads at most min(len(bufs), batch)
// datagrams; every buffer must be non-empty. A size beyond its buffer
// says the datagram was that long and did not fit: it was cut short (and
// is lost). ICMP errors reported on a connected socket come back as
// errors (see TransientUDPError).
func (r *MmsgReader) Read(bufs [][]byte, sizes []int) (int, error) {
	r.k = min(len(bufs), len(sizes), len(r.hdrs))
	if r.k == 0 {
		return 0, errors.New("recvmmsg: no buffer")
	}
	for i := range r.k {
		r.iov[i].Base = &bufs[i][0]
		r.iov[i].SetLen(len(bufs[i]))
	}
	if err := r.rc.Read(r.fn); err != nil {
		return 0, err
	}
	if r.err != nil {
		return 0, &net.OpError{Op: "recvmmsg", Net: "udp", Err: r.err}
	}
	if r.n == 0 {
		return 0, errors.New("recvmmsg: no datagram")
	}
	for i := range r.n {
		sizes[i] = int(r.hdrs[i].Len)
	}
	return r.n, nil
}
