package engine

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/transport"
)

// maxPacket bounds one OpenVPN packet on either transport.
const maxPacket = transport.MaxPacket

// endpoint is one resolved server address to try.
type endpoint struct {
	host, port string
	network    string // "udp", "udp4", "udp6", "tcp", "tcp4", "tcp6"
	addr       string // ip:port; host:port when connecting through a proxy
	// pollTimeout bounds the wait for the server's first packet
	// (server-poll-timeout of the remote's entry).
	pollTimeout time.Duration
	proxy       *transport.HTTPProxy
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
		return e.addr + "/" + e.proto() + " via http-proxy " + e.proxy.Addr()
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
type DialFunc = transport.DialFunc

// LocalPort is the local port the profile asks to bind (lport without
// nobind), 0 for any; a custom DialFunc should honour it.
func LocalPort(ctx context.Context) int { return transport.LocalPort(ctx) }

func dialTransport(ctx context.Context, dial DialFunc, ep endpoint) (transport.Conn, error) {
	tr, err := transport.Dial(ctx, dial, ep.network, ep.addr, ep.proxy, ep.lport)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", ep, err)
	}
	return tr, nil
}
