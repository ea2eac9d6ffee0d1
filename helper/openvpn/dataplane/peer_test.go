package dataplane

import (
	"encoding/binary"
	"fmt"
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// groReader is the test peer's receive side: recvmmsg on a socket with
// UDP_GRO, so that a run of equal-size datagrams the client sent with GSO
// arrives as one buffer with its segment size (as on a real server with
// GRO), and the peer is not the bottleneck of the benchmark. Without GRO
// from the sender each datagram arrives alone. It does not allocate.
type groReader struct {
	rc   syscall.RawConn
	bufs [][]byte
	ctrl [][]byte
	iov  []unix.Iovec
	hdrs []unix.Mmsghdr
	n    int
	err  error
	fn   func(fd uintptr) bool
}

func newGROReader(c *net.UDPConn, batch int) (*groReader, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_GRO, 1) }); err != nil || serr != nil {
		return nil, fmt.Errorf("UDP_GRO: %v %v", err, serr)
	}
	r := &groReader{rc: rc, bufs: make([][]byte, batch), ctrl: make([][]byte, batch), iov: make([]unix.Iovec, batch), hdrs: make([]unix.Mmsghdr, batch)}
	for i := range batch {
		r.bufs[i] = make([]byte, 65535)
		r.ctrl[i] = make([]byte, unix.CmsgSpace(4))
		r.iov[i].Base = &r.bufs[i][0]
		r.iov[i].SetLen(len(r.bufs[i]))
	}
	r.fn = r.recv
	return r, nil
}

func (r *groReader) recv(fd uintptr) bool {
	for i := range r.hdrs {
		r.hdrs[i].Hdr = unix.Msghdr{Iov: &r.iov[i], Control: &r.ctrl[i][0]}
		r.hdrs[i].Hdr.SetIovlen(1)
		r.hdrs[i].Hdr.SetControllen(len(r.ctrl[i]))
	}
	for {
		n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hdrs[0])), uintptr(len(r.hdrs)), unix.MSG_DONTWAIT, 0, 0)
		switch errno {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		case 0:
			r.n, r.err = int(n), nil
		default:
			r.n, r.err = 0, errno
		}
		return true
	}
}

// read blocks for a batch and returns how many buffers arrived.
func (r *groReader) read() (int, error) {
	if err := r.rc.Read(r.fn); err != nil {
		return 0, err
	}
	return r.n, r.err
}

// datagrams calls f for every datagram of buffer i (a GRO buffer holds
// several of its segment size) and returns how many there were.
func (r *groReader) datagrams(i int, f func([]byte)) int {
	b := r.bufs[i][:r.hdrs[i].Len]
	seg := len(b)
	h := &r.hdrs[i].Hdr
	if h.Controllen >= uint64(unix.CmsgLen(4)) {
		c := r.ctrl[i]
		cm := (*unix.Cmsghdr)(unsafe.Pointer(&c[0]))
		if cm.Level == unix.SOL_UDP && cm.Type == unix.UDP_GRO {
			seg = int(binary.NativeEndian.Uint32(c[unix.CmsgLen(0):]))
		}
	}
	if seg <= 0 {
		return 0
	}
	k := 0
	for ; len(b) > 0; k++ {
		m := min(seg, len(b))
		f(b[:m])
		b = b[m:]
	}
	return k
}
