package engine

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"time"
)

// maxPacket bounds one OpenVPN packet on either transport; TCP's u16 length
// prefix caps it at 65535 anyway.
const maxPacket = 65535

// transport moves whole OpenVPN packets to and from the server. UDP keeps
// datagram boundaries; TCP adds the u16 length prefix. WritePacket is safe
// for concurrent use (control and data plane both send); ReadPacket is called
// by one reader goroutine only.
type transport interface {
	ReadPacket(buf []byte) (int, error)
	WritePacket(p []byte) error
	Close() error
	Proto() string // "udp" or "tcp"
	RemoteAddr() net.Addr
}

// endpoint is one resolved server address to try.
type endpoint struct {
	host, port string
	network    string // "udp", "udp4", "udp6", "tcp", "tcp4", "tcp6"
	addr       string // ip:port; host:port when connecting through a proxy
	// pollTimeout bounds the wait for the server's first packet
	// (server-poll-timeout of the remote's entry).
	pollTimeout time.Duration
	proxy       *proxySpec
	lport       int
}

func (e endpoint) proto() string {
	if strings.HasPrefix(e.network, "tcp") {
		return "tcp"
	}
	return "udp"
}

// firstResponseTimeout is how long an attempt waits for the server's
// first packet (dial included).
func (e endpoint) firstResponseTimeout() time.Duration {
	if e.pollTimeout > 0 {
		return e.pollTimeout
	}
	return defaultServerPoll
}

// isIPv6 says the server address is IPv6 (false through a proxy that
// resolves a name).
func (e endpoint) isIPv6() bool {
	ap, err := netip.ParseAddrPort(e.addr)
	return err == nil && ap.Addr().Is6() && !ap.Addr().Is4In6()
}

func (e endpoint) String() string {
	if e.proxy != nil {
		return e.addr + "/" + e.proto() + " via http-proxy " + e.proxy.addr()
	}
	return e.addr + "/" + e.proto()
}

// normalizeProto maps the profile's proto spellings (udp, udp4, udp6,
// tcp, tcp-client, tcp4-client, tcp6, …) to a Go network name.
func normalizeProto(p string) (string, error) {
	p = strings.ToLower(strings.TrimSpace(p))
	if p == "" {
		return "udp", nil
	}
	p = strings.TrimSuffix(p, "-client")
	switch p {
	case "udp", "udp4", "udp6", "tcp", "tcp4", "tcp6":
		return p, nil
	case "tcp-server":
		return "", fmt.Errorf("proto %q is server-only", p)
	}
	return "", fmt.Errorf("unsupported proto %q", p)
}

// resolveEndpoints turns one remote into the addresses to try, in resolver
// order, restricted to the address family the proto names.
func resolveEndpoints(ctx context.Context, r *net.Resolver, host, port, proto string) ([]endpoint, error) {
	network, err := normalizeProto(proto)
	if err != nil {
		return nil, err
	}
	if port == "" {
		port = "1194"
	}
	ipNet := "ip"
	switch network[len(network)-1] {
	case '4':
		ipNet = "ip4"
	case '6':
		ipNet = "ip6"
	}
	ips, err := r.LookupNetIP(ctx, ipNet, host)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", host, err)
	}
	var eps []endpoint
	for _, ip := range ips {
		eps = append(eps, endpoint{host: host, port: port, network: network, addr: net.JoinHostPort(ip.Unmap().String(), port)})
	}
	if len(eps) == 0 {
		return nil, fmt.Errorf("resolve %s: no %s address", host, ipNet)
	}
	return eps, nil
}

// DialFunc opens the transport socket; Config.Dial overrides net.Dialer
// (tests use it to dial inside a network namespace).
type DialFunc func(ctx context.Context, network, address string) (net.Conn, error)

// localPortKey carries lport to a custom DialFunc; see LocalPort.
type localPortKey struct{}

// LocalPort is the local port the profile asks to bind (lport without
// nobind), 0 for any; a custom DialFunc should honour it.
func LocalPort(ctx context.Context) int {
	n, _ := ctx.Value(localPortKey{}).(int)
	return n
}

func dialTransport(ctx context.Context, dial DialFunc, ep endpoint) (transport, error) {
	if ep.lport > 0 {
		ctx = context.WithValue(ctx, localPortKey{}, ep.lport)
	}
	if dial == nil {
		dial = defaultDial
	}
	var c net.Conn
	var err error
	if ep.proxy != nil {
		c, err = dialViaProxy(ctx, dial, ep.proxy, ep.addr)
	} else {
		c, err = dial(ctx, ep.network, ep.addr)
	}
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", ep, err)
	}
	if ep.proto() == "tcp" {
		return &tcpTransport{c: c}, nil
	}
	if uc, ok := c.(*net.UDPConn); ok {
		sizeUDPBuffers(uc)
	}
	return &udpTransport{c: c}, nil
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

// udpTransport is a connected UDP socket: one packet per datagram.
type udpTransport struct{ c net.Conn }

func (u *udpTransport) ReadPacket(buf []byte) (int, error) {
	for {
		n, err := u.c.Read(buf)
		if err != nil {
			// A connected UDP socket reports ICMP errors (port or host
			// unreachable) on the next read; the server may just be
			// starting or the path may come back.
			if transientUDPError(err) {
				continue
			}
			return 0, err
		}
		if n > 0 {
			return n, nil
		}
	}
}

func (u *udpTransport) WritePacket(p []byte) error {
	_, err := u.c.Write(p)
	if transientUDPError(err) {
		return nil // a lost datagram: the reliability layer resends, ping-restart notices
	}
	return err
}

// transientUDPError: errors of a connectionless socket that mean "this
// datagram did not get through" — a firewall dropping it (EPERM), no route
// for now, a full queue, an ICMP error from earlier — not a broken
// transport. Treating them as loss lets a session ride out a network
// outage and resume as soon as packets flow again.
func transientUDPError(err error) bool {
	for _, e := range []syscall.Errno{syscall.ECONNREFUSED, syscall.EPERM, syscall.EACCES,
		syscall.ENETUNREACH, syscall.EHOSTUNREACH, syscall.ENETDOWN, syscall.EHOSTDOWN, syscall.ENOBUFS} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
func (u *udpTransport) Close() error         { return u.c.Close() }
func (u *udpTransport) Proto() string        { return "udp" }
func (u *udpTransport) RemoteAddr() net.Addr { return u.c.RemoteAddr() }

// tcpTransport frames packets with a big-endian u16 length.
type tcpTransport struct {
	c    net.Conn
	wmu  sync.Mutex
	wbuf []byte
	hdr  [2]byte
}

func (t *tcpTransport) ReadPacket(buf []byte) (int, error) {
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

func (t *tcpTransport) WritePacket(p []byte) error {
	if len(p) > maxPacket {
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
func (t *tcpTransport) Close() error         { return t.c.Close() }
func (t *tcpTransport) Proto() string        { return "tcp" }
func (t *tcpTransport) RemoteAddr() net.Addr { return t.c.RemoteAddr() }
