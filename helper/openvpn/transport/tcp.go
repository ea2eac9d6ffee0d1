package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// TCP frames packets with a big-endian u16 length. Reads go through a
// read-ahead buffer: one read(2) brings in as many framed packets as the
// stream has ready, which ReadBatch hands out together (the length
// prefix no longer costs a syscall of its own).
type TCP struct {
	c    net.Conn
	wmu  sync.Mutex
	wbuf []byte

	// Reader goroutine only: rbuf[roff:rend] is stream read ahead and not
	// yet handed out. Allocated by the first read.
	rbuf       []byte
	roff, rend int
}

// TCPBatch is the most packets one ReadBatch of a TCP transport returns.
const TCPBatch = 32

// tcpReadAhead holds at least one whole framed packet.
const tcpReadAhead = 2 * (2 + MaxPacket)

// next takes the next whole packet out of the read-ahead buffer; nil when
// it is not all there yet.
func (t *TCP) next() ([]byte, error) {
	avail := t.rend - t.roff
	if avail < 2 {
		return nil, nil
	}
	n := int(binary.BigEndian.Uint16(t.rbuf[t.roff:]))
	if n == 0 {
		return nil, errors.New("tcp: zero-length packet")
	}
	if avail < 2+n {
		return nil, nil
	}
	p := t.rbuf[t.roff+2 : t.roff+2+n]
	t.roff += 2 + n
	return p, nil
}

// fill reads more of the stream behind what is buffered.
func (t *TCP) fill() error {
	if t.rbuf == nil {
		t.rbuf = make([]byte, tcpReadAhead)
	}
	if t.roff > 0 {
		t.rend = copy(t.rbuf, t.rbuf[t.roff:t.rend])
		t.roff = 0
	}
	for {
		n, err := t.c.Read(t.rbuf[t.rend:])
		t.rend += n
		if n > 0 {
			return nil // an error comes back with the next read
		}
		if err != nil {
			if err == io.EOF && t.rend > 0 {
				err = io.ErrUnexpectedEOF // the stream ended inside a packet
			}
			what := "read packet"
			if t.rend < 2 {
				what = "read length"
			}
			return fmt.Errorf("%s: %w", what, err)
		}
	}
}

// nextFilled returns the next packet, reading the stream until it is
// whole.
func (t *TCP) nextFilled() ([]byte, error) {
	for {
		p, err := t.next()
		if p != nil || err != nil {
			return p, err
		}
		if err := t.fill(); err != nil {
			return nil, err
		}
	}
}

func (t *TCP) ReadPacket(buf []byte) (int, error) {
	p, err := t.nextFilled()
	if err != nil {
		return 0, err
	}
	if len(p) > len(buf) {
		return 0, fmt.Errorf("tcp: packet of %d bytes exceeds buffer of %d", len(p), len(buf))
	}
	return copy(buf, p), nil
}

func (t *TCP) BatchSize() int { return TCPBatch }

// ReadBatch waits for one whole packet and adds the ones already read
// ahead behind it.
func (t *TCP) ReadBatch(bufs [][]byte, sizes []int) (int, error) {
	n, err := t.ReadPacket(bufs[0])
	if err != nil {
		return 0, err
	}
	sizes[0] = n
	k := 1
	for ; k < min(len(bufs), len(sizes)); k++ {
		if t.rend-t.roff >= 2 && int(binary.BigEndian.Uint16(t.rbuf[t.roff:])) > len(bufs[k]) {
			break // the next ReadBatch refuses it with ReadPacket's error
		}
		p, err := t.next()
		if err != nil || p == nil {
			break // a framing error comes back with the next read
		}
		sizes[k] = copy(bufs[k], p)
	}
	return k, nil
}

func (t *TCP) WritePacket(p []byte) error {
	if len(p) > MaxPacket {
		return fmt.Errorf("tcp: packet of %d bytes too long", len(p))
	}
	t.wmu.Lock()
	defer t.wmu.Unlock()
	// One Write per packet so the prefix and the packet are never split by
	// a concurrent writer, and one syscall instead of two.
	t.wbuf = binary.BigEndian.AppendUint16(t.wbuf[:0], uint16(len(p)))
	t.wbuf = append(t.wbuf, p...)
	_, err := t.c.Write(t.wbuf)
	return err
}

// WriteBatch frames every packet into one buffer and writes it at once.
func (t *TCP) WriteBatch(pkts [][]byte) error {
	for _, p := range pkts {
		if len(p) > MaxPacket {
			return fmt.Errorf("tcp: packet of %d bytes too long", len(p))
		}
	}
	t.wmu.Lock()
	defer t.wmu.Unlock()
	t.wbuf = t.wbuf[:0]
	for _, p := range pkts {
		t.wbuf = binary.BigEndian.AppendUint16(t.wbuf, uint16(len(p)))
		t.wbuf = append(t.wbuf, p...)
	}
	_, err := t.c.Write(t.wbuf)
	return err
}

func (t *TCP) Close() error         { return t.c.Close() }
func (t *TCP) Proto() string        { return "tcp" }
func (t *TCP) RemoteAddr() net.Addr { return t.c.RemoteAddr() }
