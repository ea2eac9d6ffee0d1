package tunio

import (
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/uring"
)

// RingWriter writes a TUN device in batches through io_uring: Queue
// collects packets (small ones copied into the writer's own buffer, so the
// caller may reuse its buffer at once) and Flush writes them all with one
// io_uring_enter(2), where write(2) costs a system call per packet. On a
// TCP upload the packets written are the returning ACKs, one or a few per
// socket read (docs/bench/upload.md). Each write completes during the call
// (RWF_NOWAIT on a non-blocking descriptor, submitted inside the poller's
// callback, which keeps the descriptor open): no write outlives Flush, and
// the ring never holds the device. Safe for concurrent use.
type RingWriter struct {
	name string
	rc   syscall.RawConn
	fn   func(fd uintptr) bool

	mu    sync.Mutex
	ring  *uring.Ring
	stage []byte // the copies of queued small packets, back to back
	used  int    // bytes of stage in use
	pkts  [][]byte
	res   []int32
	// The current Flush's progress and outcome, kept by submit.
	next  int   // the first packet not yet handled (written or failed)
	wrote int   // packets written
	err   error // the first packet's error
	// fellBack is set once the kernel refused a batch before any write
	// went through the ring: from then on packets go out with write(2).
	fellBack atomic.Bool
	everOK   bool
	closed   bool

	enters, writes int64 // io_uring_enter calls and packets written through the ring
}

// Sizes of a RingWriter: the most packets per batch, the stage's size,
// and the largest packet copied into it (a larger one, a coalesced
// super-packet, is written from the caller's buffer, its batch flushed
// at once).
const (
	ringWriteBatch = 64
	ringStageSize  = 32 << 10
	ringCopyMax    = 2 << 10
)

// NewRingWriter returns a batch writer of d through io_uring, or an error
// wrapping ErrRingUnsupported when the kernel refuses io_uring or lacks
// its write, or when d is not backed by a non-blocking file: the caller
// then writes with NewWriter.
func NewRingWriter(d PacketDevice) (*RingWriter, error) {
	rc, err := ringConn(d)
	if err != nil {
		return nil, err
	}
	w := &RingWriter{name: d.Name(), rc: rc, pkts: make([][]byte, 0, ringWriteBatch), res: make([]int32, ringWriteBatch)}
	w.fn = w.submit
	if w.ring, err = uring.New(ringWriteBatch, uring.OpWrite); err != nil {
		return nil, fmt.Errorf("tun ring writer %s: %w", w.name, err)
	}
	// Pages of the stage are taken as packets first reach them: ACKs use
	// a page or two.
	if w.stage, err = unix.Mmap(-1, 0, ringStageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS); err != nil {
		w.ring.Close()
		return nil, fmt.Errorf("tun ring writer %s: mmap stage: %w", w.name, err)
	}
	return w, nil
}

// Queue adds packet p to the batch. A small p is copied: the caller may
// reuse its buffer as soon as Queue returns. A larger one is written, with
// what was queued before it, before Queue returns. It returns how many
// packets it wrote (a full batch is flushed first) and the error of that
// flush.
func (w *RingWriter) Queue(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return 0, w.closedErr()
	}
	var n int
	var err error
	if len(w.pkts) == cap(w.pkts) || (len(p) <= ringCopyMax && w.used+len(p) > len(w.stage)) {
		n, err = w.flush()
	}
	if len(p) > ringCopyMax {
		w.pkts = append(w.pkts, p)
		k, ferr := w.flush()
		return n + k, errors.Join(err, ferr)
	}
	k := copy(w.stage[w.used:], p)
	w.pkts = append(w.pkts, w.stage[w.used:w.used+k])
	w.used = (w.used + k + 7) &^ 7
	return n, err
}

// Flush writes the queued packets, in order, and returns how many it
// wrote and the first error (a packet the device refused, or the device
// closed; the others are written all the same).
func (w *RingWriter) Flush() (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		dropped := len(w.pkts)
		w.reset()
		if dropped == 0 {
			return 0, nil
		}
		return 0, w.closedErr()
	}
	return w.flush()
}

func (w *RingWriter) closedErr() error {
	return &os.PathError{Op: "write", Path: w.name, Err: os.ErrClosed}
}

// flush is Flush with w.mu held.
func (w *RingWriter) flush() (int, error) {
	if len(w.pkts) == 0 {
		return 0, nil
	}
	w.next, w.wrote, w.err = 0, 0, nil
	var err error
	if w.fellBack.Load() {
		err = w.rc.Write(w.writeEach)
	} else {
		err = w.rc.Write(w.fn)
	}
	n := w.wrote
	if err != nil {
		w.err = &os.PathError{Op: "write", Path: w.name, Err: fmt.Errorf("%w: %w", os.ErrClosed, err)}
	}
	// The packets written from the caller's buffer were in use until now.
	runtime.KeepAlive(w.pkts)
	w.reset()
	return n, w.err
}

func (w *RingWriter) reset() {
	clear(w.pkts)
	w.pkts, w.used = w.pkts[:0], 0
}

// submit is the poller's callback: it writes the queued packets from
// w.next on, each batch in one io_uring_enter. The writes are linked, so
// that one the device could not take (EAGAIN: its queue is full) stops the
// ones behind it: then false asks the poller to wait until the device is
// writable, and the next call goes on from there, in order. A packet the
// device refuses (an error of its own) is skipped and the ones behind it,
// cancelled, are submitted again.
func (w *RingWriter) submit(fd uintptr) bool {
	// A write the kernel could not finish during the call would complete
	// in this thread's task work (as for RingReader's reads).
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for w.next < len(w.pkts) {
		rest := w.pkts[w.next:]
		for i, p := range rest {
			w.res[i] = noResult
			w.ring.Write(int(fd), p, uint64(i), i < len(rest)-1)
		}
		w.enters++
		// The kernel refusing the ring (the call, or its write with
		// RWF_NOWAIT) before any write went through it: write(2) from
		// now on, the rest of this batch included.
		refused := w.ring.Enter(uint32(len(rest))) != nil
		w.ring.Reap(w.take)
	results:
		for i := range rest {
			switch res := w.res[i]; {
			case res >= 0:
				w.wrote++
				w.writes++
				w.everOK = true
			case res == -int32(unix.EAGAIN):
				return false
			case res == -int32(unix.ECANCELED):
				break results // behind a refused packet: again
			case res == noResult || res == -int32(unix.EOPNOTSUPP) && !w.everOK:
				refused = true
				break results
			default:
				if w.err == nil {
					w.err = unix.Errno(-res)
				}
			}
			w.next++
		}
		if refused {
			w.fellBack.Store(true)
			return w.writeEach(fd)
		}
	}
	return true
}

// noResult marks a write whose completion was not reaped.
const noResult = math.MinInt32

// writeEach writes the queued packets from w.next on with write(2): the
// path where the kernel refused the ring.
func (w *RingWriter) writeEach(fd uintptr) bool {
	for w.next < len(w.pkts) {
		_, err := rawWrite(fd, w.pkts[w.next])
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return false
		case err == nil:
			w.wrote++
		case w.err == nil:
			w.err = err
		}
		w.next++
	}
	return true
}

// take is Reap's callback: it files each write's result by its index.
func (w *RingWriter) take(c *uring.CQE) {
	if c.UserData < uint64(len(w.res)) {
		w.res[c.UserData] = c.Res
	}
}

// Close drops what is queued and frees the ring and its buffer. The
// device's owner closes the device itself.
func (w *RingWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	w.reset()
	err := w.ring.Close()
	w.ring = nil
	err = errors.Join(err, unix.Munmap(w.stage))
	w.stage = nil
	return err
}

// Ringed says whether packets go through the ring (not yet fallen back
// to write(2)).
func (w *RingWriter) Ringed() bool { return !w.fellBack.Load() }

// Stats are the io_uring_enter calls made and the packets written through
// the ring, for tests and counters.
func (w *RingWriter) Stats() (enters, writes int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.enters, w.writes
}

// Mappings are the addresses of the writer's mappings (ring, stage), for
// tests that check they are freed.
func (w *RingWriter) Mappings() []uintptr {
	return append(w.ring.Mappings(), uintptr(unsafe.Pointer(&w.stage[0])))
}
