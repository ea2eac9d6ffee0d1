// Package tunio is the data plane's TUN layer: a Device reads and writes
// several IP packets per call, into and out of the caller's buffers at an
// offset, so the data plane keeps headroom in front of every packet (for
// its own framing, and for a device that puts a header such as
// virtio_net_hdr there). A plain device that moves one packet per
// read(2)/write(2) is adapted by Batched.
package tunio

import "io"

// Headroom is the least offset callers pass to ReadBatch and WriteBatch:
// the bytes in front of each packet a Device may use for itself.
const Headroom = 16

// Device is a TUN device moved in batches. ReadBatch is called by one
// goroutine, WriteBatch by another; Close unblocks a pending ReadBatch.
type Device interface {
	// BatchSize is the most packets one ReadBatch returns.
	BatchSize() int
	// ReadBatch blocks until at least one packet arrived and returns how
	// many: packet i is bufs[i][offset:offset+sizes[i]] (it may be empty).
	ReadBatch(bufs [][]byte, sizes []int, offset int) (int, error)
	// WriteBatch writes bufs[i][offset:] as one packet each, in order,
	// and returns how many it wrote; bufs[i][:offset] is the device's to
	// overwrite.
	WriteBatch(bufs [][]byte, offset int) (int, error)
	Close() error
	Name() string
}

// PacketDevice is a TUN device that moves one IP packet per Read and
// Write; Close must unblock a pending Read.
type PacketDevice interface {
	io.ReadWriteCloser
	Name() string
}

// Batched is d's batch interface: d itself when it batches; for a device
// backed by a non-blocking file, one whose ReadBatch takes every packet
// queued (up to FileBatch) in one wake-up of the poller, as Reader does;
// otherwise an adapter moving one packet per call.
func Batched(d PacketDevice) Device {
	if b, ok := d.(Device); ok {
		return b
	}
	if fd, ok := d.(fileDevice); ok && fd.File() != nil {
		if r, err := newFileReader(fd.File()); err == nil {
			return fileBatch{single{d}, r}
		}
	}
	return single{d}
}

// FileBatch is the most packets a file-backed device's ReadBatch takes:
// the caller holds a buffer of the largest packet for each.
const FileBatch = 8

// fileBatch drains a file-backed device per ReadBatch; writes are one
// write(2) per packet.
type fileBatch struct {
	single
	r *fileReader
}

func (f fileBatch) BatchSize() int { return FileBatch }

func (f fileBatch) ReadBatch(bufs [][]byte, sizes []int, offset int) (int, error) {
	return f.r.readBufs(bufs, sizes, offset)
}

// single batches a PacketDevice one packet at a time.
type single struct{ PacketDevice }

func (s single) BatchSize() int { return 1 }

func (s single) ReadBatch(bufs [][]byte, sizes []int, offset int) (int, error) {
	n, err := s.Read(bufs[0][offset:])
	if err != nil {
		return 0, err
	}
	sizes[0] = n
	return 1, nil
}

func (s single) WriteBatch(bufs [][]byte, offset int) (int, error) {
	for i, b := range bufs {
		if _, err := s.Write(b[offset:]); err != nil {
			return i, err
		}
	}
	return len(bufs), nil
}
