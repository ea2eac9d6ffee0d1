package netcfgclient

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync"
	"syscall"

	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/netcfg/dco"
	"github.com/ovpn3go/ovpn3go/helper/netconf"
)

// DCOPeer is the server a DCO device sends to: its peer-id, the connected
// transport socket (its descriptor is passed to netcfg, the caller keeps
// the socket) and the server's addresses on each side of the tunnel.
type DCOPeer struct {
	ID     uint32
	Socket syscall.Conn
	Remote netip.AddrPort
	VPN4   netip.Addr
	VPN6   netip.Addr
}

// DCODevice is an established device in DCO mode: the kernel's ovpn
// device with one peer, driven through netcfg's <device>/dco object.
type DCODevice struct {
	client  *Client
	path    dbus.ObjectPath
	dcoPath dbus.ObjectPath
	name    string
	peer    uint32
	once    sync.Once
	err     error
}

// OpenDCO is Establish in DCO mode: it creates the device object, describes
// cfg on it, enables DCO with a device named devName, hands the peer and
// its socket to the kernel and establishes the device (which configures
// the ovpn device and returns no fd). On error the device object is
// destroyed again.
func (c *Client) OpenDCO(ctx context.Context, label, devName string, cfg netconf.Config, peer DCOPeer) (_ *DCODevice, err error) {
	path, err := c.createDevice(ctx, label, cfg)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			c.destroyAfterFailure(ctx, path, &err)
		}
	}()
	dev := c.conn.Object(c.dest, path)
	var dcoPath dbus.ObjectPath
	if err := dev.CallWithContext(ctx, api.InterfaceNetCfg+".EnableDCO", 0, devName).Store(&dcoPath); err != nil {
		return nil, fmt.Errorf("netcfg: EnableDCO(%q) on %s: %w", devName, path, err)
	}
	d := &DCODevice{client: c, path: path, dcoPath: dcoPath, peer: peer.ID}
	if err := d.newPeer(ctx, peer); err != nil {
		return nil, err
	}
	if err := dev.CallWithContext(ctx, api.InterfaceNetCfg+".Establish", 0).Err; err != nil {
		return nil, fmt.Errorf("netcfg: Establish (DCO) on %s: %w", path, err)
	}
	if d.name, err = c.deviceName(ctx, path); err != nil {
		return nil, err
	}
	return d, nil
}

// sockaddr is the struct sockaddr_in or sockaddr_in6 of a (as NewPeer
// takes it).
func sockaddr(a netip.AddrPort) []byte {
	ip := a.Addr().Unmap()
	if ip.Is4() {
		b := make([]byte, unix.SizeofSockaddrInet4)
		binary.NativeEndian.PutUint16(b, unix.AF_INET)
		binary.BigEndian.PutUint16(b[2:], a.Port())
		v := ip.As4()
		copy(b[4:], v[:])
		return b
	}
	b := make([]byte, unix.SizeofSockaddrInet6)
	binary.NativeEndian.PutUint16(b, unix.AF_INET6)
	binary.BigEndian.PutUint16(b[2:], a.Port())
	v := ip.As16()
	copy(b[8:], v[:])
	return b
}

func optText(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.Unmap().String()
}

// newPeer hands the peer to the device; the socket's descriptor is sent
// while the socket is held, so it cannot be closed and reused meanwhile.
func (d *DCODevice) newPeer(ctx context.Context, p DCOPeer) error {
	if p.Socket == nil || !p.Remote.IsValid() {
		return fmt.Errorf("netcfg: NewPeer %d: no socket or no remote address", p.ID)
	}
	raw, err := p.Socket.SyscallConn()
	if err != nil {
		return fmt.Errorf("netcfg: NewPeer %d: transport socket: %w", p.ID, err)
	}
	sa := sockaddr(p.Remote)
	var callErr error
	err = raw.Control(func(fd uintptr) {
		callErr = d.call(ctx, "NewPeer", p.ID, base64.StdEncoding.EncodeToString(sa), uint32(len(sa)),
			optText(p.VPN4), optText(p.VPN6), dbus.UnixFD(fd))
	})
	if err != nil {
		return fmt.Errorf("netcfg: NewPeer %d: transport socket: %w", p.ID, err)
	}
	return callErr
}

func (d *DCODevice) call(ctx context.Context, method string, args ...any) error {
	if err := d.client.conn.Object(d.client.dest, d.dcoPath).CallWithContext(ctx, api.InterfaceNetCfg+"."+method, 0, args...).Err; err != nil {
		return fmt.Errorf("netcfg: %s on %s: %w", method, d.dcoPath, err)
	}
	return nil
}

// Name is the kernel's name of the ovpn device.
func (d *DCODevice) Name() string { return d.name }

// Path is the device object path.
func (d *DCODevice) Path() dbus.ObjectPath { return d.path }

// NewKey installs a key of the peer in slot (k.PeerID and k.Slot are set
// here). The caller clears k's key material.
func (d *DCODevice) NewKey(ctx context.Context, slot dco.Slot, k dco.KeyConf) error {
	k.PeerID, k.Slot = d.peer, slot
	raw := dco.MarshalKeyConfig(k)
	defer clear(raw)
	return d.call(ctx, "NewKey", uint32(slot), base64.StdEncoding.EncodeToString(raw))
}

// SwapKeys makes the secondary key primary and the primary secondary.
func (d *DCODevice) SwapKeys(ctx context.Context) error { return d.call(ctx, "SwapKeys", d.peer) }

// DelKey deletes the key in slot.
func (d *DCODevice) DelKey(ctx context.Context, slot dco.Slot) error {
	return d.call(ctx, "DelKey", d.peer, uint32(slot))
}

// SetKeepalive sets the peer's keepalive, in seconds.
func (d *DCODevice) SetKeepalive(ctx context.Context, interval, timeout uint32) error {
	return d.call(ctx, "SetPeer", d.peer, interval, timeout)
}

// PeerStats are the peer's counters under the session statistics' names
// (BYTES_IN, TUN_BYTES_OUT, …).
func (d *DCODevice) PeerStats(ctx context.Context) (map[string]int64, error) {
	var st map[string]int64
	if err := d.client.conn.Object(d.client.dest, d.dcoPath).CallWithContext(ctx, api.InterfaceNetCfg+".GetPeerStats", 0, d.peer).Store(&st); err != nil {
		return nil, fmt.Errorf("netcfg: GetPeerStats on %s: %w", d.dcoPath, err)
	}
	return st, nil
}

// Close destroys the device object: its routes and DNS go, and the ovpn
// device with its peer and keys. The socket stays the caller's.
func (d *DCODevice) Close() error {
	d.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), destroyTimeout)
		defer cancel()
		d.err = d.client.Destroy(ctx, d.path)
	})
	return d.err
}
