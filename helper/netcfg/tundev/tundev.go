// Package tundev creates one layer-3 TUN device and applies a tunnel's
// network configuration to it: MTU, addresses, link state and routes. It is
// the part of netcfg that needs CAP_NET_ADMIN and knows nothing of D-Bus.
//
// A Device remembers exactly what it added, so Teardown removes that and
// nothing else, and a failed Setup leaves nothing behind. The device is not
// persistent: it also disappears when the last copy of its file descriptor
// is closed (for example when the process it was handed to dies); routes
// that do not go through the device (the host route to the VPN server,
// excluded networks) survive that and are removed only by Teardown.
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
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/ovpn3go/ovpn3go/helper/netcfg/nsexec"
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
}

// Device is one TUN device configured by Setup.
type Device struct {
	log   *slog.Logger
	name  string
	index int

	mu     sync.Mutex
	ns     netns.NsHandle  // owned; closed by Teardown
	nlh    *netlink.Handle // bound to ns
	file   *os.File        // nil once closed
	addrs  []netlink.Addr  // added by us, in order
	routes []netlink.Route // added by us, in order
	down   bool
}

// Setup creates a TUN device and configures it from cfg. On error
// everything it already did is undone.
func Setup(ctx context.Context, cfg netconf.Config, opts Options) (_ *Device, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("tun setup: %w", err)
	}
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
	d := &Device{log: opts.Logger}
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
		// Any thread not locked by someone is in the process's namespace;
		// nsexec.Run hands us such a thread.
		err := nsexec.Run(netns.None(), func() (err error) {
			d.ns, err = netns.Get()
			return err
		})
		if err != nil {
			d.ns = netns.None()
			return nil, fmt.Errorf("tun setup: current network namespace: %w", err)
		}
	}
	if d.nlh, err = netlink.NewHandleAt(d.ns); err != nil {
		return nil, fmt.Errorf("tun setup: netlink: %w", err)
	}

	// The plan needs the routes as they are before the tunnel changes them.
	plan, err := d.plan(cfg)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("tun setup: %w", err)
	}

	if err := d.open(name); err != nil {
		return nil, err
	}
	link, err := d.nlh.LinkByIndex(d.index)
	if err != nil {
		return nil, fmt.Errorf("tun setup: look up %s: %w", d.name, err)
	}
	if cfg.MTU != 0 {
		if err := d.nlh.LinkSetMTU(link, cfg.MTU); err != nil {
			return nil, fmt.Errorf("tun setup: %s: set mtu %d: %w", d.name, cfg.MTU, err)
		}
	}
	if opts.TxQueueLen != 0 {
		if err := d.nlh.LinkSetTxQLen(link, opts.TxQueueLen); err != nil {
			return nil, fmt.Errorf("tun setup: %s: set txqueuelen %d: %w", d.name, opts.TxQueueLen, err)
		}
	}
	for _, a := range plan.addrs {
		if err := d.nlh.AddrAdd(link, &a); err != nil {
			return nil, fmt.Errorf("tun setup: %s: add address %v: %w", d.name, addrString(a), err)
		}
		d.addrs = append(d.addrs, a)
	}
	if err := d.nlh.LinkSetUp(link); err != nil {
		return nil, fmt.Errorf("tun setup: %s: set up: %w", d.name, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("tun setup: %w", err)
	}
	for _, r := range plan.routes {
		if r.LinkIndex == 0 {
			r.LinkIndex = d.index
		}
		err := d.nlh.RouteAdd(&r)
		if errors.Is(err, unix.EEXIST) {
			// Someone else's route (often the kernel's prefix route of
			// our own address): it is not ours to remove later.
			d.log.Info("route already present, left as it is", "device", d.name, "route", routeString(r))
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("tun setup: %s: add route %s: %w", d.name, routeString(r), err)
		}
		d.routes = append(d.routes, r)
	}
	return d, nil
}

// open creates the TUN device. The file descriptor's namespace decides the
// device's, so /dev/net/tun is opened from inside d.ns.
func (d *Device) open(name string) error {
	var fd int
	err := nsexec.Run(d.ns, func() (err error) {
		fd, err = unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		return err
	})
	if err != nil {
		return fmt.Errorf("tun setup: open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err == nil {
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		err = unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)
	}
	if err != nil {
		unix.Close(fd)
		return fmt.Errorf("tun setup: create %q (TUNSETIFF): %w", name, err)
	}
	d.name = ifr.Name()
	// Non-blocking, so reads go through the runtime poller and Close
	// unblocks them; Teardown closes it whatever happens next.
	d.file = os.NewFile(uintptr(fd), d.name)
	link, err := d.nlh.LinkByName(d.name)
	if err != nil {
		return fmt.Errorf("tun setup: look up new device %s: %w", d.name, err)
	}
	d.index = link.Attrs().Index
	return nil
}

type plan struct {
	addrs  []netlink.Addr
	routes []netlink.Route // LinkIndex 0: through the new device
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
	// outside keeps dst on the path it takes now, before the tunnel.
	outside := func(pfx netip.Prefix) (netlink.Route, bool, error) {
		cur, err := d.nlh.RouteGet(pfx.Addr().AsSlice())
		if errors.Is(err, unix.ENETUNREACH) || errors.Is(err, unix.EHOSTUNREACH) || (err == nil && len(cur) == 0) {
			return netlink.Route{}, false, nil
		}
		if err != nil {
			return netlink.Route{}, false, fmt.Errorf("tun setup: look up the current route to %v: %w", pfx.Addr(), err)
		}
		c := cur[0]
		if c.Type == unix.RTN_LOCAL || c.LinkIndex == 0 {
			return netlink.Route{}, false, nil
		}
		nr := netlink.Route{Dst: prefixNet(pfx), LinkIndex: c.LinkIndex, Gw: c.Gw}
		if c.Gw == nil && pfx.Addr().Is4() {
			nr.Scope = netlink.SCOPE_LINK
		}
		return nr, true, nil
	}

	if cfg.Remote.IsValid() {
		remote := cfg.Remote.Unmap()
		if (remote.Is4() && cfg.RedirectIPv4) || (remote.Is6() && cfg.RedirectIPv6) {
			r, ok, err := outside(netip.PrefixFrom(remote, remote.BitLen()))
			if err != nil {
				return p, err
			}
			if ok {
				p.routes = append(p.routes, r)
			} else {
				d.log.Info("no route to the VPN server outside the tunnel; no host route added", "remote", remote)
			}
		}
	}
	for _, r := range cfg.Routes {
		if !r.Exclude {
			continue
		}
		pfx := netip.PrefixFrom(r.Prefix.Addr().Unmap(), r.Prefix.Bits()).Masked()
		nr, ok, err := outside(pfx)
		if err != nil {
			return p, err
		}
		if !ok {
			d.log.Info("excluded network has no route outside the tunnel; nothing to add", "network", pfx)
			continue
		}
		nr.Priority = max(r.Metric, 0)
		p.routes = append(p.routes, nr)
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
	return p, nil
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

// Routes are the routes Setup added: destination and gateway (zero when
// on-link), and whether they go through the device.
func (d *Device) Routes() []AddedRoute {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]AddedRoute, 0, len(d.routes))
	for _, r := range d.routes {
		gw, _ := netip.AddrFromSlice(r.Gw)
		out = append(out, AddedRoute{Prefix: netPrefix(r.Dst), Gateway: gw.Unmap(), ViaDevice: r.LinkIndex == d.index})
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
		if d.index != 0 && d.linkIsOurs() {
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
	return errors.Join(errs...)
}

// linkIsOurs reports whether d.index still names our TUN device.
func (d *Device) linkIsOurs() bool {
	link, err := d.nlh.LinkByIndex(d.index)
	if err != nil {
		return false
	}
	return link.Attrs().Name == d.name && link.Type() == "tuntap"
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
