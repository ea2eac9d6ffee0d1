package engine

import (
	"net/netip"
	"sync/atomic"

	"github.com/ovpn3go/ovpn3go/helper/netconf"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/dataplane"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/tunio"
)

// The engine drives the data plane (helper/openvpn/dataplane): one Plane
// per Run owns the TUN device, and each attempt plugs its transport in as
// a dataplane.Conn and installs its keys there through userPlane.

// dataPlane is the Run's data plane and the network settings its TUN
// device was opened with.
type dataPlane struct {
	*dataplane.Plane
	tun      TunDevice
	tunCfg   netconf.Config
	lastSent atomic.Int64 // unix nanos of the last data-channel packet sent
}

func newDataPlane(c *Client) *dataPlane {
	d := &dataPlane{}
	d.Plane = dataplane.New(dataplane.Config{Log: c.log, Now: c.now, Counters: &c.ctr, LastSent: &d.lastSent,
		Offloads: c.offloads(), Parallel: c.parallelCrypto()})
	return d
}

// parallelCrypto says the data plane seals and opens on worker goroutines
// (dataplane.Config.Parallel): only when the profile switches it on, since
// on 2 cores BenchmarkDataPlane (crypto=inline vs crypto=parallel) showed
// no gain beyond its noise.
func (c *Client) parallelCrypto() bool {
	return c.cfg.Profile != nil && c.cfg.Profile.Offload.ParallelCrypto
}

// startTun hands the device to the data plane, which reads it from now on.
func (d *dataPlane) startTun(tun TunDevice, cfg netconf.Config) {
	d.tun, d.tunCfg = tun, cfg
	d.StartTun(tun)
}

// closeTun closes the device and waits for its reader.
func (d *dataPlane) closeTun() {
	d.CloseTun()
	d.tun = nil
}

func (d *dataPlane) send(plain []byte) error { return d.Send(plain) }

func (d *dataPlane) sendPing() error { return d.SendPing() }

// offloads is what the profile switched off.
func (c *Client) offloads() dataplane.Offloads {
	if c.cfg.Profile == nil {
		return dataplane.Offloads{}
	}
	o := c.cfg.Profile.Offload
	return dataplane.Offloads{NoTUN: o.NoTUN, NoGSO: o.NoUDPGSO, NoMmsg: o.NoUDPMmsg, NoRxMod: o.NoRxModeration, NoTxMod: o.NoTxModeration, NoUring: o.NoUring}
}

// wantVnetHdr says the TUN device is to be created with IFF_VNET_HDR:
// unless the profile switched the TUN offload off or the kernel moves the
// packets (DCO).
func (c *Client) wantVnetHdr(dco bool) bool { return !dco && !c.offloads().NoTUN }

// dataConn is the attempt's data-plane connection on its transport,
// made on first use.
func (a *attempt) dataConn() *dataplane.Conn {
	if a.conn == nil {
		decompress := a.c.cfg.Profile != nil && a.c.cfg.Profile.Decompress()
		a.conn = a.dp.NewConn(dataplane.ConnConfig{Transport: a.tr, Control: a.controlPacket, Floated: a.floated,
			Decompress: decompress, LastRecv: &a.lastRecv, Log: a.log})
	}
	return a.conn
}

// socketReader runs the connection's read loop (every packet of the
// transport: data packets are opened and written to the TUN device,
// control packets handed to the control loop) until the transport is
// closed.
func (a *attempt) socketReader(conn *dataplane.Conn) {
	defer a.wg.Done()
	err := conn.ReadLoop()
	select {
	case a.readErr <- err:
	case <-a.done:
	}
}

// controlPacket hands a control packet from the read loop to the control
// loop.
func (a *attempt) controlPacket(pkt []byte) {
	cp := append([]byte(nil), pkt...)
	select {
	case a.ctlIn <- cp:
	default: // control loop busy: the reliability layer recovers
	}
}

// floated logs that a data packet authenticated by the key came from a
// new server address (net_float.go).
func (a *attempt) floated(from, to netip.AddrPort) {
	a.log.Info("server address changed (float)", "from", from, "to", to)
}

// The compression framing of data payloads lives in the data plane.
type framing = dataplane.Framing

const (
	framingNone    = dataplane.FramingNone
	framingLZOStub = dataplane.FramingLZOStub
	framingStub    = dataplane.FramingStub
	framingStubV2  = dataplane.FramingStubV2
)

var framingOf = dataplane.FramingOf

// maxTunPacket is the largest TUN packet the data path handles.
const maxTunPacket = dataplane.MaxTunPacket

// A clamped device hands the data plane the device under the clamp when
// its packets carry a virtio_net_hdr.
var _ dataplane.Clamped = (*mssTun)(nil)

// Unclamped is the device under the clamp and the clamp.
func (t *mssTun) Unclamped() (tunio.PacketDevice, func([]byte)) { return t.TunDevice, t.clamp.apply }
