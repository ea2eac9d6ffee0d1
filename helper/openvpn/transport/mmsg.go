package transport

import (
	"errors"
	"fmt"
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// MmsgReader reads up to len(bufs) datagrams per recvmmsg(2) from a UDP
// socket without allocating: the headers and iovecs are built once over
// bufs and reused. Only one goroutine may call Read.
type MmsgReader struct {
	rc   syscall.RawConn
	bufs [][]byte
	iov  []unix.Iovec
	hdrs []unix.Mmsghdr
	n    int
	err  error
	fn   func(fd uintptr) bool
}

func NewMmsgReader(c *net.UDPConn, batch, size int) (*MmsgReader, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("recvmmsg: %w", err)
	}
	r := &MmsgReader{rc: rc, bufs: make([][]byte, batch), iov: make([]unix.Iovec, batch), hdrs: make([]unix.Mmsghdr, batch)}
	for i := range batch {
		r.bufs[i] = make([]byte, size)
		r.iov[i].Base = &r.bufs[i][0]
		r.iov[i].SetLen(size)
		r.hdrs[i].Hdr.Iov = &r.iov[i]
		r.hdrs[i].Hdr.SetIovlen(1)
	}
	r.fn = r.recv // one closure for the reader's life
	return r, nil
}

// recv is the RawConn.Read callback: false asks the poller to wait.
func (r *MmsgReader) recv(fd uintptr) bool {
	n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hdrs[0])), uintptr(len(r.hdrs)), unix.MSG_DONTWAIT, 0, 0)
	for errno == unix.EINTR {
		n, _, errno = unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hdrs[0])), uintptr(len(r.hdrs)), unix.MSG_DONTWAIT, 0, 0)
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

// Read blocks until at least one datagram arrived and returns how many;
// datagram i is Packet(i). ICMP errors reported on a connected socket
// come back as errors (see TransientUDPError).
func (r *MmsgReader) Read() (int, error) {
	if err := r.rc.Read(r.fn); err != nil {
		return 0, err
	}
	if r.err != nil {
		return 0, &net.OpError{Op: "recvmmsg", Net: "udp", Err: r.err}
	}
	if r.n == 0 {
		return 0, errors.New("recvmmsg: no datagram")
	}
	return r.n, nil
}

// Packet is datagram i of the last Read (valid until the next Read).
func (r *MmsgReader) Packet(i int) []byte { return r.bufs[i][:r.hdrs[i].Len] }
