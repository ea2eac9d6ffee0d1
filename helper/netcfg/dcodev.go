package netcfg

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"sync"

	"github.com/godbus/dbus/v5"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/busobj"
	"github.com/ovpn3go/ovpn3go/helper/netcfg/dco"
	"github.com/ovpn3go/ovpn3go/helper/netcfg/journal"
	"github.com/ovpn3go/ovpn3go/helper/netcfg/sysrec"
)

// DCOKernel is what a DCO object needs of the kernel's ovpn module
// (*dco.Client); tests substitute a fake for the missing module
// (SetDCOKernel).
type DCOKernel interface {
	CreateDevice(name string) (int, error)
	DeleteDevice(ifindex int) error
	NewPeer(ifindex int, p dco.Peer) error
	SetKeepalive(ifindex int, peerID, interval, timeout uint32) error
	NewKey(ifindex int, k dco.KeyConf) error
	SwapKeys(ifindex int, peerID uint32) error
	DelKey(ifindex int, peerID uint32, slot dco.Slot) error
	PeerStats(ifindex int, peerID uint32) (dco.Stats, error)
	Close() error
}

// SetDCOKernel replaces the kernel's ovpn module behind EnableDCO (tests
// on kernels without it); open is called once per EnableDCO.
func (s *Service) SetDCOKernel(open func(netns.NsHandle) (DCOKernel, error)) {
	s.mu.Lock()
	s.openDCO = open
	s.mu.Unlock()
}

// dcoAvailable says whether EnableDCO can reach the module, and if not why.
func (s *Service) dcoAvailable() (bool, string) {
	s.mu.Lock()
	open := s.openDCO
	s.mu.Unlock()
	k, err := open(s.netNS())
	if err != nil {
		return false, err.Error()
	}
	k.Close()
	return true, ""
}

func openKernelDCO(ns netns.NsHandle) (DCOKernel, error) { return dco.Open(ns) }

// dcoObject is a device's <device path>/dco object (spec §2.9): the ovpn
// device EnableDCO created and the one peer its creator hands over.
type dcoObject struct {
	d       *device
	path    dbus.ObjectPath
	name    string
	k       DCOKernel
	ifindex int
	j       *journal.Journal // the device's record; nil without a state directory

	mu      sync.Mutex
	peer    uint32
	hasPeer bool
}

// validIfName: what the kernel accepts as a link name, restricted to a
// safe character set.
func validIfName(s string) bool {
	if s == "" || len(s) >= unix.IFNAMSIZ || s == "." || s == ".." {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// enableDCO creates the ovpn device and exports its /dco object.
func (d *device) enableDCO(c *busobj.Call) ([]any, error) {
	name := c.Args[0].(string)
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.gone:
		return nil, netcfgError("Virtual interface has been destroyed")
	case d.dco != nil:
		return nil, netcfgError("[EnableDCO] DCO is already enabled on this device (%s)", d.dco.name)
	case d.tun != nil:
		return nil, netcfgError("[EnableDCO] The virtual interface is already established as a TUN device")
	case !validIfName(name):
		return nil, netcfgError("[EnableDCO] Invalid device name '%s'", sanitize(name))
	}
	d.svc.mu.Lock()
	open := d.svc.openDCO
	d.svc.mu.Unlock()
	k, err := open(d.svc.netNS())
	if err != nil {
		d.log.Info("EnableDCO refused", "reason", err)
		return nil, netcfgError("[EnableDCO] DCO not available: %v", err)
	}
	// Journalled before it exists, so that the helper's next start
	// deletes a device a crash left behind.
	j, err := d.svc.Journal("dco-" + strings.TrimPrefix(string(d.path), string(api.PathNetCfg)+"/"))
	if err == nil && j != nil {
		err = j.Add(sysrec.KindLink+"#dco", sysrec.KindLink, sysrec.Link{Name: name, Type: dcoLinkType})
	}
	if err != nil {
		k.Close()
		d.log.Error("EnableDCO: journal", "err", err)
		return nil, netcfgError("[EnableDCO] Could not record the DCO device: %v", err)
	}
	ifindex, err := k.CreateDevice(name)
	if err != nil {
		k.Close()
		if j != nil {
			_ = j.Remove()
		}
		d.log.Error("EnableDCO: create device", "name", name, "err", err)
		return nil, netcfgError("[EnableDCO] Could not create the DCO device '%s': %v", name, err)
	}
	o := &dcoObject{d: d, path: d.path + "/dco", name: name, k: k, ifindex: ifindex, j: j}
	srv := d.svc.server()
	if srv == nil {
		o.remove()
		return nil, netcfgError("[EnableDCO] netcfg is shutting down")
	}
	if err := srv.Export(o.path, o.iface()); err != nil {
		o.remove()
		d.log.Error("EnableDCO: export", "path", o.path, "err", err)
		return nil, netcfgError("[EnableDCO] Could not create the DCO object")
	}
	d.dco = o
	d.log.Info("DCO device created", "name", name, "ifindex", ifindex)
	return []any{o.path}, nil
}

// dcoLink is the ovpn device's index for Establish to configure, 0 when
// DCO is not enabled; d.mu held.
func (d *device) dcoLink() int {
	if d.dco == nil {
		return 0
	}
	return d.dco.ifindex
}

// dcoLinkType is the kind rtnetlink reports for the kernel's ovpn devices.
const dcoLinkType = "ovpn"

// remove deletes the ovpn device (and with it the peer and keys); its
// record goes once it is gone.
func (o *dcoObject) remove() {
	err := o.k.DeleteDevice(o.ifindex)
	o.k.Close()
	if err != nil {
		o.d.log.Error("deleting the DCO device", "name", o.name, "err", err)
		return // the record stays for the next start to finish the job
	}
	if o.j != nil {
		if err := o.j.Remove(); err != nil {
			o.d.log.Error("removing the DCO device's record", "name", o.name, "err", err)
		}
	}
}

// teardownDCO unexports the /dco object and deletes its device; the
// caller holds no lock.
func (d *device) teardownDCO() {
	d.mu.Lock()
	o := d.dco
	d.dco = nil
	d.mu.Unlock()
	if o == nil {
		return
	}
	if srv := d.svc.server(); srv != nil {
		srv.Unexport(o.path)
	}
	o.remove()
}

func (o *dcoObject) iface() *busobj.Interface {
	return &busobj.Interface{
		Name: api.InterfaceNetCfg,
		Methods: []busobj.Method{
			{Name: "NewPeer", In: []busobj.Arg{{Name: "peer_id", Type: "u"}, {Name: "sa", Type: "s"},
				{Name: "salen", Type: "u"}, {Name: "vpn4", Type: "s"}, {Name: "vpn6", Type: "s"},
				// The transport socket travels as an explicit "h" (upstream
				// sends it outside the signature, which godbus drops).
				{Name: "socket", Type: "h"}}, Handler: o.newPeer},
			{Name: "NewKey", In: []busobj.Arg{{Name: "key_slot", Type: "u"}, {Name: "key_config", Type: "s"}}, Handler: o.newKey},
			{Name: "SwapKeys", In: []busobj.Arg{{Name: "peer_id", Type: "u"}}, Handler: o.swapKeys},
			// DelKey and GetPeerStats go beyond spec §2.9: the engine
			// deletes the lame-duck key and reads the peer's counters.
			{Name: "DelKey", In: []busobj.Arg{{Name: "peer_id", Type: "u"}, {Name: "key_slot", Type: "u"}}, Handler: o.delKey},
			{Name: "GetPeerStats", In: []busobj.Arg{{Name: "peer_id", Type: "u"}},
				Out: []busobj.Arg{{Name: "stats", Type: "a{sx}"}}, Handler: o.peerStats},
			{Name: "SetPeer", In: []busobj.Arg{{Name: "peer_id", Type: "u"}, {Name: "keepalive_interval", Type: "u"},
				{Name: "keepalive_timeout", Type: "u"}}, Handler: o.setPeer},
		},
		Authorize: o.d.authorize,
	}
}

// parseSockaddr reads a struct sockaddr_in or sockaddr_in6 (as
// openvpn3-linux sends it: raw bytes, base64).
func parseSockaddr(b []byte) (netip.AddrPort, error) {
	if len(b) < 2 {
		return netip.AddrPort{}, fmt.Errorf("sockaddr of %d bytes", len(b))
	}
	fam := binary.NativeEndian.Uint16(b)
	port := binary.BigEndian.Uint16(b[2:4:len(b)])
	switch {
	case fam == unix.AF_INET && len(b) >= unix.SizeofSockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), port), nil
	case fam == unix.AF_INET6 && len(b) >= unix.SizeofSockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[8:24])), port), nil
	}
	return netip.AddrPort{}, fmt.Errorf("sockaddr of family %d and %d bytes", fam, len(b))
}

func optAddr(s string, want6 bool) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Is6() != want6 || a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("invalid address '%s'", sanitize(s))
	}
	return a, nil
}

func (o *dcoObject) newPeer(c *busobj.Call) ([]any, error) {
	fds := unixFDs(c.Message.Body)
	defer func() {
		for _, fd := range fds {
			closeFD(fd) // the kernel holds its own reference to the socket
		}
	}()
	id, sa64, salen, v4, v6 := c.Args[0].(uint32), c.Args[1].(string), c.Args[2].(uint32), c.Args[3].(string), c.Args[4].(string)
	sa, err := base64.StdEncoding.DecodeString(sa64)
	if err != nil {
		return nil, netcfgError("[NewPeer] Invalid sockaddr: not base64")
	}
	if uint32(len(sa)) != salen {
		return nil, netcfgError("Sockaddr size mismatching")
	}
	remote, err := parseSockaddr(sa)
	if err != nil {
		return nil, netcfgError("[NewPeer] Invalid sockaddr: %v", err)
	}
	if id > 0xFFFFFF {
		return nil, netcfgError("[NewPeer] peer_id %d out of range", id)
	}
	vpn4, err := optAddr(v4, false)
	if err != nil {
		return nil, netcfgError("[NewPeer] vpn4: %v", err)
	}
	vpn6, err := optAddr(v6, true)
	if err != nil {
		return nil, netcfgError("[NewPeer] vpn6: %v", err)
	}
	if len(fds) != 1 {
		return nil, netcfgError("[NewPeer] expected the transport socket as one Unix fd, got %d", len(fds))
	}
	if _, err := unix.GetsockoptInt(fds[0], unix.SOL_SOCKET, unix.SO_TYPE); err != nil {
		return nil, netcfgError("[NewPeer] the fd is not a socket")
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.hasPeer {
		return nil, netcfgError("[NewPeer] the device already has peer %d", o.peer)
	}
	p := dco.Peer{ID: id, Socket: fds[0], Remote: remote, VPN4: vpn4, VPN6: vpn6}
	if err := o.k.NewPeer(o.ifindex, p); err != nil {
		o.d.log.Error("NewPeer", "peer_id", id, "err", err)
		return nil, netcfgError("[NewPeer] %v", err)
	}
	o.peer, o.hasPeer = id, true
	o.d.log.Info("DCO peer created", "device", o.name, "peer_id", id, "remote", remote)
	return nil, nil
}

// checkPeer refuses a peer_id that is not the device's peer; o.mu held.
func (o *dcoObject) checkPeer(method string, id uint32) error {
	if !o.hasPeer || o.peer != id {
		return netcfgError("[%s] No peer %d on this device", method, id)
	}
	return nil
}

func (o *dcoObject) newKey(c *busobj.Call) ([]any, error) {
	slot, cfg64 := c.Args[0].(uint32), c.Args[1].(string)
	if slot != uint32(dco.SlotPrimary) && slot != uint32(dco.SlotSecondary) {
		return nil, netcfgError("[NewKey] Invalid key slot %d", slot)
	}
	raw, err := base64.StdEncoding.DecodeString(cfg64)
	if err != nil {
		return nil, netcfgError("[NewKey] Invalid key config: not base64")
	}
	k, err := dco.UnmarshalKeyConfig(raw)
	clear(raw)
	if err != nil {
		return nil, netcfgError("[NewKey] Invalid %v", err)
	}
	defer func() { clear(k.Encrypt.Key); clear(k.Decrypt.Key) }()
	k.Slot = dco.Slot(slot)
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.checkPeer("NewKey", k.PeerID); err != nil {
		return nil, err
	}
	if err := o.k.NewKey(o.ifindex, k); err != nil {
		// Never log the key; the error names only what was wrong.
		return nil, netcfgError("[NewKey] %v", err)
	}
	return nil, nil
}

func (o *dcoObject) swapKeys(c *busobj.Call) ([]any, error) {
	id := c.Args[0].(uint32)
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.checkPeer("SwapKeys", id); err != nil {
		return nil, err
	}
	if err := o.k.SwapKeys(o.ifindex, id); err != nil {
		return nil, netcfgError("[SwapKeys] %v", err)
	}
	return nil, nil
}

func (o *dcoObject) setPeer(c *busobj.Call) ([]any, error) {
	id, interval, timeout := c.Args[0].(uint32), c.Args[1].(uint32), c.Args[2].(uint32)
	if interval > 0 && timeout > 0 && timeout < interval {
		return nil, netcfgError("[SetPeer] keepalive timeout %d shorter than the interval %d", timeout, interval)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.checkPeer("SetPeer", id); err != nil {
		return nil, err
	}
	if err := o.k.SetKeepalive(o.ifindex, id, interval, timeout); err != nil {
		return nil, netcfgError("[SetPeer] %v", err)
	}
	return nil, nil
}

func (o *dcoObject) delKey(c *busobj.Call) ([]any, error) {
	id, slot := c.Args[0].(uint32), c.Args[1].(uint32)
	if slot != uint32(dco.SlotPrimary) && slot != uint32(dco.SlotSecondary) {
		return nil, netcfgError("[DelKey] Invalid key slot %d", slot)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.checkPeer("DelKey", id); err != nil {
		return nil, err
	}
	if err := o.k.DelKey(o.ifindex, id, dco.Slot(slot)); err != nil {
		return nil, netcfgError("[DelKey] %v", err)
	}
	return nil, nil
}

// peerStats returns the peer's counters under the names of the session
// statistics they feed (spec §6.1): link = transport, vpn = device.
func (o *dcoObject) peerStats(c *busobj.Call) ([]any, error) {
	id := c.Args[0].(uint32)
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.checkPeer("GetPeerStats", id); err != nil {
		return nil, err
	}
	st, err := o.k.PeerStats(o.ifindex, id)
	if err != nil {
		return nil, netcfgError("[GetPeerStats] %v", err)
	}
	return []any{map[string]int64{
		"BYTES_IN": int64(st.LinkRxBytes), "BYTES_OUT": int64(st.LinkTxBytes),
		"PACKETS_IN": int64(st.LinkRxPackets), "PACKETS_OUT": int64(st.LinkTxPackets),
		"TUN_BYTES_IN": int64(st.VPNTxBytes), "TUN_BYTES_OUT": int64(st.VPNRxBytes),
		"TUN_PACKETS_IN": int64(st.VPNTxPackets), "TUN_PACKETS_OUT": int64(st.VPNRxPackets),
	}}, nil
}
