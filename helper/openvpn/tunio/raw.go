package tunio

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The data path's reads and writes of a non-blocking TUN descriptor are
// raw system calls: they never block (EAGAIN hands the wait to the
// poller), so the runtime need not know about them. An ordinary call
// (syscall.Syscall) tells the scheduler it enters a system call, and the
// first one after the process was idle wakes the runtime's monitor thread
// (sysmon) from its deep sleep. A tunnel that carries one packet per
// wake-up went idle between any two packets, so every packet also woke
// and put to sleep that thread: half the context switches of a UDP
// upload (docs/bench/upload.md).

// rawRead is read(2) on a non-blocking descriptor.
func rawRead(fd uintptr, p []byte) (int, error) { return rawIO(unix.SYS_READ, fd, p) }

// rawWrite is write(2) on a non-blocking descriptor.
func rawWrite(fd uintptr, p []byte) (int, error) { return rawIO(unix.SYS_WRITE, fd, p) }

func rawIO(trap, fd uintptr, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, _, errno := unix.RawSyscall(trap, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// Writer writes one packet per call to a TUN device.
type Writer interface {
	Write(p []byte) (int, error)
}

// NewWriter returns d's Writer: for a device backed by a non-blocking
// file, one that writes with raw system calls through the poller (as
// Reader reads); otherwise d itself.
func NewWriter(d PacketDevice) Writer {
	if fd, ok := d.(fileDevice); ok && fd.File() != nil {
		if w, err := newFileWriter(fd.File()); err == nil {
			return w
		}
	}
	return d
}

// fileWriter writes a non-blocking TUN descriptor. Its callback is made
// once (a closure per call would allocate per packet), so its arguments
// and results live in the writer, guarded by mu.
type fileWriter struct {
	name string
	rc   syscall.RawConn
	fn   func(fd uintptr) bool

	mu  sync.Mutex
	p   []byte
	n   int
	err error
}

func newFileWriter(f *os.File) (*fileWriter, error) {
	rc, err := nonBlocking(f)
	if err != nil {
		return nil, err
	}
	w := &fileWriter{name: f.Name(), rc: rc}
	w.fn = w.write
	return w, nil
}

func (w *fileWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.p, w.n, w.err = p, 0, nil
	err := w.rc.Write(w.fn)
	n, werr := w.n, w.err
	w.p = nil
	w.mu.Unlock()
	if err != nil {
		return 0, &os.PathError{Op: "write", Path: w.name, Err: fmt.Errorf("%w: %w", os.ErrClosed, err)}
	}
	if werr != nil {
		return n, &os.PathError{Op: "write", Path: w.name, Err: werr}
	}
	return n, nil
}

// write is the RawConn.Write callback: false (the device's queue is
// full) asks the poller to wait.
func (w *fileWriter) write(fd uintptr) bool {
	for {
		n, err := rawWrite(fd, w.p)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return false
		}
		w.n, w.err = n, err
		return true
	}
}

// nonBlocking returns f's RawConn if its descriptor is non-blocking (and
// so in the poller): a raw call on a blocking one could block the thread
// without the runtime knowing.
func nonBlocking(f *os.File) (syscall.RawConn, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var flags int
	var ferr error
	if err := rc.Control(func(fd uintptr) { flags, ferr = unix.FcntlInt(fd, unix.F_GETFL, 0) }); err != nil {
		return nil, err
	}
	if ferr != nil {
		return nil, ferr
	}
	if flags&unix.O_NONBLOCK == 0 {
		return nil, errors.New("tun file is blocking")
	}
	return rc, nil
}
