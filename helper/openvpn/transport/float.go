package transport

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
)

// ListenFunc opens the unconnected UDP socket of a floating session
// (profile "float"); it overrides net.ListenConfig (tests use it to create
// the socket in a network namespace).
type ListenFunc func(ctx context.Context, network, address string) (net.PacketConn, error)

// ListenFloat opens the unconnected UDP socket of a floating session that
// sends to peer, bound to local port lport (0: any). listen nil means
// net.ListenConfig.
func ListenFloat(ctx context.Context, listen ListenFunc, peer netip.AddrPort, lport int) (*Float, error) {
	if listen == nil {
		var lc net.ListenConfig
		listen = lc.ListenPacket
	}
	network := "udp4"
	if peer.Addr().Is6() && !peer.Addr().Is4In6() {
		network = "udp6"
	}
	pc, err := listen(ctx, network, net.JoinHostPort("", strconv.Itoa(lport)))
	if err != nil {
		return nil, err
	}
	uc, ok := pc.(*net.UDPConn)
	if !ok {
		pc.Close()
		return nil, fmt.Errorf("float needs a UDP socket, got %T", pc)
	}
	f := &Float{c: uc}
	f.peer.Store(&peer)
	return f, nil
}

// Float is the UDP transport of a profile with "float": an
// unconnected socket that sends to the server's current address. Packets
// from any other address are read but trusted only once authenticated:
// the socket reader moves the session to such an address (Follow) only
// after one of its data packets opened under the session's key (replay
// window included), as OpenVPN's float does; until then the control loop
// never sees them.
type Float struct {
	c    *net.UDPConn
	peer atomic.Pointer[netip.AddrPort]
	from netip.AddrPort // sender of the packet last read; reader goroutine only
}

func (f *Float) ReadPacket(buf []byte) (int, error) {
	for {
		n, from, err := f.c.ReadFromUDPAddrPort(buf)
		if err != nil {
			if TransientUDPError(err) {
				continue
			}
			return 0, err
		}
		if n > 0 {
			f.from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
			return n, nil
		}
	}
}

// FromPeer reports whether the packet last read came from the server's
// current address.
func (f *Float) FromPeer() bool { return f.from == *f.peer.Load() }

// Follow makes the sender of the packet last read the server's address
// and returns the old one. Call it only for an authenticated packet.
func (f *Float) Follow() (old, now netip.AddrPort) {
	now = f.from
	return *f.peer.Swap(&now), now
}

func (f *Float) WritePacket(p []byte) error {
	_, err := f.c.WriteToUDPAddrPort(p, *f.peer.Load())
	if TransientUDPError(err) {
		return nil // lost datagram, as on the connected socket
	}
	return err
}

func (f *Float) Close() error  { return f.c.Close() }
func (f *Float) Proto() string { return "udp" }
func (f *Float) RemoteAddr() net.Addr {
	return net.UDPAddrFromAddrPort(*f.peer.Load())
}
