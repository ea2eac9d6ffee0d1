// Package transport moves whole OpenVPN packets between the client and the
// server: UDP datagrams on a connected socket (read in batches with
// recvmmsg), UDP on an unconnected socket that may follow a floating
// server, TCP with OpenVPN's u16 length prefix, and TCP through an HTTP
// proxy's CONNECT tunnel. It knows nothing of the protocol above: the
// engine's control and data planes read and write through Conn.
package transport

import (
	"context"
	"net"
	"strings"
)

// MaxPacket bounds one OpenVPN packet on either transport; TCP's u16 length
// prefix caps it at 65535 anyway.
const MaxPacket = 65535

// Conn moves whole OpenVPN packets to and from the server. UDP keeps
// datagram boundaries; TCP adds the u16 length prefix. WritePacket is safe
// for concurrent use (control and data plane both send); ReadPacket is called
// by one reader goroutine only.
type Conn interface {
	ReadPacket(buf []byte) (int, error)
	WritePacket(p []byte) error
	Close() error
	Proto() string // "udp" or "tcp"
	RemoteAddr() net.Addr
}

// DialFunc opens the transport socket; it overrides net.Dialer (tests use
// it to dial inside a network namespace).
type DialFunc func(ctx context.Context, network, address string) (net.Conn, error)

// localPortKey carries lport to a custom DialFunc; see LocalPort.
type localPortKey struct{}

// LocalPort is the local port the profile asks to bind (lport without
// nobind), 0 for any; a custom DialFunc should honour it.
func LocalPort(ctx context.Context) int {
	n, _ := ctx.Value(localPortKey{}).(int)
	return n
}

// Dial opens a connected transport to addr over network ("udp", "udp4",
// "udp6", "tcp", "tcp4", "tcp6"), through px when it is not nil (then addr
// is host:port as the profile wrote it: the proxy resolves it), from local
// port lport when it is not 0. dial nil means net.Dialer.
func Dial(ctx context.Context, dial DialFunc, network, addr string, px *HTTPProxy, lport int) (Conn, error) {
	if lport > 0 {
		ctx = context.WithValue(ctx, localPortKey{}, lport)
	}
	if dial == nil {
		dial = defaultDial
	}
	var c net.Conn
	var err error
	if px != nil {
		c, err = dialViaProxy(ctx, dial, px, addr)
	} else {
		c, err = dial(ctx, network, addr)
	}
	if err != nil {
		return nil, err
	}
	if strings.HasPrefix(network, "tcp") {
		return &TCP{c: c}, nil
	}
	if uc, ok := c.(*net.UDPConn); ok {
		sizeUDPBuffers(uc)
	}
	return &UDP{c: c}, nil
}

// udpSocketBuffer is what the UDP transport asks for in each direction:
// the default (~208 KiB, about 90 full-size datagrams) overflows when the
// server sends a burst while the reader is decrypting. The kernel caps it
// at net.core.rmem_max / wmem_max (the backend has no CAP_NET_ADMIN to
// force more).
const udpSocketBuffer = 4 << 20

// sizeUDPBuffers raises the socket's buffers; a refusal only costs speed.
func sizeUDPBuffers(c *net.UDPConn) {
	_ = c.SetReadBuffer(udpSocketBuffer)
	_ = c.SetWriteBuffer(udpSocketBuffer)
}

// defaultDial is net.Dialer honouring LocalPort.
func defaultDial(ctx context.Context, network, address string) (net.Conn, error) {
	var d net.Dialer
	if p := LocalPort(ctx); p > 0 {
		if strings.HasPrefix(network, "tcp") {
			d.LocalAddr = &net.TCPAddr{Port: p}
		} else {
			d.LocalAddr = &net.UDPAddr{Port: p}
		}
	}
	return d.DialContext(ctx, network, address)
}
