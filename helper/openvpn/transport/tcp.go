package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// TCP frames packets with a big-endian u16 length.
type TCP struct {
	c    net.Conn
	wmu  sync.Mutex
	wbuf []byte
	hdr  [2]byte
}

func (t *TCP) ReadPacket(buf []byte) (int, error) {
	if _, err := io.ReadFull(t.c, t.hdr[:]); err != nil {
		return 0, fmt.Errorf("read length: %w", err)
	}
	n := int(binary.BigEndian.Uint16(t.hdr[:]))
	if n == 0 {
		return 0, errors.New("tcp: zero-length packet")
	}
	if n > len(buf) {
		return 0, fmt.Errorf("tcp: packet of %d bytes exceeds buffer of %d", n, len(buf))
	}
	if _, err := io.ReadFull(t.c, buf[:n]); err != nil {
		return 0, fmt.Errorf("read packet: %w", err)
	}
	return n, nil
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
func (t *TCP) Close() error         { return t.c.Close() }
func (t *TCP) Proto() string        { return "tcp" }
func (t *TCP) RemoteAddr() net.Addr { return t.c.RemoteAddr() }
