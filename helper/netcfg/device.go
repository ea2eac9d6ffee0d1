package netcfg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/busobj"
	"github.com/ovpn3go/ovpn3go/helper/netcfg/dns"
	"github.com/ovpn3go/ovpn3go/helper/netcfg/tundev"
	"github.com/ovpn3go/ovpn3go/helper/netconf"
)

// Device layers (spec §3.9).
const (
	layerUnset = 0
	layerTAP   = 2
	layerTUN   = 3
)

// device is one device object: the configuration queued by its creator,
// and once established the TUN device.
type device struct {
	svc         *Service
	log         *slog.Logger
	path        dbus.ObjectPath
	label       string
	ownerUID    uint32
	creatorPID  uint32
	creatorName string

	mu         sync.Mutex
	addrs      []queuedAddr
	networks   []netconf.Route
	remote     netip.Addr
	mtu        uint16
	layer      uint32
	txqueuelen uint16
	vnetHdr    bool // ovpn3go's vnet_hdr: create the device with IFF_VNET_HDR
	reroute4   bool
	reroute6   bool
	flags      []string // route_flags
	dnsServers []string
	dnsSearch  []string
	dnssec     string
	transport  string
	dnsScope   string
	dnsApplied bool // dnshook.go
	tun        *tundev.Device
	early      *tundev.Device // Prepare's: created, not yet configured
	dco        *dcoObject     // EnableDCO (dcodev.go)
	gone       bool
}

type queuedAddr struct {
	prefix  netip.Prefix
	gateway netip.Addr
}

func newDevice(s *Service, path dbus.ObjectPath, label string, uid, pid uint32, sender string) *device {
	return &device{
		svc: s, log: s.log.With("device", path), path: path, label: label,
		ownerUID: uid, creatorPID: pid, creatorName: sender,
		mtu: 1500, layer: layerTUN, dnssec: "unset", transport: "unset", dnsScope: "global",
	}
}

func (d *device) iface() *busobj.Interface {
	ro := func(get func() any) func(*busobj.Call) (any, error) {
		return func(*busobj.Call) (any, error) {
			d.mu.Lock()
			defer d.mu.Unlock()
			return get(), nil
		}
	}
	return &busobj.Interface{
		Name: api.InterfaceNetCfg,
		Methods: []busobj.Method{
			{Name: "AddIPAddress", In: []busobj.Arg{{Name: "ip_address", Type: "s"}, {Name: "prefix_size", Type: "u"},
				{Name: "gateway", Type: "s"}, {Name: "ipv6", Type: "b"}}, Handler: d.addIPAddress},
			{Name: "SetRemoteAddress", In: []busobj.Arg{{Name: "ip_address", Type: "s"}, {Name: "ipv6", Type: "b"}},
				Handler: d.setRemoteAddress},
			{Name: "AddNetworks", In: []busobj.Arg{{Name: "networks", Type: "a(suibb)"}}, Handler: d.addNetworks},
			{Name: "AddNetworksVia", In: []busobj.Arg{{Name: "networks", Type: "a(suibbs)"}}, Handler: d.addNetworksVia},
			{Name: "AddDNS", In: []busobj.Arg{{Name: "server_list", Type: "as"}}, Handler: d.addDNS},
			{Name: "AddDNSSearch", In: []busobj.Arg{{Name: "domains", Type: "as"}}, Handler: d.addDNSSearch},
			{Name: "SetDNSSEC", In: []busobj.Arg{{Name: "mode", Type: "s"}}, Handler: d.setDNSSEC},
			{Name: "SetDNSTransport", In: []busobj.Arg{{Name: "mode", Type: "s"}}, Handler: d.setDNSTransport},
			// Out deviates from upstream's empty body: godbus only hands a
			// received fd to the caller when the body refers to it.
			{Name: "EnableDCO", In: []busobj.Arg{{Name: "dev_name", Type: "s"}},
				Out: []busobj.Arg{{Name: "dco_device_path", Type: "o"}}, Handler: d.enableDCO},
			// ovpn3go's own: every setting in one call (describe.go).
			{Name: "Describe", In: []busobj.Arg{{Name: "settings", Type: "a(sav)"}}, Handler: d.describe},
			// ovpn3go's own: the TUN device is created while the tunnel is
			// still negotiated, so that Establish only configures it.
			{Name: "Prepare", In: []busobj.Arg{{Name: "vnet_hdr", Type: "b"}}, Handler: d.prepare},
			{Name: "Establish", Out: []busobj.Arg{{Name: "tun_fd", Type: "h"}}, Handler: d.establish, OutOptional: true},
			// ovpn3go's own: Describe and Establish in one call, so the
			// PUSH_REPLY is one round trip from the configured device.
			{Name: "EstablishWith", In: []busobj.Arg{{Name: "settings", Type: "a(sav)"}},
				Out: []busobj.Arg{{Name: "tun_fd", Type: "h"}}, Handler: d.establishWith, OutOptional: true},
			{Name: "Disable", Handler: func(c *busobj.Call) ([]any, error) {
				d.disable("Disable by " + c.Sender)
				return nil, nil
			}},
			{Name: "Destroy", Handler: func(c *busobj.Call) ([]any, error) {
				d.svc.destroy(d, "Destroy by "+c.Sender+" (uid "+strconv.FormatUint(uint64(c.UID), 10)+")")
				return nil, nil
			}},
		},
		Properties: []busobj.Property{
			{Name: "device_name", Type: "s", Get: ro(func() any {
				if d.tun == nil {
					return ""
				}
				return d.tun.Name()
			})},
			{Name: "mtu", Type: "q", Get: ro(func() any { return d.mtu }), Set: func(_ *busobj.Call, v any) error {
				mtu := v.(uint16)
				if mtu < 576 {
					return fmt.Errorf("Invalid MTU value: %d (minimum 576)", mtu)
				}
				d.mu.Lock()
				d.mtu = mtu
				d.mu.Unlock()
				return nil
			}},
			{Name: "layer", Type: "u", Get: ro(func() any { return d.layer }), Set: func(_ *busobj.Call, v any) error {
				l := v.(uint32)
				if l != layerTUN && l != layerUnset {
					if l == layerTAP {
						return errors.New("Layer 2 (tap) devices are not supported")
					}
					return fmt.Errorf("Invalid layer value: %d", l)
				}
				d.mu.Lock()
				d.layer = layerTUN
				d.mu.Unlock()
				return nil
			}},
			{Name: "txqueuelen", Type: "q", Get: ro(func() any { return d.txqueuelen }), Set: func(_ *busobj.Call, v any) error {
				d.mu.Lock()
				d.txqueuelen = v.(uint16)
				d.mu.Unlock()
				return nil
			}},
			// ovpn3go's own: the backend reads and writes packets with a
			// virtio_net_hdr to use the TUN offloads.
			{Name: "vnet_hdr", Type: "b", Get: ro(func() any { return d.vnetHdr }), Set: func(_ *busobj.Call, v any) error {
				d.mu.Lock()
				d.vnetHdr = v.(bool)
				d.mu.Unlock()
				return nil
			}},
			{Name: "reroute_ipv4", Type: "b", Get: ro(func() any { return d.reroute4 }), Set: func(_ *busobj.Call, v any) error {
				d.mu.Lock()
				d.reroute4 = v.(bool)
				d.mu.Unlock()
				return nil
			}},
			{Name: "reroute_ipv6", Type: "b", Get: ro(func() any { return d.reroute6 }), Set: func(_ *busobj.Call, v any) error {
				d.mu.Lock()
				d.reroute6 = v.(bool)
				d.mu.Unlock()
				return nil
			}},
			// Not in openvpn3's API: redirect-gateway flags and block-ipv6,
			// which only a backend of ours sets.
			{Name: "route_flags", Type: "as", Get: ro(func() any { return append([]string{}, d.flags...) }), Set: func(_ *busobj.Call, v any) error {
				flags := v.([]string)
				for _, f := range flags {
					if !slices.Contains(routeFlags, f) {
						return fmt.Errorf("Invalid route flag '%s' (known: %s)", sanitize(f), strings.Join(routeFlags, ", "))
					}
				}
				d.mu.Lock()
				d.flags = slices.Clone(flags)
				d.mu.Unlock()
				return nil
			}},
			{Name: "owner", Type: "u", Get: ro(func() any { return d.ownerUID })},
			{Name: "acl", Type: "au", Get: ro(func() any { return []uint32{d.ownerUID} })},
			{Name: "dns_scope", Type: "s", Get: ro(func() any { return d.dnsScope }), Set: func(_ *busobj.Call, v any) error {
				scope := v.(string)
				if scope != "global" && scope != "tunnel" {
					return fmt.Errorf("[SetDNSScope] Invalid DNS Scope value: %s", sanitize(scope))
				}
				d.mu.Lock()
				d.dnsScope = scope
				d.mu.Unlock()
				return nil
			}},
			// Declared "s" but carrying "as", as upstream does (spec §2.8).
			{Name: "dns_name_servers", Type: "s", Get: ro(func() any { return append([]string{}, d.dnsServers...) })},
			{Name: "dns_search_domains", Type: "s", Get: ro(func() any { return append([]string{}, d.dnsSearch...) })},
			{Name: "dnssec_mode", Type: "s", Get: ro(func() any { return d.dnssec })},
		},
		Authorize: d.authorize,
	}
}

// authorize: only root and the creator process (a backend, or root) may
// read or change a device or its DCO object.
func (d *device) authorize(c *busobj.Call) error {
	if c.UID == 0 || c.PID == d.creatorPID && c.UID == d.ownerUID {
		return nil
	}
	d.log.Warn("unauthorized access to device", "sender", c.Sender, "uid", c.UID, "pid", c.PID, "op", c.Op, "member", c.Member)
	if c.Op == busobj.OpSet {
		return busobj.Deny("Access denied: only the device's creator may change it")
	}
	return busobj.Deny("")
}

// parseAddr parses an address of the announced family; zones and
// IPv4-mapped forms are refused because the kernel cannot use them here.
func parseAddr(s string, ipv6 bool) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" || a.Is4In6() {
		return netip.Addr{}, fmt.Errorf("invalid IP address '%s'", sanitize(s))
	}
	if a.Is6() != ipv6 {
		return netip.Addr{}, fmt.Errorf("IP address '%s' is not %s", s, family(ipv6))
	}
	return a, nil
}

func family(ipv6 bool) string {
	if ipv6 {
		return "IPv6"
	}
	return "IPv4"
}

func (d *device) addIPAddress(c *busobj.Call) ([]any, error) {
	ipStr, prefix, gwStr, ipv6 := c.Args[0].(string), c.Args[1].(uint32), c.Args[2].(string), c.Args[3].(bool)
	ip, err := parseAddr(ipStr, ipv6)
	if err != nil {
		return nil, netcfgError("[AddIPAddress] %v", err)
	}
	if prefix > uint32(ip.BitLen()) {
		return nil, netcfgError("[AddIPAddress] Invalid prefix size %d for '%s'", prefix, ipStr)
	}
	var gw netip.Addr
	if gwStr != "" {
		if gw, err = parseAddr(gwStr, ipv6); err != nil {
			return nil, netcfgError("[AddIPAddress] gateway: %v", err)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.addrs) >= maxAddresses {
		return nil, netcfgError("[AddIPAddress] Too many IP addresses")
	}
	d.addrs = append(d.addrs, queuedAddr{netip.PrefixFrom(ip, int(prefix)), gw})
	return nil, nil
}

func (d *device) setRemoteAddress(c *busobj.Call) ([]any, error) {
	ip, err := parseAddr(c.Args[0].(string), c.Args[1].(bool))
	if err != nil {
		return nil, netcfgError("[SetRemoteAddress] %v", err)
	}
	d.mu.Lock()
	d.remote = ip
	d.mu.Unlock()
	return nil, nil
}

// network and networkVia are the elements of AddNetworks and
// AddNetworksVia (the wire types are in package api, shared with the
// client).
type (
	network    = api.NetCfgNetwork
	networkVia = api.NetCfgNetworkVia
)

func (d *device) addNetworks(c *busobj.Call) ([]any, error) {
	var nets []network
	if err := dbus.Store(c.Args, &nets); err != nil {
		return nil, netcfgError("[AddNetworks] Invalid network list: %v", err)
	}
	via := make([]networkVia, len(nets))
	for i, n := range nets {
		via[i] = networkVia{Address: n.Address, Prefix: n.Prefix, Metric: n.Metric, IPv6: n.IPv6, Exclude: n.Exclude}
	}
	return d.queueNetworks("AddNetworks", via)
}

// addNetworksVia is AddNetworks with a gateway per network (not in
// openvpn3's API, whose networks have none: pushed "route net mask gw").
func (d *device) addNetworksVia(c *busobj.Call) ([]any, error) {
	var nets []networkVia
	if err := dbus.Store(c.Args, &nets); err != nil {
		return nil, netcfgError("[AddNetworksVia] Invalid network list: %v", err)
	}
	return d.queueNetworks("AddNetworksVia", nets)
}

func (d *device) queueNetworks(method string, nets []networkVia) ([]any, error) {
	routes := make([]netconf.Route, 0, len(nets))
	for i, n := range nets {
		ip, err := parseAddr(n.Address, n.IPv6)
		if err != nil {
			return nil, netcfgError("[%s] network %d: %v", method, i, err)
		}
		if n.Prefix > uint32(ip.BitLen()) {
			return nil, netcfgError("[%s] network %d: invalid prefix size %d for '%s'", method, i, n.Prefix, n.Address)
		}
		r := netconf.Route{
			Prefix:  netip.PrefixFrom(ip, int(n.Prefix)).Masked(),
			Metric:  max(int(n.Metric), 0),
			Exclude: n.Exclude,
		}
		if n.Gateway != "" {
			if r.Gateway, err = parseAddr(n.Gateway, n.IPv6); err != nil {
				return nil, netcfgError("[%s] network %d: gateway: %v", method, i, err)
			}
		}
		routes = append(routes, r)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.networks)+len(routes) > maxNetworks {
		return nil, netcfgError("[%s] Too many networks (limit %d)", method, maxNetworks)
	}
	d.networks = append(d.networks, routes...)
	return nil, nil
}

func (d *device) addDNS(c *busobj.Call) ([]any, error) {
	list := c.Args[0].([]string)
	for _, s := range list {
		// "addr", "addr:port", "[v6]:port", each optionally "#tls-name".
		_, sni, err := dns.ParseServer(s)
		if err != nil || sni != "" && netconf.CheckDomain(sni) != nil {
			return nil, netcfgError("[AddDNS] Invalid DNS server address '%s'", sanitize(s))
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.dnsServers)+len(list) > maxDNSEntries {
		return nil, netcfgError("[AddDNS] Too many DNS servers")
	}
	d.dnsServers = append(d.dnsServers, list...)
	return nil, nil
}

func (d *device) addDNSSearch(c *busobj.Call) ([]any, error) {
	list := c.Args[0].([]string)
	for _, s := range list {
		// "~domain" is routing-only (split DNS), "~." all DNS.
		if s != "~." && netconf.CheckDomain(strings.TrimPrefix(s, "~")) != nil {
			return nil, netcfgError("[AddDNSSearch] Invalid search domain '%s'", sanitize(s))
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.dnsSearch)+len(list) > maxDNSEntries {
		return nil, netcfgError("[AddDNSSearch] Too many search domains")
	}
	d.dnsSearch = append(d.dnsSearch, list...)
	return nil, nil
}

func (d *device) setDNSSEC(c *busobj.Call) ([]any, error) {
	mode := c.Args[0].(string)
	switch mode {
	case "yes", "no", "optional":
	default:
		return nil, netcfgError("[SetDNSSEC] Invalid DNSSEC mode: '%s'", sanitize(mode))
	}
	d.mu.Lock()
	d.dnssec = mode
	d.mu.Unlock()
	return nil, nil
}

func (d *device) setDNSTransport(c *busobj.Call) ([]any, error) {
	mode := c.Args[0].(string)
	switch mode {
	case "plain", "dot", "doh":
	default:
		return nil, netcfgError("[SetDNSTransport] Invalid DNS transport mode: '%s'", sanitize(mode))
	}
	d.mu.Lock()
	d.transport = mode
	d.mu.Unlock()
	return nil, nil
}

// config turns the queued settings into a netconf.Config. The gateway of an
// IPv4 address that lies outside its own prefix, or of a /30-or-longer one
// (topology net30/p2p), is the point-to-point peer.
func (d *device) config() netconf.Config {
	cfg := netconf.Config{
		Routes:        append([]netconf.Route{}, d.networks...),
		RedirectIPv4:  d.reroute4,
		RedirectIPv6:  d.reroute6,
		MTU:           int(d.mtu),
		Remote:        d.remote,
		RedirectLocal: slices.Contains(d.flags, "local"),
		BlockLocal:    slices.Contains(d.flags, "block-local"),
		BypassDHCP:    slices.Contains(d.flags, "bypass-dhcp"),
		BypassDNS:     slices.Contains(d.flags, "bypass-dns"),
		BlockIPv6:     slices.Contains(d.flags, "block-ipv6"),
		VnetHdr:       d.vnetHdr,
	}
	for _, a := range d.addrs {
		cfg.Addresses = append(cfg.Addresses, a.prefix)
		if !a.gateway.IsValid() {
			continue
		}
		if a.gateway.Is4() {
			cfg.Gateway4 = a.gateway
			if a.prefix.Bits() >= 30 || !a.prefix.Masked().Contains(a.gateway) {
				cfg.Peer4 = a.gateway
			}
		} else {
			cfg.Gateway6 = a.gateway
		}
	}
	// A route's own gateway must be reachable through the tunnel; one that
	// is not is dropped (the route stays, through the device), as OpenVPN
	// carries on when such a route cannot be added as given.
	for i, r := range cfg.Routes {
		if r.Gateway.IsValid() && !r.Exclude && !onTunnel(cfg, r.Gateway) {
			if d.log != nil {
				d.log.Warn("route gateway not reachable through the tunnel; route added without it",
					"route", r.Prefix, "gateway", r.Gateway)
			}
			cfg.Routes[i].Gateway = netip.Addr{}
		}
	}
	// DNS is not part of it: dnshook.go applies it once the device exists.
	return cfg
}

// onTunnel reports whether gw is the point-to-point peer or inside one of
// the tunnel's own networks (and not one of its own addresses).
func onTunnel(cfg netconf.Config, gw netip.Addr) bool {
	if cfg.Peer4.IsValid() && gw == cfg.Peer4 {
		return true
	}
	for _, a := range cfg.Addresses {
		if a.Masked().Contains(gw) && a.Addr() != gw {
			return true
		}
	}
	return false
}

// tunOptions are the device's tundev options (d.mu held); link is the
// DCO device to configure instead of a TUN device (0: none).
func (d *device) tunOptions(link int) (tundev.Options, error) {
	j, err := d.svc.Journal("dev-" + strings.TrimPrefix(string(d.path), string(api.PathNetCfg)+"/"))
	if err != nil {
		return tundev.Options{}, err
	}
	return tundev.Options{
		NetNS:      d.svc.netNS(),
		TxQueueLen: int(d.txqueuelen),
		Logger:     d.log,
		Journal:    j,
		Shared:     d.svc.sharedRoutes(),
		Owner:      string(d.path),
		Link:       link,
	}, nil
}

// prepare creates the TUN device ahead of Establish, with IFF_VNET_HDR if
// the argument says so: down, without addresses or routes, so that nothing
// goes through it. The vnet_hdr property still decides at Establish (a
// device created otherwise is replaced then). Establish configures it; Disable, Destroy and the
// creator's leaving remove it like an established one.
func (d *device) prepare(c *busobj.Call) ([]any, error) {
	vnetHdr := c.Args[0].(bool)
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.gone:
		return nil, netcfgError("Virtual interface has been destroyed")
	case d.tun != nil:
		return nil, netcfgError("Virtual interface is already established")
	case d.dco != nil:
		return nil, netcfgError("Virtual interface is a DCO device")
	case d.early != nil && d.early.VnetHdr() == vnetHdr:
		return nil, nil
	case d.early != nil:
		d.dropEarlyLocked("prepared again with vnet_hdr " + strconv.FormatBool(vnetHdr))
	}
	// The resolver backend is chosen meanwhile, not on the Establish's way.
	d.svc.chooseResolver()
	opts, err := d.tunOptions(0)
	if err == nil {
		d.early, err = tundev.Create(c.Ctx, opts, vnetHdr)
	}
	if err != nil {
		d.log.Error("Prepare failed", "err", err)
		return nil, netcfgError("Failed to create the virtual interface: %v", err)
	}
	d.log.Info("device created ahead of its configuration", "name", d.early.Name(), "vnet_hdr", vnetHdr)
	return nil, nil
}

// dropEarlyLocked removes the device Prepare created (d.mu held).
func (d *device) dropEarlyLocked(why string) {
	early := d.early
	d.early = nil
	if early == nil {
		return
	}
	if err := early.Teardown(); err != nil {
		d.log.Error("teardown of the prepared device incomplete", "reason", why, "err", err)
		return
	}
	d.log.Info("prepared device removed", "name", early.Name(), "reason", why)
}

func (d *device) establish(c *busobj.Call) ([]any, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.gone {
		return nil, netcfgError("Virtual interface has been destroyed")
	}
	if d.tun != nil {
		return nil, netcfgError("Virtual interface is already established")
	}
	start := time.Now()
	cfg := d.config()
	d.svc.addBypassRoutes(&cfg, d.log)
	tun, dnsTook, err := d.setup(c.Ctx, cfg)
	if err != nil {
		d.log.Error("Establish failed", "err", err)
		return nil, netcfgError("Failed to establish the virtual interface: %v", err)
	}
	took := time.Since(start)
	if d.dco != nil {
		// DCO mode: the ovpn device is configured, and the kernel moves
		// the packets: no fd to hand over.
		d.tun = tun
		c.AfterReply(d.announceEstablished(tun, "DCO device configured", cfg.Addresses, took, dnsTook))
		return nil, nil
	}
	// The reply carries the fd; once it is on its way our copy goes, so
	// the device lives exactly as long as the backend holds it.
	f := tun.File()
	c.AfterReply(func() { _ = tun.CloseFile() })
	d.tun = tun
	c.AfterReply(d.announceEstablished(tun, "device established", cfg.Addresses, took, dnsTook))
	return []any{dbus.UnixFD(rawFD(f))}, nil
}

// beforeAnnounce runs as announceEstablished's work begins; a test holds
// it back.
var beforeAnnounce = func() {}

// announceEstablished returns what runs once the Establish's reply is on
// its way: the log line and the NetworkChange events of the new device.
// Both list its routes, which waits for the shared route table, busy
// re-checking its pinned routes after the tunnel's routes changed the
// table (a route dump): the backend, and the session's CONN_CONNECTED,
// need not wait for that. A device disabled meanwhile is not announced
// (its removal was).
func (d *device) announceEstablished(tun *tundev.Device, what string, addrs []netip.Prefix, took, dnsTook time.Duration) func() {
	return func() {
		beforeAnnounce()
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.tun != tun {
			return
		}
		d.log.Info(what, "name", tun.Name(), "addresses", addrs, "routes", len(tun.Routes()), "took", took, "dns_took", dnsTook)
		d.announce(tun, true)
	}
}

// setup configures the prepared device, or creates and configures one,
// and applies the DNS settings (d.mu held); it returns how long the DNS
// took. A prepared device of another kind than cfg asks for (a DCO device
// meanwhile, the other vnet_hdr) is replaced. The resolver gets the
// settings while the TUN device is configured: it needs only the device's
// name and index, and each takes milliseconds. On error neither the
// device nor the DNS settings are left.
func (d *device) setup(ctx context.Context, cfg netconf.Config) (*tundev.Device, time.Duration, error) {
	link := d.dcoLink()
	tun := d.early
	d.early = nil
	if tun == nil || link != 0 || tun.VnetHdr() != cfg.VnetHdr {
		if tun != nil {
			d.early = tun
			d.dropEarlyLocked("Establish wants another kind of device")
		}
		opts, err := d.tunOptions(link)
		if err != nil {
			return nil, 0, err
		}
		if link != 0 {
			// DCO: the kernel's device, configured in one go.
			if tun, err = tundev.Setup(ctx, cfg, opts); err != nil {
				return nil, 0, err
			}
			dnsStart := time.Now()
			if err := d.applyDNS(ctx, tun); err != nil {
				return nil, 0, d.undoSetup(tun, false, fmt.Errorf("DNS: %w", err))
			}
			return tun, time.Since(dnsStart), nil
		}
		if tun, err = tundev.Create(ctx, opts, cfg.VnetHdr); err != nil {
			return nil, 0, err
		}
	}
	type result struct {
		took time.Duration
		err  error
	}
	dns := make(chan result, 1)
	go func() {
		start := time.Now()
		err := d.applyDNS(ctx, tun)
		dns <- result{time.Since(start), err}
	}()
	err := tun.Configure(ctx, cfg, int(d.txqueuelen)) // the device is gone with an error
	r := <-dns
	switch {
	case r.err != nil:
		return nil, 0, d.undoSetup(tun, err != nil, errors.Join(err, fmt.Errorf("DNS: %w", r.err)))
	case err != nil:
		d.revertDNSLocked(tun)
		return nil, 0, err
	}
	return tun, r.took, nil
}

// undoSetup tears down a device whose setup failed with err (unless gone
// already) and returns err with what the teardown could not undo.
func (d *device) undoSetup(tun *tundev.Device, gone bool, err error) error {
	if gone {
		return err
	}
	if terr := tun.Teardown(); terr != nil {
		return fmt.Errorf("%w (undo: %v)", err, terr)
	}
	return err
}

// rawFD returns f's descriptor without switching it to blocking mode (as
// f.Fd() would, for everyone sharing the open file).
func rawFD(f *os.File) int {
	fd := -1
	if rc, err := f.SyscallConn(); err == nil {
		_ = rc.Control(func(s uintptr) { fd = int(s) })
	}
	return fd
}

// announce sends the NetworkChange events for an established (up) or
// removed device.
func (d *device) announce(tun *tundev.Device, up bool) {
	name := tun.Name()
	ver := func(a netip.Addr) string {
		if a.Is4() {
			return "4"
		}
		return "6"
	}
	if up {
		d.svc.notify(d.path, api.NetCfgDeviceAdded, name, nil)
	}
	for _, a := range tun.Addresses() {
		typ := api.NetCfgIPAddrRemoved
		if up {
			typ = api.NetCfgIPAddrAdded
		}
		bits := strconv.Itoa(a.Bits())
		d.svc.notify(d.path, typ, name, map[string]string{
			"ip_address": a.Addr().String(), "prefix": bits, "prefix_size": bits, "ip_version": ver(a.Addr())})
	}
	for _, r := range tun.Routes() {
		bits := strconv.Itoa(r.Prefix.Bits())
		details := map[string]string{"ip_version": ver(r.Prefix.Addr()), "subnet": r.Prefix.Addr().String(),
			"prefix": bits, "prefix_size": bits}
		switch {
		case up && r.ViaDevice:
			details["gateway"] = gwString(r.Gateway)
			d.svc.notify(d.path, api.NetCfgRouteAdded, name, details)
		case up:
			details["gateway"] = gwString(r.Gateway)
			d.svc.notify(d.path, api.NetCfgRouteExcluded, name, details)
		case r.ViaDevice:
			d.svc.notify(d.path, api.NetCfgRouteRemoved, name, details)
		}
	}
	if !up {
		d.svc.notify(d.path, api.NetCfgDeviceRemoved, name, nil)
	}
}

func gwString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// disable tears down the TUN device but keeps the object and its queued
// settings, so that a later Establish can bring it back.
func (d *device) disable(why string) {
	d.mu.Lock()
	d.dropEarlyLocked(why)
	tun := d.tun
	d.tun = nil
	d.mu.Unlock()
	if tun == nil {
		return
	}
	d.revertDNS(tun)
	d.announce(tun, false)
	if err := tun.Teardown(); err != nil {
		d.log.Error("teardown incomplete", "reason", why, "err", err)
		return
	}
	d.log.Info("device disabled", "name", tun.Name(), "reason", why)
}

// teardown is disable for good: nothing may establish the device again.
func (d *device) teardown() {
	d.mu.Lock()
	d.gone = true
	d.mu.Unlock()
	d.disable("device removed")
	d.teardownDCO()
}

func closeFD(fd int) { _ = unix.Close(fd) }
