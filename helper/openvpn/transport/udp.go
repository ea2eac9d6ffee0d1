package transport

import (
	"errors"
	"net"
	"syscall"
)

// UDP is a connected UDP socket: one packet per datagram, read in batches
// with recvmmsg when the socket is a *net.UDPConn.
type UDP struct {
	c net.Conn
	// rd is made by the first ReadBatch (nil if the socket cannot do
	// recvmmsg: then one datagram per call); reader goroutine only.
	rd      *MmsgReader
	rdTried bool
}

// UDPBatch is how many datagrams one ReadBatch may return: one syscall
// for every datagram that queued up while the previous batch was being
// decrypted.
const UDPBatch = 32

// NetConn is the socket itself (data channel offload hands it to the
// kernel; the batch reader reads it with recvmmsg).
func (u *UDP) NetConn() net.Conn { return u.c }

func (u *UDP) ReadPacket(buf []byte) (int, error) {
	for {
		n, err := u.c.Read(buf)
		if err != nil {
			// A connected UDP socket reports ICMP errors (port or host
			// unreachable) on the next read; the server may just be
			// starting or the path may come back.
			if TransientUDPError(err) {
				continue
			}
			return 0, err
		}
		if n > 0 {
			return n, nil
		}
	}
}

func (u *UDP) WritePacket(p []byte) error {
	_, err := u.c.Write(p)
	if TransientUDPError(err) {
		return nil // a lost datagram: the reliability layer resends, ping-restart notices
	}
	return err
}

// TransientUDPError: errors of a connectionless socket that mean "this
// datagram did not get through" — a firewall dropping it (EPERM), no route
// for now, a full queue, an ICMP error from earlier — not a broken
// transport. Treating them as loss lets a session ride out a network
// outage and resume as soon as packets flow again.
func TransientUDPError(err error) bool {
	for _, e := range []syscall.Errno{syscall.ECONNREFUSED, syscall.EPERM, syscall.EACCES,
		syscall.ENETUNREACH, syscall.EHOSTUNREACH, syscall.ENETDOWN, syscall.EHOSTDOWN, syscall.ENOBUFS} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
func (u *UDP) Close() error         { return u.c.Close() }
func (u *UDP) Proto() string        { return "udp" }
func (u *UDP) RemoteAddr() net.Addr { return u.c.RemoteAddr() }

func (u *UDP) BatchSize() int { return UDPBatch }

func (u *UDP) ReadBatch(bufs [][]byte, sizes []int) (int, error) {
	if !u.rdTried {
		u.rdTried = true
		if uc, ok := u.c.(*net.UDPConn); ok {
			u.rd, _ = NewMmsgReader(uc, UDPBatch)
		}
	}
	if u.rd == nil {
		return single{u}.ReadBatch(bufs, sizes)
	}
	for {
		n, err := u.rd.Read(bufs, sizes)
		if err != nil {
			if TransientUDPError(err) {
				continue // as ReadPacket: a lost datagram
			}
			return 0, err
		}
		return n, nil
	}
}

func (u *UDP) WriteBatch(pkts [][]byte) error { return single{u}.WriteBatch(pkts) }
