// Package udpbatch sends the tunnel's encrypted datagrams in batches: many
// datagrams per sendmmsg(2) call and, where the kernel has UDP GSO, runs
// of equal-size datagrams as one buffer with a UDP_SEGMENT control message
// (the kernel cuts it into datagrams). Both are detected at run time, can
// be switched off, and GSO falls back to one datagram per message when the
// kernel or the route refuses it (EIO, EINVAL).
package udpbatch

import (
	"errors"
	"fmt"
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Options says which offloads may be used.
type Options struct {
	GSO  bool // UDP_SEGMENT: equal-size datagrams as one buffer
	Mmsg bool // sendmmsg: many messages per syscall
}

// Limits of one GSO message: the kernel takes at most 64 segments (older
// kernels' UDP_MAX_SEGMENTS) and an IP packet's worth of payload. The
// arena holds the datagrams of one batch: it starts at firstArena (a
// tunnel at rest sends pings) and grows, keeping what is queued, up to
// maxArena as batches need it (a TSO super-packet's segments are ~70 KB).
const (
	maxSegs     = 64
	maxGSOBytes = 65000
	maxMsgs     = 64
	firstArena  = 16 << 10
	maxArena    = 512 << 10
)

type msg struct {
	start, n int // bytes of the arena
	seg      int // datagram size of the run (GSO), else n
	segs     int
	closed   bool // a short datagram ended the run
}

// Writer queues datagrams for a connected UDP socket and sends them on
// Flush (or when its room runs out). One goroutine uses it at a time.
type Writer struct {
	rc    syscall.RawConn
	gso   bool
	mmsg  bool
	arena []byte
	off   int
	msgs  [maxMsgs]msg
	nmsg  int

	hdrs [maxMsgs]unix.Mmsghdr
	iovs [maxMsgs]unix.Iovec
	ctrl [maxMsgs][]byte // one UDP_SEGMENT cmsg each

	// sent state of the callback
	from, to int
	res      int
	errno    syscall.Errno
	fn       func(fd uintptr) bool

	// Lost counts datagrams dropped by transient errors (a full queue,
	// an ICMP error from earlier): loss, not a broken transport.
	Lost int64
	// Sends counts send syscalls: batching shows as fewer sends than
	// datagrams.
	Sends int64
}

// New returns a Writer for c using what opts allows and the kernel has.
func New(c *net.UDPConn, opts Options) (*Writer, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("udp batch writer: %w", err)
	}
	w := &Writer{rc: rc, mmsg: opts.Mmsg, arena: make([]byte, firstArena)}
	if opts.GSO {
		w.gso = supportsGSO(rc)
	}
	space := unix.CmsgSpace(2)
	all := make([]byte, space*maxMsgs)
	for i := range w.ctrl {
		w.ctrl[i] = all[i*space : (i+1)*space]
		h := (*unix.Cmsghdr)(unsafe.Pointer(&w.ctrl[i][0]))
		h.Level, h.Type = unix.SOL_UDP, unix.UDP_SEGMENT
		h.SetLen(unix.CmsgLen(2))
	}
	w.fn = w.send
	return w, nil
}

// supportsGSO asks the socket for UDP_SEGMENT: kernels without UDP GSO
// (before 4.18) do not know the option.
func supportsGSO(rc syscall.RawConn) bool {
	ok := false
	_ = rc.Control(func(fd uintptr) {
		_, err := unix.GetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_SEGMENT)
		ok = err == nil
	})
	return ok
}

// GSO says UDP GSO is in use (allowed, present, not refused since).
func (w *Writer) GSO() bool { return w.gso }

// Mmsg says sendmmsg is in use.
func (w *Writer) Mmsg() bool { return w.mmsg }

// Buffer returns room for the next datagram: a zero-length slice with
// capacity max (at most 65535) to append the datagram to, then Commit.
// It may flush what is queued to make room.
func (w *Writer) Buffer(max int) ([]byte, error) {
	if max > maxGSOBytes {
		max = 65535
	}
	if w.off+max > len(w.arena) && len(w.arena) < maxArena {
		w.grow(w.off + max)
	}
	if w.off+max > len(w.arena) || (w.nmsg == maxMsgs && !w.canJoin(max)) {
		if err := w.Flush(); err != nil {
			return nil, err
		}
	}
	return w.arena[w.off : w.off : w.off+max], nil
}

// grow enlarges the arena to hold need bytes (at most maxArena), keeping
// the queued datagrams where they are.
func (w *Writer) grow(need int) {
	n := len(w.arena)
	for n < need && n < maxArena {
		n *= 2
	}
	a := make([]byte, min(n, maxArena))
	copy(a, w.arena[:w.off])
	w.arena = a
}

// canJoin says a datagram of up to n bytes may extend the last message.
func (w *Writer) canJoin(n int) bool {
	if !w.gso || w.nmsg == 0 {
		return false
	}
	m := &w.msgs[w.nmsg-1]
	return !m.closed && m.segs < maxSegs && n <= m.seg && m.n+n <= maxGSOBytes
}

// Commit queues p, the datagram appended to the slice Buffer returned.
func (w *Writer) Commit(p []byte) error {
	n := len(p)
	if n == 0 {
		return nil
	}
	if &p[0] != &w.arena[w.off:cap(w.arena)][0] {
		return errors.New("udp batch writer: Commit of a datagram not built in Buffer's slice")
	}
	if w.canJoin(n) {
		m := &w.msgs[w.nmsg-1]
		m.n += n
		m.segs++
		m.closed = n < m.seg
		w.off += n
		return nil
	}
	if w.nmsg == maxMsgs {
		// Buffer left room for a join that this size cannot make.
		if err := w.flushMsgs(); err != nil {
			return err
		}
		copy(w.arena, p)
		w.off = 0
	}
	w.msgs[w.nmsg] = msg{start: w.off, n: n, seg: n, segs: 1}
	w.nmsg++
	w.off += n
	return nil
}

// Flush sends everything queued.
func (w *Writer) Flush() error {
	err := w.flushMsgs()
	w.off = 0
	return err
}

func (w *Writer) flushMsgs() error {
	n := w.nmsg
	w.nmsg = 0
	if n == 0 {
		return nil
	}
	for i := range n {
		m := &w.msgs[i]
		w.iovs[i].Base = &w.arena[m.start]
		w.iovs[i].SetLen(m.n)
		h := &w.hdrs[i].Hdr
		*h = unix.Msghdr{Iov: &w.iovs[i]}
		h.SetIovlen(1)
		if m.segs > 1 {
			c := w.ctrl[i]
			*(*uint16)(unsafe.Pointer(&c[unix.CmsgLen(0)])) = uint16(m.seg)
			h.Control = &c[0]
			h.SetControllen(len(c))
		}
	}
	for i := 0; i < n; {
		w.from, w.to = i, n
		if !w.mmsg {
			w.to = i + 1
		}
		if err := w.rc.Write(w.fn); err != nil {
			return fmt.Errorf("udp send: %w", err)
		}
		if w.errno == 0 {
			i += w.res
			continue
		}
		m := &w.msgs[i]
		switch {
		case m.segs > 1 && (w.errno == unix.EIO || w.errno == unix.EINVAL):
			// GSO refused (no checksum offload on the route, or an
			// old kernel): off from now on, this run as single datagrams.
			w.gso = false
			if err := w.sendSingles(m); err != nil {
				return err
			}
		case transient(w.errno):
			w.Lost += int64(m.segs)
		default:
			return &net.OpError{Op: "sendmmsg", Net: "udp", Err: w.errno}
		}
		i++
	}
	return nil
}

// sendSingles sends a GSO run's datagrams one by one.
func (w *Writer) sendSingles(m *msg) error {
	for off := 0; off < m.n; off += m.seg {
		w.iovs[0].Base = &w.arena[m.start+off]
		w.iovs[0].SetLen(min(m.seg, m.n-off))
		w.hdrs[0].Hdr = unix.Msghdr{Iov: &w.iovs[0]}
		w.hdrs[0].Hdr.SetIovlen(1)
		w.from, w.to = 0, 1
		if err := w.rc.Write(w.fn); err != nil {
			return fmt.Errorf("udp send: %w", err)
		}
		if w.errno != 0 {
			if !transient(w.errno) {
				return &net.OpError{Op: "sendmsg", Net: "udp", Err: w.errno}
			}
			w.Lost++
		}
	}
	return nil
}

// send is the RawConn.Write callback: false asks the poller to wait.
func (w *Writer) send(fd uintptr) bool {
	for {
		// Raw: the socket is non-blocking (EAGAIN waits in the poller),
		// and an ordinary call would wake the runtime's monitor thread
		// whenever the process was idle before it (tunio's raw.go).
		r, _, errno := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&w.hdrs[w.from])), uintptr(w.to-w.from), 0, 0, 0)
		w.Sends++
		switch errno {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		w.res, w.errno = int(r), errno
		if errno == 0 && r == 0 {
			w.errno = unix.EIO
		}
		return true
	}
}

// transient: "this datagram did not get through", not a broken socket.
func transient(e syscall.Errno) bool {
	switch e {
	case unix.ECONNREFUSED, unix.EPERM, unix.EACCES, unix.ENETUNREACH, unix.EHOSTUNREACH,
		unix.ENETDOWN, unix.EHOSTDOWN, unix.ENOBUFS, unix.EMSGSIZE:
		return true
	}
	return false
}
