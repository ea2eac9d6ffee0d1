package engine

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/netconf"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/transport"
)

// DCO hands a connection's data channel to data channel offload (the
// kernel's ovpn module, through netcfg's <device>/dco object).
//
// The model is the kernel's (spec/protocol.md §5.1): the engine runs the
// whole control channel on its own UDP socket; once the server's
// PUSH_REPLY is in, NewPeer creates the device with the pushed network
// settings and hands it the connected socket. From then on the data plane
// consumes DATA_V2 packets arriving on that socket and passes every other
// packet up, so the engine keeps reading the same socket and sees only
// control packets; it keeps writing its control packets to it.
type DCO interface {
	NewPeer(ctx context.Context, p DCOPeer) (DCOPlane, error)
}

// DCOPeer is what NewPeer needs: the kernel's PEER_NEW plus the device's
// network settings.
type DCOPeer struct {
	PeerID uint32
	// Conn is the connected transport socket (a *net.UDPConn unless a
	// test's Dial wrapped it); NewPeer must not close it.
	Conn   net.Conn
	Remote netip.AddrPort
	Local  netip.AddrPort
	Net    netconf.Config // addresses, routes, MTU of the device
}

// DCOPlane is one offloaded peer: keys through KeyPlane, keepalive, the
// traffic counters and the peer's end.
type DCOPlane interface {
	KeyPlane
	// SetKeepalive makes the plane send pings every interval and delete
	// the peer when nothing arrived for timeout (PEER_SET).
	SetKeepalive(interval, timeout time.Duration) error
	// Stats are the peer's counters since NewPeer (PEER_GET); after
	// Close, the final ones (read just before the peer was deleted).
	Stats() (PlaneStats, error)
	// Deleted delivers why the plane deleted the peer (keepalive
	// expired, transport error) — the kernel's PEER_DEL_NTF.
	Deleted() <-chan string
	// Close deletes the peer and the device; the socket stays open.
	Close() error
}

// PlaneStats are an offloaded peer's counters: Link* cross the socket
// (encrypted data packets), VPN* the device (plaintext).
type PlaneStats struct {
	LinkRxBytes, LinkTxBytes, LinkRxPackets, LinkTxPackets int64
	VPNRxBytes, VPNTxBytes, VPNRxPackets, VPNTxPackets     int64
}

func (s PlaneStats) add(o PlaneStats) PlaneStats {
	return PlaneStats{
		s.LinkRxBytes + o.LinkRxBytes, s.LinkTxBytes + o.LinkTxBytes, s.LinkRxPackets + o.LinkRxPackets, s.LinkTxPackets + o.LinkTxPackets,
		s.VPNRxBytes + o.VPNRxBytes, s.VPNTxBytes + o.VPNTxBytes, s.VPNRxPackets + o.VPNRxPackets, s.VPNTxPackets + o.VPNTxPackets,
	}
}

// dcoRefusal says why this connection's data channel cannot be offloaded
// (the kernel's constraints, spec/protocol.md §5.1), "" when it can.
func (a *attempt) dcoRefusal(dk *DataKey) string {
	switch {
	case a.ep.proto() != "udp":
		return "the transport is TCP; this engine offloads UDP only"
	case a.ep.proxy != nil:
		return "the connection goes through a proxy"
	case a.udpConn() == nil:
		return "the socket is not connected to one server (float)"
	case dk.PeerID < 0:
		return "the server pushed no peer-id (DATA_V1 only)"
	case !dk.AEAD():
		return fmt.Sprintf("the data cipher %s is not AEAD", dk.Cipher)
	case a.comp != framingNone:
		return fmt.Sprintf("the connection uses compression framing (%s)", a.comp)
	}
	return ""
}

// udpConn is the attempt's connected UDP socket, nil for other transports.
func (a *attempt) udpConn() net.Conn {
	if u, ok := a.tr.(*transport.UDP); ok {
		return u.NetConn()
	}
	return nil
}

// offload hands the data channel of a connection that just came up to the
// DCO plane: the peer with the socket, then (by the caller) the key.
func (a *attempt) offload(cfg netconf.Config, dk *DataKey) (DCOPlane, error) {
	conn := a.udpConn()
	p := DCOPeer{PeerID: uint32(dk.PeerID), Conn: conn, Net: cfg}
	if ap, err := netip.ParseAddrPort(conn.RemoteAddr().String()); err == nil {
		p.Remote = ap
	}
	if ap, err := netip.ParseAddrPort(conn.LocalAddr().String()); err == nil {
		p.Local = ap
	}
	plane, err := a.c.cfg.DCO.NewPeer(a.ctx, p)
	if err != nil {
		return nil, fmt.Errorf("offload peer %d: %w", dk.PeerID, err)
	}
	return plane, nil
}

// closeDCO deletes the attempt's offloaded peer and keeps its final
// counters in the session's statistics.
func (a *attempt) closeDCO() {
	p := a.dco
	if p == nil {
		return
	}
	a.dco = nil
	if err := p.Close(); err != nil {
		a.log.Warn("deleting the offloaded peer", "err", err)
	}
	st, err := p.Stats()
	if err != nil {
		a.log.Debug("offloaded peer statistics", "err", err)
	}
	a.c.dcoDone(p, st)
}

// dcoDeleted is the offloaded peer's end, nil (never ready) without one.
func (a *attempt) dcoDeleted() <-chan string {
	if a.dco == nil {
		return nil
	}
	return a.dco.Deleted()
}

// peerDeleted turns the offloaded peer's end into the attempt's end, as
// the keepalive timers of the userspace path would have.
func (a *attempt) peerDeleted(why string) error {
	if _, _, exit := a.s.Keepalive(); exit {
		return fatal(StateFailed, "ping-exit: the offloaded peer for %s was deleted: %s", a.ep, why)
	}
	return fmt.Errorf("the offloaded peer for %s was deleted: %s", a.ep, why)
}
