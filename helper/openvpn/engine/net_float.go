package engine

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
)

// ListenFunc opens the unconnected UDP socket of a floating session
// (profile "float"); Config.ListenPacket overrides net.ListenConfig (tests
// use it to create the socket in a network namespace).
type ListenFunc func(ctx context.Context, network, address string) (net.PacketConn, error)

// openTransport opens the attempt's transport: the one happy eyeballs
// already opened, a connected socket, or for a UDP remote of a profile
// with "float" (no proxy) an unconnected one that may follow the server to
// a new address.
func (a *attempt) openTransport(ctx context.Context) (transport, error) {
	if tr := a.pre; tr != nil {
		a.pre = nil
		return tr, nil
	}
	if !a.c.cfg.Profile.Float || a.ep.proto() != "udp" || a.ep.proxy != nil {
		return dialTransport(ctx, a.c.cfg.Dial, a.ep)
	}
	return listenFloat(ctx, a.c.cfg.ListenPacket, a.ep)
}

func listenFloat(ctx context.Context, listen ListenFunc, ep endpoint) (*floatTransport, error) {
	peer, err := netip.ParseAddrPort(ep.addr)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", ep, err)
	}
	if listen == nil {
		var lc net.ListenConfig
		listen = lc.ListenPacket
	}
	network := "udp4"
	if peer.Addr().Is6() && !peer.Addr().Is4In6() {
		network = "udp6"
	}
	pc, err := listen(ctx, network, net.JoinHostPort("", strconv.Itoa(ep.lport)))
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", ep, err)
	}
	uc, ok := pc.(*net.UDPConn)
	if !ok {
		pc.Close()
		return nil, fmt.Errorf("connect %s: float needs a UDP socket, got %T", ep, pc)
	}
	f := &floatTransport{c: uc}
	f.peer.Store(&peer)
	return f, nil
}

// floatTransport is the UDP transport of a profile with "float": an
// unconnected socket that sends to the server's current address. Packets
// from any other address are read but trusted only once authenticated:
// the socket reader moves the session to such an address (follow) only
// after one of its data packets opened under the session's key (replay
// window included), as OpenVPN's float does; until then the control loop
// never sees them.
type floatTransport struct {
	c    *net.UDPConn
	peer atomic.Pointer[netip.AddrPort]
	from netip.AddrPort // sender of the packet last read; reader goroutine only
}

func (f *floatTransport) ReadPacket(buf []byte) (int, error) {
	for {
		n, from, err := f.c.ReadFromUDPAddrPort(buf)
		if err != nil {
			if transientUDPError(err) {
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

// fromPeer reports whether the packet last read came from the server's
// current address.
func (f *floatTransport) fromPeer() bool { return f.from == *f.peer.Load() }

// follow makes the sender of the packet last read the server's address
// and returns the old one. Call it only for an authenticated packet.
func (f *floatTransport) follow() (old, now netip.AddrPort) {
	now = f.from
	return *f.peer.Swap(&now), now
}

func (f *floatTransport) WritePacket(p []byte) error {
	_, err := f.c.WriteToUDPAddrPort(p, *f.peer.Load())
	if transientUDPError(err) {
		return nil // lost datagram, as on the connected socket
	}
	return err
}

func (f *floatTransport) Close() error  { return f.c.Close() }
func (f *floatTransport) Proto() string { return "udp" }
func (f *floatTransport) RemoteAddr() net.Addr {
	return net.UDPAddrFromAddrPort(*f.peer.Load())
}
