package transport

// BatchConn is a Conn that moves several packets per call: the data plane
// reads and writes through it. A transport that cannot batch gets one
// packet per call from Batched.
type BatchConn interface {
	Conn
	// BatchSize is the most packets one ReadBatch returns.
	BatchSize() int
	// ReadBatch blocks until at least one packet arrived and returns how
	// many: packet i is bufs[i][:sizes[i]] (it may be empty). bufs[0]
	// must hold MaxPacket bytes; a packet longer than a later buffer is
	// left for the next call (TCP) or, a datagram, reported with a size
	// beyond its buffer: it was cut short and is lost (UDP). One reader
	// goroutine only.
	ReadBatch(bufs [][]byte, sizes []int) (int, error)
	// WriteBatch sends pkts in order; it is safe for concurrent use, as
	// WritePacket is.
	WriteBatch(pkts [][]byte) error
}

// Batched is c's batch interface: c itself when it batches, otherwise an
// adapter moving one packet per call.
func Batched(c Conn) BatchConn {
	if b, ok := c.(BatchConn); ok {
		return b
	}
	return single{c}
}

// single batches a Conn one packet at a time. It keeps each ReadBatch to
// one packet, which Float relies on: FromPeer speaks of the last packet
// read.
type single struct{ Conn }

func (s single) BatchSize() int { return 1 }

func (s single) ReadBatch(bufs [][]byte, sizes []int) (int, error) {
	n, err := s.ReadPacket(bufs[0])
	if err != nil {
		return 0, err
	}
	sizes[0] = n
	return 1, nil
}

func (s single) WriteBatch(pkts [][]byte) error {
	for _, p := range pkts {
		if err := s.WritePacket(p); err != nil {
			return err
		}
	}
	return nil
}
