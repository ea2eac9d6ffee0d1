package engine

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/transport"
)

// ListenFunc opens the unconnected UDP socket of a floating session
// (profile "float"); Config.ListenPacket overrides net.ListenConfig (tests
// use it to create the socket in a network namespace).
type ListenFunc = transport.ListenFunc

// openTransport opens the attempt's transport: the one happy eyeballs
// already opened, a connected socket, or for a UDP remote of a profile
// with "float" (no proxy) an unconnected one that may follow the server to
// a new address.
func (a *attempt) openTransport(ctx context.Context) (transport.Conn, error) {
	if tr := a.pre; tr != nil {
		a.pre = nil
		return tr, nil
	}
	if !a.c.cfg.Profile.Float || a.ep.proto() != "udp" || a.ep.proxy != nil {
		return dialTransport(ctx, a.c.cfg.Dial, a.ep)
	}
	return listenFloat(ctx, a.c.cfg.ListenPacket, a.ep)
}

func listenFloat(ctx context.Context, listen ListenFunc, ep endpoint) (*transport.Float, error) {
	peer, err := netip.ParseAddrPort(ep.addr)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", ep, err)
	}
	f, err := transport.ListenFloat(ctx, listen, peer, ep.lport)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", ep, err)
	}
	return f, nil
}
