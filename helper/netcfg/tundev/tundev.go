// Package tundev creates one layer-3 TUN device and applies a tunnel's
// network configuration to it: MTU, addresses, link state and routes. It is
// the part of netcfg that needs CAP_NET_ADMIN and knows nothing of D-Bus.
//
// A Device remembers exactly what it added, so Teardown removes that and
// nothing else, and a failed Setup leaves nothing behind. With a journal
// (Options.Journal) the device we create is recorded before it exists (its
// addresses and routes go with it), and on an adopted link every address
// and route before it is made, so that a crashed helper can undo it
// (package sysrec). The device is
// not persistent: it also disappears when the last copy of its file
// descriptor is closed (for example when the process it was handed to
// dies); routes that do not go through the device (the host route to the
// VPN server, excluded and bypassed networks, block-ipv6) are shared with
// other sessions through a sharedroute.Table, survive that, and are
// released only by Teardown.
package tundev

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/ovpn3go/ovpn3go/helper/netcfg/journal"
	"github.com/ovpn3go/ovpn3go/helper/netcfg/nsexec"
	"github.com/ovpn3go/ovpn3go/helper/netcfg/sharedroute"
	"github.com/ovpn3go/ovpn3go/helper/netcfg/sysrec"
	"github.com/ovpn3go/ovpn3go/helper/netconf"
)

// DefaultName is the name pattern used when Options.Name is empty; the
// kernel replaces %d with the lowest free number.
const DefaultName = "ovpn%d"

// Options are the device settings that are not part of the tunnel's
// network configuration.
type Options struct {
	// Name is the interface name, or a pattern with one %d for the kernel
	// to complete. Empty means DefaultName.
	Name string
	// NetNS is the network namespace the device and its routes live in.
	// Values <= 0 (the zero value, netns.None()) mean the namespace the
	// process runs in. The handle is duplicated; the caller keeps its own.
	NetNS netns.NsHandle
	// TxQueueLen sets the transmit queue length; 0 keeps the kernel default.
	TxQueueLen int
	// Logger receives notes about routes that were skipped; nil discards.
	Logger *slog.Logger
	// Journal, when set, records every change before it is made.
	Journal *journal.Journal
	// Shared holds the routes outside the tunnel (server host route,
	// excluded networks, block-ipv6), shared with other devices under the
	// owner name Owner. Nil: the device keeps a table of its own.
	Shared *sharedroute.Table
	Owner  string
	// Link, when not 0, is the index of an existing device to configure
	// instead of creating a TUN device (the ovpn device of data channel
	// offload). Setup then opens no file, and Teardown removes what it
	// added but leaves the link itself to its owner.
	Link int
}

// blockMetric is the metric of block-ipv6's unreachable routes: above any
// real route, so that a tunnel that carries IPv6 still wins.
const blockMetric = 1 << 24

// Device is one TUN device configured by Setup.
type Device struct {
	log   *slog.Logger
	name  string
	index int

	mu      sync.Mutex
	ns      netns.NsHandle  // owned; closed by Teardown
	nlh     *netlink.Handle // bound to ns
	file    *os.File        // nil once closed
	addrs   []netlink.Addr  // added by us, in order
	routes  []netlink.Route // added by us, in order
	j       *journal.Journal
	shared  *sharedroute.Table
	owner   string
	private bool // shared is ours to close
	seq     int
	down    bool
	adopted bool // Options.Link: the link is not ours to delete
	vnetHdr bool // netconf.Config.VnetHdr: packets carry a virtio_net_hdr

	link       netlink.Link // the device, once created or adopted
	configured bool         // Configure ran (once only)
}

// Setup creates a TUN device and configures it from cfg. On error
// everything it already did is undone.
func Setup(ctx context.Context, cfg netconf.Config, opts Options) (*Device, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("tun setup: %w", err)
	}
	d, err := create(ctx, opts, cfg.VnetHdr)
	if err != nil {
		return nil, err
	}
	if err := d.Configure(ctx, cfg, opts.TxQueueLen); err != nil {
		return nil, err
	}
	return d, nil
}

// Create creates the TUN device alone, ahead of its configuration: down,
// without addresses or routes, so that nothing goes through it yet. It
// lets the device be made while the tunnel is still being negotiated;
// Configure applies the configuration once it is known, Teardown removes
// the device if it never is. vnetHdr is netconf.Config.VnetHdr's: whether
// packets will carry a virtio_net_hdr (Configure refuses a configuration
// that wants otherwise). Options.Link and TxQueueLen do not apply here.
func Create(ctx context.Context, opts Options, vnetHdr bool) (*Device, error) {
	if opts.Link != 0 {
		return nil, errors.New("tun create: an adopted link (Options.Link) is configured by Setup")
	}
	return create(ctx, opts, vnetHdr)
}

// create makes the netlink handle and the route table and creates the
// device (or adopts opts.Link). On error everything is undone.
func create(ctx context.Context, opts Options, vnetHdr bool) (_ *Device, err error) {
	name := opts.Name
	if name == "" {
		name = DefaultName
	}
	if len(name) >= unix.IFNAMSIZ {
		return nil, fmt.Errorf("tun setup: interface name %q longer than %d bytes", name, unix.IFNAMSIZ-1)
	}
	if opts.TxQueueLen < 0 {
		return nil, fmt.Errorf("tun setup: negative txqueuelen %d", opts.TxQueueLen)
	}
	d := &Device{log: opts.Logger, j: opts.Journal, shared: opts.Shared, owner: opts.Owner, vnetHdr: vnetHdr}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	defer func() {
		if err != nil {
			if terr := d.Teardown(); terr != nil {
				err = fmt.Errorf("%w (undo: %v)", err, terr)
			}
		}
	}()

	if opts.NetNS > 0 {
		fd, err := unix.FcntlInt(uintptr(opts.NetNS), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("tun setup: duplicate namespace handle: %w", err)
		}
		d.ns = netns.NsHandle(fd)
	} else {
		// The own namespace stays unopened: its netlink sockets are made
		// on a thread of the process's namespace, without the setns()
		// that would need CAP_SYS_ADMIN (the unit does not grant it).
		d.ns = netns.None()
	}
	if err := nsexec.Run(netns.None(), func() (err error) { d.nlh, err = netlink.NewHandleAt(d.ns); return err }); err != nil {
		return nil, fmt.Errorf("tun setup: netlink: %w", err)
	}
	if d.shared == nil {
		if d.shared, err = sharedroute.New(d.ns, nil, d.log); err != nil {
			return nil, fmt.Errorf("tun setup: %w", err)
		}
		d.private = true
	}
	if d.owner == "" {
		d.owner = fmt.Sprintf("tundev-%p", d)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("tun setup: %w", err)
	}
	if opts.Link != 0 {
		d.link, err = d.adopt(opts.Link)
	} else {
		d.link, err = d.open(name)
	}
	if err != nil {
		return nil, err
	}
	return d, nil
}

// Configure applies cfg to a device made by Create: MTU, transmit queue
// length (0 keeps the kernel's), addresses, link up, routes, and the
// shared routes outside the tunnel. It is done once; on error (but that
// of a second call) the whole device is torn down.
func (d *Device) Configure(ctx context.Context, cfg netconf.Config, txQueueLen int) (err error) {
	d.mu.Lock()
	link, down, configured := d.link, d.down, d.configured
	d.configured = true
	d.mu.Unlock()
	switch {
	case down:
		return fmt.Errorf("tun setup: %s: already torn down", d.name)
	case configured:
		return fmt.Errorf("tun setup: %s: already configured", d.name)
	}
	defer func() {
		if err != nil {
			if terr := d.Teardown(); terr != nil {
				err = fmt.Errorf("%w (undo: %v)", err, terr)
			}
		}
	}()
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("tun setup: %w", err)
	}
	if txQueueLen < 0 {
		return fmt.Errorf("tun setup: negative txqueuelen %d", txQueueLen)
	}
	if cfg.VnetHdr != d.vnetHdr {
		return fmt.Errorf("tun setup: %s: created with vnet_hdr %v, configured with %v", d.name, d.vnetHdr, cfg.VnetHdr)
	}

	// The plan needs the routes as they are before the tunnel changes them
	// (the device, down and without addresses, has changed none yet).
	plan, err := d.plan(cfg)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("tun setup: %w", err)
	}
	// The shared routes outside the tunnel (journalled on their own) are
	// taken meanwhile the link's settings, addresses and up state are
	// made; the tunnel's routes wait for them, so the server is pinned
	// outside before any route could send it inside.
	var changes []journal.Planned
	if d.adopted {
		// An adopted link outlives us, and so would what we put on it:
		// every address and route is journalled at once before the first
		// is added (one write instead of one per change; an entry whose
		// change was never made is undone as a no-op), and the addresses
		// wait for it. A device we created needs none of this: its link
		// record, journalled before the device existed, undoes it, and
		// the kernel removes its addresses and the routes through it
		// with it.
		for _, a := range plan.addrs {
			changes = append(changes, journal.Planned{Kind: sysrec.KindAddr, Data: sysrec.Addr{Link: d.name, Prefix: netPrefix(a.IPNet), Peer: peerAddr(a)}})
		}
		for _, r := range plan.routes {
			r.LinkIndex = d.index
			changes = append(changes, journal.Planned{Kind: sysrec.KindRoute, Data: sysrec.FromNetlink(r, d.name)})
		}
	}
	// Pinned routes never take a path through the device, which gets its
	// addresses meanwhile.
	d.shared.SetTunnel(d.owner, d.index)
	shared := background(func() error {
		if err := acquireShared(d.shared, d.owner, plan.shared); err != nil {
			return fmt.Errorf("tun setup: %w", err)
		}
		return nil
	})
	recorded := d.recordAllAsync(changes)
	// Both done before the deferred Teardown releases what they took.
	defer func() { _, _ = shared(), recorded() }()
	if cfg.MTU != 0 {
		if err := d.nlh.LinkSetMTU(link, cfg.MTU); err != nil {
			return fmt.Errorf("tun setup: %s: set mtu %d: %w", d.name, cfg.MTU, err)
		}
	}
	if txQueueLen != 0 {
		if err := d.nlh.LinkSetTxQLen(link, txQueueLen); err != nil {
			return fmt.Errorf("tun setup: %s: set txqueuelen %d: %w", d.name, txQueueLen, err)
		}
	}
	if err := recorded(); err != nil {
		return err
	}
	for _, a := range plan.addrs {
		if err := d.nlh.AddrAdd(link, &a); err != nil {
			return fmt.Errorf("tun setup: %s: add address %v: %w", d.name, addrString(a), err)
		}
		d.addrs = append(d.addrs, a)
	}
	if err := d.nlh.LinkSetUp(link); err != nil {
		return fmt.Errorf("tun setup: %s: set up: %w", d.name, err)
	}
	if err := shared(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("tun setup: %w", err)
	}
	for _, r := range plan.routes {
		r.LinkIndex = d.index
		if err := d.addRoute(r); err != nil {
			return err
		}
	}
	return nil
}

// acquireShared is (*sharedroute.Table).Acquire; a test delays it.
var acquireShared = (*sharedroute.Table).Acquire

// background runs f on a goroutine of its own; the function it returns
// waits for f and returns its error (and may be called again).
func background(f func() error) func() error {
	done := make(chan error, 1)
	go func() { done <- f() }()
	return sync.OnceValue(func() error { return <-done })
}

// VnetHdr reports whether the device was created with IFF_VNET_HDR.
func (d *Device) VnetHdr() bool { return d.vnetHdr }

// record writes a journal entry (when there is a journal) before the change
// it describes is made.
func (d *Device) record(kind string, v any) error {
	return d.recordAll([]journal.Planned{{Kind: kind, Data: v}})
}

// recordAll writes journal entries for changes (their IDs are assigned
// here) with one write, before the first of them is made.
func (d *Device) recordAll(changes []journal.Planned) error {
	return d.recordAllAsync(changes)()
}

// recordAllAsync is recordAll in the background: the function it returns
// waits for the write and returns its error (and may be called again).
func (d *Device) recordAllAsync(changes []journal.Planned) func() error {
	if d.j == nil || len(changes) == 0 {
		return func() error { return nil }
	}
	for i := range changes {
		d.seq++
		changes[i].ID = fmt.Sprintf("%s#%d", changes[i].Kind, d.seq)
	}
	return background(func() error {
		if err := d.j.AddAll(changes); err != nil {
			return fmt.Errorf("tun setup: %w", err)
		}
		return nil
	})
}

// addRoute adds a route (journalled already, or gone with the device) through the device. When the same destination and
// metric already go elsewhere (another session's tunnel), ours is appended
// behind it: the kernel uses the first, and ours takes over when that one
// goes, so sessions can end in any order.
func (d *Device) addRoute(r netlink.Route) error {
	err := d.nlh.RouteAdd(&r)
	if errors.Is(err, unix.EEXIST) {
		if d.routeOnDevice(r) {
			// Someone else's route on our device (the kernel's prefix
			// route of our own address): not ours to remove later.
			d.log.Info("route already present, left as it is", "device", d.name, "route", routeString(r))
			return nil
		}
		if r.Dst.IP.To4() == nil && r.Gw != nil {
			// Two IPv6 gateway routes would become one multipath route;
			// a point-to-point device needs no gateway.
			r.Gw = nil
		}
		err = d.nlh.RouteAppend(&r)
		if err == nil {
			d.log.Info("route also used by another device; ours stands behind it", "device", d.name, "route", routeString(r))
		}
	}
	if err != nil {
		return fmt.Errorf("tun setup: %s: add route %s: %w", d.name, routeString(r), err)
	}
	d.routes = append(d.routes, r)
	return nil
}

// routeOnDevice reports whether a route to r's destination with r's metric
// already goes through our device.
func (d *Device) routeOnDevice(r netlink.Route) bool {
	family := netlink.FAMILY_V4
	if r.Dst.IP.To4() == nil {
		family = netlink.FAMILY_V6
	}
	list, err := d.nlh.RouteListFiltered(family, &netlink.Route{Dst: r.Dst, LinkIndex: d.index},
		netlink.RT_FILTER_DST|netlink.RT_FILTER_OIF)
	return err == nil && len(list) > 0
}

func peerAddr(a netlink.Addr) netip.Addr {
	if a.Peer == nil {
		return netip.Addr{}
	}
	p, _ := netip.AddrFromSlice(a.Peer.IP)
	return p.Unmap()
}

// maxNameTries bounds the search for a free name.
const maxNameTries = 256

// open creates the TUN device and returns its link. The file descriptor's
// namespace decides the device's, so /dev/net/tun is opened from inside d.ns.
func (d *Device) open(name string) (netlink.Link, error) {
	var fd int
	err := nsexec.Run(d.ns, func() (err error) {
		fd, err = unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("tun setup: open /dev/net/tun: %w", err)
	}
	// The name is chosen here rather than by the kernel so that it can be
	// journalled before the device exists; IFF_TUN_EXCL refuses a name
	// that someone took meanwhile.
	var ifr *unix.Ifreq
	for n := 0; ; n++ {
		try := name
		if strings.Contains(name, "%d") {
			try = fmt.Sprintf(name, n)
		}
		if _, lerr := d.nlh.LinkByName(try); lerr == nil {
			err = unix.EEXIST
		} else if err = d.record(sysrec.KindLink, sysrec.Link{Name: try, Type: "tuntap"}); err == nil {
			ifr, err = unix.NewIfreq(try)
			if err == nil {
				flags := uint16(unix.IFF_TUN | unix.IFF_NO_PI | unix.IFF_TUN_EXCL)
				if d.vnetHdr {
					flags |= unix.IFF_VNET_HDR
				}
				ifr.SetUint16(flags)
				err = unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)
			}
			if err != nil && d.j != nil {
				_ = d.j.Drop(fmt.Sprintf("%s#%d", sysrec.KindLink, d.seq))
			}
		}
		retry := errors.Is(err, unix.EEXIST) || errors.Is(err, unix.EBUSY)
		if err == nil || !retry || !strings.Contains(name, "%d") || n >= maxNameTries {
			break
		}
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tun setup: create %q (TUNSETIFF): %w", name, err)
	}
	d.name = ifr.Name()
	// Non-blocking, so reads go through the runtime poller and Close
	// unblocks them; Teardown closes it whatever happens next.
	d.file = os.NewFile(uintptr(fd), d.name)
	link, err := d.nlh.LinkByName(d.name)
	if err != nil {
		return nil, fmt.Errorf("tun setup: look up new device %s: %w", d.name, err)
	}
	d.index = link.Attrs().Index
	return link, nil
}

// adopt takes an existing link (Options.Link) as the device.
func (d *Device) adopt(index int) (netlink.Link, error) {
	link, err := d.nlh.LinkByIndex(index)
	if err != nil {
		return nil, fmt.Errorf("tun setup: device %d: %w", index, err)
	}
	d.name, d.index, d.adopted = link.Attrs().Name, index, true
	return link, nil
}

type plan struct {
	addrs  []netlink.Addr
	routes []netlink.Route // through the new device
	shared []sharedroute.Spec
}

// plan turns cfg into the addresses and routes to add.
func (d *Device) plan(cfg netconf.Config) (plan, error) {
	var p plan
	for _, a := range cfg.Addresses {
		ip := a.Addr().Unmap()
		na := netlink.Addr{IPNet: prefixNet(netip.PrefixFrom(ip, a.Bits()))}
		if ip.Is4() && cfg.Peer4.IsValid() {
			na.Peer = &net.IPNet{IP: cfg.Peer4.Unmap().AsSlice(), Mask: na.IPNet.Mask}
		}
		if ip.Is6() {
			na.Flags = unix.IFA_F_NODAD // a point-to-point link has nobody to collide with
		}
		p.addrs = append(p.addrs, na)
	}
	onLink := func(gw netip.Addr) bool {
		if !gw.IsValid() {
			return false
		}
		if cfg.Peer4.IsValid() && gw == cfg.Peer4.Unmap() {
			return true
		}
		for _, a := range cfg.Addresses {
			if a.Masked().Contains(gw) && a.Addr() != gw {
				return true
			}
		}
		return false
	}
	// Routes without their own gateway use the pushed route-gateway, but
	// only when it is reachable through the device; otherwise on-link.
	gateway := func(r netconf.Route) netip.Addr {
		if r.Gateway.IsValid() {
			return r.Gateway.Unmap()
		}
		gw := cfg.Gateway6
		if r.Prefix.Addr().Unmap().Is4() {
			gw = cfg.Gateway4
		}
		if gw = gw.Unmap(); onLink(gw) {
			return gw
		}
		return netip.Addr{}
	}
	viaTunnel := func(r netconf.Route) netlink.Route {
		pfx := netip.PrefixFrom(r.Prefix.Addr().Unmap(), r.Prefix.Bits()).Masked()
		nr := netlink.Route{Dst: prefixNet(pfx), Priority: max(r.Metric, 0)}
		if gw := gateway(r); gw.IsValid() {
			nr.Gw = gw.AsSlice()
		} else if pfx.Addr().Is4() {
			nr.Scope = netlink.SCOPE_LINK
		}
		return nr
	}

	// The server keeps a host route on its current path outside the
	// tunnel whatever the tunnel routes (a pushed route may cover it, and
	// another session may redirect the gateway later), unless
	// redirect-gateway local says it is on the local network.
	if cfg.Remote.IsValid() && !cfg.RedirectLocal {
		remote := cfg.Remote.Unmap()
		p.shared = append(p.shared, sharedroute.Spec{Kind: sharedroute.Pin, Prefix: netip.PrefixFrom(remote, remote.BitLen())})
	}
	for _, r := range cfg.Routes {
		if r.Exclude {
			pfx := netip.PrefixFrom(r.Prefix.Addr().Unmap(), r.Prefix.Bits()).Masked()
			p.shared = append(p.shared, sharedroute.Spec{Kind: sharedroute.Pin, Prefix: pfx, Metric: max(r.Metric, 0)})
		}
	}
	if cfg.BlockIPv6 && !cfg.RedirectIPv6 {
		for _, s := range []string{"::/1", "8000::/1"} {
			p.shared = append(p.shared, sharedroute.Spec{Kind: sharedroute.Unreachable, Prefix: netip.MustParsePrefix(s), Metric: blockMetric})
		}
	}
	for _, r := range cfg.Routes {
		if !r.Exclude {
			p.routes = append(p.routes, viaTunnel(r))
		}
	}
	if cfg.RedirectIPv4 {
		for _, s := range []string{"0.0.0.0/1", "128.0.0.0/1"} {
			p.routes = append(p.routes, viaTunnel(netconf.Route{Prefix: netip.MustParsePrefix(s)}))
		}
	}
	if cfg.RedirectIPv6 {
		for _, s := range []string{"::/1", "8000::/1"} {
			p.routes = append(p.routes, viaTunnel(netconf.Route{Prefix: netip.MustParsePrefix(s)}))
		}
	}
	if cfg.BlockLocal {
		lans, gw, err := d.localNetworks()
		if err != nil {
			return p, err
		}
		for _, lan := range lans {
			// Two halves, so they win over the connected route.
			lo := netip.PrefixFrom(lan.Addr(), lan.Bits()+1)
			hi := netip.PrefixFrom(lastHalf(lan), lan.Bits()+1)
			for _, h := range []netip.Prefix{lo, hi} {
				p.routes = append(p.routes, viaTunnel(netconf.Route{Prefix: h}))
			}
		}
		if gw.IsValid() {
			p.shared = append(p.shared, sharedroute.Spec{Kind: sharedroute.Pin, Prefix: netip.PrefixFrom(gw, gw.BitLen())})
		}
		d.log.Info("block-local: local networks routed into the tunnel", "networks", lans, "gateway kept outside", gw)
	}
	return p, nil
}

// localNetworks are the IPv4 networks directly connected to the link that
// carries the default route outside the tunnels (for block-local), and that
// route's gateway.
func (d *Device) localNetworks() ([]netip.Prefix, netip.Addr, error) {
	link, gw, ok, err := d.shared.Outside(netip.IPv4Unspecified())
	if err != nil || !ok {
		return nil, netip.Addr{}, err
	}
	list, err := d.nlh.RouteListFiltered(netlink.FAMILY_V4,
		&netlink.Route{LinkIndex: link, Scope: netlink.SCOPE_LINK, Table: unix.RT_TABLE_MAIN},
		netlink.RT_FILTER_OIF|netlink.RT_FILTER_SCOPE|netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, netip.Addr{}, fmt.Errorf("tun setup: block-local: list local networks: %w", err)
	}
	var out []netip.Prefix
	for _, r := range list {
		pfx := netPrefix(r.Dst)
		if r.Dst == nil || r.Gw != nil || r.Type != unix.RTN_UNICAST || pfx.Bits() == 0 || pfx.Bits() >= 31 {
			continue
		}
		if !slices.Contains(out, pfx.Masked()) {
			out = append(out, pfx.Masked())
		}
	}
	return out, gw, nil
}

// lastHalf is the first address of the upper half of p.
func lastHalf(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	bit := p.Bits() // index of the bit that splits p
	b[bit/8] |= 0x80 >> (bit % 8)
	return netip.AddrFrom4(b)
}

// Name is the kernel's name of the device, e.g. "ovpn0".
func (d *Device) Name() string { return d.name }

// Index is the device's interface index.
func (d *Device) Index() int { return d.index }

// File is the TUN file descriptor (packets without a header), or nil once
// CloseFile or Teardown closed it. The device owns it.
func (d *Device) File() *os.File {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.file
}

// Read reads one packet from the device.
func (d *Device) Read(b []byte) (int, error) {
	f := d.File()
	if f == nil {
		return 0, os.ErrClosed
	}
	return f.Read(b)
}

// Write sends one packet into the device.
func (d *Device) Write(b []byte) (int, error) {
	f := d.File()
	if f == nil {
		return 0, os.ErrClosed
	}
	return f.Write(b)
}

// Close is Teardown, so a Device can serve as an io.ReadWriteCloser.
func (d *Device) Close() error { return d.Teardown() }

// CloseFile closes this process's copy of the file descriptor after it was
// handed to another process: the device then lives as long as that copy.
func (d *Device) CloseFile() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.file == nil {
		return nil
	}
	err := d.file.Close()
	d.file = nil
	if err != nil {
		return fmt.Errorf("close %s: %w", d.name, err)
	}
	return nil
}

// Addresses are the addresses Setup added, as prefixes.
func (d *Device) Addresses() []netip.Prefix {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]netip.Prefix, 0, len(d.addrs))
	for _, a := range d.addrs {
		out = append(out, netPrefix(a.IPNet))
	}
	return out
}

// Routes are the routes Setup added through the device, then the shared
// routes outside it this device holds: destination and gateway (zero when
// on-link), and whether they go through the device.
func (d *Device) Routes() []AddedRoute {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]AddedRoute, 0, len(d.routes))
	for _, r := range d.routes {
		gw, _ := netip.AddrFromSlice(r.Gw)
		out = append(out, AddedRoute{Prefix: netPrefix(r.Dst), Gateway: gw.Unmap(), ViaDevice: r.LinkIndex == d.index})
	}
	if d.shared != nil && !d.down {
		for _, r := range d.shared.Held(d.owner) {
			out = append(out, AddedRoute{Prefix: r.Dst, Gateway: r.Gw})
		}
	}
	return out
}

// AddedRoute describes one route Setup added.
type AddedRoute struct {
	Prefix    netip.Prefix
	Gateway   netip.Addr
	ViaDevice bool
}

// Teardown removes the routes, then the addresses, then the device, and
// releases the namespace handle. It tries every step, returns all errors
// joined, and does nothing when called again.
func (d *Device) Teardown() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.down {
		return nil
	}
	d.down = true
	var errs []error
	if d.nlh != nil {
		// If the device is gone (its last fd closed), the kernel already
		// dropped its routes and addresses, and the index may one day
		// belong to another device: only touch it while it is ours.
		alive := d.index != 0 && d.linkIsOurs()
		for _, r := range slices.Backward(d.routes) {
			if r.LinkIndex == d.index && !alive {
				continue
			}
			if err := d.nlh.RouteDel(&r); err != nil && !gone(err) {
				errs = append(errs, fmt.Errorf("%s: delete route %s: %w", d.name, routeString(r), err))
			}
		}
		d.routes = nil
		if d.shared != nil {
			if err := d.shared.Release(d.owner); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", d.name, err))
			}
			if d.private {
				if err := d.shared.Close(); err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", d.name, err))
				}
			}
		}
		if alive {
			for _, a := range slices.Backward(d.addrs) {
				a.LinkIndex = d.index
				if err := d.nlh.AddrDel(nil, &a); err != nil && !gone(err) {
					errs = append(errs, fmt.Errorf("%s: delete address %s: %w", d.name, addrString(a), err))
				}
			}
		}
		d.addrs = nil
	}
	if d.file != nil {
		if err := d.file.Close(); err != nil {
			errs = append(errs, fmt.Errorf("%s: close: %w", d.name, err))
		}
		d.file = nil
	}
	if d.nlh != nil {
		// Another process may still hold the fd; delete the link itself.
		if d.index != 0 && !d.adopted && d.linkIsOurs() {
			link, err := d.nlh.LinkByIndex(d.index)
			if err == nil {
				err = d.nlh.LinkDel(link)
			}
			if err != nil && !gone(err) && !isLinkNotFound(err) {
				errs = append(errs, fmt.Errorf("%s: delete device: %w", d.name, err))
			}
		}
		d.nlh.Close()
		d.nlh = nil
	}
	if d.ns.IsOpen() {
		if err := d.ns.Close(); err != nil {
			errs = append(errs, fmt.Errorf("%s: close namespace handle: %w", d.name, err))
		}
	}
	if len(errs) == 0 && d.j != nil {
		// Everything is undone: the record can go. Otherwise it stays
		// for the next start of the helper to finish the job.
		if err := d.j.Remove(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", d.name, err))
		}
	}
	return errors.Join(errs...)
}

// linkIsOurs reports whether d.index still names our device.
func (d *Device) linkIsOurs() bool {
	link, err := d.nlh.LinkByIndex(d.index)
	if err != nil {
		return false
	}
	return link.Attrs().Name == d.name && (d.adopted || link.Type() == "tuntap")
}

func gone(err error) bool {
	return errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENODEV) ||
		errors.Is(err, unix.EADDRNOTAVAIL) || errors.Is(err, unix.ENOENT)
}

func isLinkNotFound(err error) bool {
	var lnf netlink.LinkNotFoundError
	return errors.As(err, &lnf)
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func netPrefix(n *net.IPNet) netip.Prefix {
	if n == nil {
		return netip.Prefix{}
	}
	ip, _ := netip.AddrFromSlice(n.IP)
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(ip.Unmap(), ones)
}

func addrString(a netlink.Addr) string {
	s := netPrefix(a.IPNet).String()
	if a.Peer != nil {
		s += " peer " + a.Peer.IP.String()
	}
	return s
}

func routeString(r netlink.Route) string {
	s := netPrefix(r.Dst).String()
	if r.Gw != nil {
		s += " via " + r.Gw.String()
	}
	if r.Priority != 0 {
		s += fmt.Sprintf(" metric %d", r.Priority)
	}
	return s
}
