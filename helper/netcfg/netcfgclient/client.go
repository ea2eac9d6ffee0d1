// Package netcfgclient is the client of the net.openvpn.v3.netcfg D-Bus
// service (package netcfg) that a backend process uses: it describes its
// tunnel on a device object and receives the TUN file, or drives the
// kernel's ovpn device in DCO mode. It is apart from the service so that
// the backend binary does not link the service's code.
package netcfgclient

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/netconf"
)

// Client is what a backend process uses to get its TUN device from the
// netcfg service. The connection must be a unix-socket bus connection (the
// system bus), where godbus negotiates fd passing.
type Client struct {
	conn *dbus.Conn
	dest string
}

// NewClient returns a client calling the service's well-known name on conn.
func NewClient(conn *dbus.Conn) *Client {
	return &Client{conn: conn, dest: api.ServiceNetCfg}
}

// destroyTimeout bounds the Destroy done to undo a failed Establish when the
// caller's context is already over.
const destroyTimeout = 5 * time.Second

// Establish creates a device object labelled label (a session token: letters,
// digits, '_'), describes cfg on it and establishes it. It returns the TUN
// file (packets without header; non-blocking, so reads honour deadlines and
// Close), the device object path and the kernel's device name. On error the
// device object is destroyed again.
//
// Routes that name their own gateway are queued with AddNetworksVia, an
// addition to the openvpn3 API (whose networks have no gateway).
func (c *Client) Establish(ctx context.Context, label string, cfg netconf.Config) (tun *os.File, devicePath dbus.ObjectPath, devName string, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, "", "", fmt.Errorf("netcfg establish: %w", err)
	}
	path, err := c.createObject(ctx, label)
	if err != nil {
		return nil, "", "", err
	}
	return c.EstablishOn(ctx, path, cfg)
}

// Prepare creates a device object labelled label and has the service
// create its TUN device now, ahead of the configuration (vnetHdr is the
// netconf.Config.VnetHdr the configuration will have): a backend does it
// while the tunnel is negotiated, so that EstablishOn or OpenOn only
// configure the device. Whoever gets the path must establish or Destroy
// it. On error nothing is left.
func (c *Client) Prepare(ctx context.Context, label string, vnetHdr bool) (dbus.ObjectPath, error) {
	// One round trip (PrepareVirtualInterface, ovpn3go's own): the service
	// removes the object again when its Prepare fails.
	var path dbus.ObjectPath
	if err := c.manager().CallWithContext(ctx, api.InterfaceNetCfg+".PrepareVirtualInterface", 0, label, vnetHdr).Store(&path); err != nil {
		return "", fmt.Errorf("netcfg: PrepareVirtualInterface(%q): %w", label, err)
	}
	return path, nil
}

// EstablishOn is Establish on the device object at path (from Prepare):
// it describes cfg on it and establishes it. On error the object is
// destroyed.
func (c *Client) EstablishOn(ctx context.Context, path dbus.ObjectPath, cfg netconf.Config) (tun *os.File, devicePath dbus.ObjectPath, devName string, err error) {
	defer func() {
		if err != nil {
			c.destroyAfterFailure(ctx, path, &err)
		}
	}()
	list, err := describeList(cfg)
	if err != nil {
		return nil, "", "", err
	}
	// The settings and the Establish in one round trip (EstablishWith,
	// ovpn3go's own).
	devicePath = path
	dev := c.conn.Object(c.dest, devicePath)
	var fd dbus.UnixFD
	if err := dev.CallWithContext(ctx, api.InterfaceNetCfg+".EstablishWith", 0, list).Store(&fd); err != nil {
		return nil, "", "", fmt.Errorf("netcfg: EstablishWith on %s: %w", devicePath, err)
	}
	// The device's name comes with its file (no round trip); the
	// property is the fallback.
	if devName = tunName(int(fd)); devName == "" {
		if devName, err = c.deviceName(ctx, devicePath); err != nil {
			_ = unix.Close(int(fd))
			return nil, "", "", err
		}
	}
	return os.NewFile(uintptr(fd), devName), devicePath, devName, nil
}

// tunName asks the kernel for the name of the TUN device whose file is fd
// (TUNGETIFF); "" if it will not say.
func tunName(fd int) string {
	ifr, err := unix.NewIfreq("")
	if err != nil {
		return ""
	}
	if err := unix.IoctlIfreq(fd, unix.TUNGETIFF, ifr); err != nil {
		return ""
	}
	return ifr.Name()
}

// deviceName reads an established device's kernel name.
func (c *Client) deviceName(ctx context.Context, path dbus.ObjectPath) (string, error) {
	var v dbus.Variant
	if err := c.conn.Object(c.dest, path).CallWithContext(ctx, api.InterfaceProperties+".Get", 0, api.InterfaceNetCfg, "device_name").Store(&v); err != nil {
		return "", fmt.Errorf("netcfg: device_name of %s: %w", path, err)
	}
	name, _ := v.Value().(string)
	if name == "" {
		return "", errors.New("netcfg: the service reported no device name")
	}
	return name, nil
}

// createDevice creates a device object labelled label and describes cfg
// on it, all but Establish. On error the object is destroyed again.
func (c *Client) createDevice(ctx context.Context, label string, cfg netconf.Config) (_ dbus.ObjectPath, err error) {
	if err := cfg.Validate(); err != nil {
		return "", fmt.Errorf("netcfg establish: %w", err)
	}
	path, err := c.createObject(ctx, label)
	if err != nil {
		return "", err
	}
	if err := c.describe(ctx, path, cfg); err != nil {
		c.destroyAfterFailure(ctx, path, &err)
		return "", err
	}
	return path, nil
}

// createObject creates a device object labelled label.
func (c *Client) createObject(ctx context.Context, label string) (dbus.ObjectPath, error) {
	var path dbus.ObjectPath
	if err := c.manager().CallWithContext(ctx, api.InterfaceNetCfg+".CreateVirtualInterface", 0, label).Store(&path); err != nil {
		return "", fmt.Errorf("netcfg: CreateVirtualInterface(%q): %w", label, err)
	}
	return path, nil
}

// describe describes cfg on the device object at path, all but Establish.
func (c *Client) describe(ctx context.Context, path dbus.ObjectPath, cfg netconf.Config) error {
	list, err := describeList(cfg)
	if err != nil {
		return err
	}
	if err := c.conn.Object(c.dest, path).CallWithContext(ctx, api.InterfaceNetCfg+".Describe", 0, list).Err; err != nil {
		return fmt.Errorf("netcfg: Describe on %s: %w", path, err)
	}
	return nil
}

// describeList is cfg as Describe's (and EstablishWith's) settings.
func describeList(cfg netconf.Config) ([]api.NetCfgSetting, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("netcfg establish: %w", err)
	}
	// The settings go out in one Describe call (one round trip, not one
	// each), in order. What a new device object has already (layer TUN,
	// no reroute, no vnet_hdr) is not sent.
	var list []setting
	one := func(s setting) { list = append(list, s) }
	if cfg.MTU != 0 {
		one(setting{prop: "mtu", args: []any{uint16(cfg.MTU)}})
	}
	if cfg.Remote.IsValid() {
		r := cfg.Remote.Unmap()
		one(setting{method: "SetRemoteAddress", args: []any{r.String(), r.Is6()}})
	}
	for _, a := range cfg.Addresses {
		ip := a.Addr().Unmap()
		gw := cfg.Gateway6
		if ip.Is4() {
			gw = cfg.Gateway4
			if cfg.Peer4.IsValid() {
				gw = cfg.Peer4
			}
		}
		gwText := ""
		if gw.IsValid() {
			gwText = gw.Unmap().String()
		}
		one(setting{method: "AddIPAddress", args: []any{ip.String(), uint32(a.Bits()), gwText, ip.Is6()}})
	}
	if cfg.VnetHdr {
		one(setting{prop: "vnet_hdr", args: []any{true}})
	}
	if cfg.RedirectIPv4 {
		one(setting{prop: "reroute_ipv4", args: []any{true}})
	}
	if cfg.RedirectIPv6 {
		one(setting{prop: "reroute_ipv6", args: []any{true}})
	}
	var flags []string
	for _, f := range []struct {
		on   bool
		name string
	}{{cfg.RedirectLocal, "local"}, {cfg.BlockLocal, "block-local"}, {cfg.BypassDHCP, "bypass-dhcp"},
		{cfg.BypassDNS, "bypass-dns"}, {cfg.BlockIPv6, "block-ipv6"}} {
		if f.on {
			flags = append(flags, f.name)
		}
	}
	if len(flags) > 0 {
		one(setting{prop: "route_flags", args: []any{flags}})
	}
	// Routes naming a gateway go through AddNetworksVia (ours; openvpn3's
	// AddNetworks has no gateway), the rest through AddNetworks.
	var nets []api.NetCfgNetwork
	var via []api.NetCfgNetworkVia
	for _, r := range cfg.Routes {
		ip := r.Prefix.Addr().Unmap()
		metric := int32(-1)
		if r.Metric > 0 {
			metric = int32(min(r.Metric, 1<<31-1))
		}
		if r.Gateway.IsValid() {
			via = append(via, api.NetCfgNetworkVia{Address: ip.String(), Prefix: uint32(r.Prefix.Bits()),
				Metric: metric, IPv6: ip.Is6(), Exclude: r.Exclude, Gateway: r.Gateway.Unmap().String()})
			continue
		}
		nets = append(nets, api.NetCfgNetwork{Address: ip.String(), Prefix: uint32(r.Prefix.Bits()),
			Metric: metric, IPv6: ip.Is6(), Exclude: r.Exclude})
	}
	if len(nets) > 0 {
		one(setting{method: "AddNetworks", args: []any{nets}})
	}
	if len(via) > 0 {
		one(setting{method: "AddNetworksVia", args: []any{via}})
	}
	if cfg.DNSScope != "" {
		one(setting{prop: "dns_scope", args: []any{cfg.DNSScope}})
	}
	for _, s := range dnsSettings(cfg.DNS) {
		one(s)
	}
	return wireSettings(list), nil
}

// destroyAfterFailure undoes a device whose setup failed with *err, also
// when ctx is already over, and adds what went wrong doing so to *err.
func (c *Client) destroyAfterFailure(ctx context.Context, path dbus.ObjectPath, err *error) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), destroyTimeout)
	defer cancel()
	if derr := c.Destroy(dctx, path); derr != nil {
		*err = fmt.Errorf("%w (and destroying %s: %v)", *err, path, derr)
	}
}

// DcoAvailable asks the service whether the kernel offers data channel
// offload (the ovpn module).
func (c *Client) DcoAvailable(ctx context.Context) (bool, error) {
	var ok bool
	if err := c.manager().CallWithContext(ctx, api.InterfaceNetCfg+".DcoAvailable", 0).Store(&ok); err != nil {
		return false, fmt.Errorf("netcfg: DcoAvailable: %w", err)
	}
	return ok, nil
}

// Destroy tears the device down and removes its object.
func (c *Client) Destroy(ctx context.Context, devicePath dbus.ObjectPath) error {
	if err := c.conn.Object(c.dest, devicePath).CallWithContext(ctx, api.InterfaceNetCfg+".Destroy", 0).Err; err != nil {
		return fmt.Errorf("netcfg: Destroy %s: %w", devicePath, err)
	}
	return nil
}

// Cleanup removes every device this process created.
func (c *Client) Cleanup(ctx context.Context) error {
	if err := c.manager().CallWithContext(ctx, api.InterfaceNetCfg+".Cleanup", 0).Err; err != nil {
		return fmt.Errorf("netcfg: Cleanup: %w", err)
	}
	return nil
}

func (c *Client) manager() dbus.BusObject { return c.conn.Object(c.dest, api.PathNetCfg) }

// Tun is an established device as the engine uses it: packets in and out
// of the file, and Close that also destroys the device object.
type Tun struct {
	client *Client
	file   *os.File
	path   dbus.ObjectPath
	name   string
	once   sync.Once
	err    error
}

// Open is Establish returning a Tun.
func (c *Client) Open(ctx context.Context, label string, cfg netconf.Config) (*Tun, error) {
	return c.tun(c.Establish(ctx, label, cfg))
}

// OpenOn is EstablishOn returning a Tun.
func (c *Client) OpenOn(ctx context.Context, path dbus.ObjectPath, cfg netconf.Config) (*Tun, error) {
	return c.tun(c.EstablishOn(ctx, path, cfg))
}

func (c *Client) tun(f *os.File, path dbus.ObjectPath, name string, err error) (*Tun, error) {
	if err != nil {
		return nil, err
	}
	return &Tun{client: c, file: f, path: path, name: name}, nil
}

// Read reads one packet.
func (t *Tun) Read(b []byte) (int, error) { return t.file.Read(b) }

// Write writes one packet.
func (t *Tun) Write(b []byte) (int, error) { return t.file.Write(b) }

// Name is the kernel device name.
func (t *Tun) Name() string { return t.name }

// Path is the device object path.
func (t *Tun) Path() dbus.ObjectPath { return t.path }

// File is the TUN file.
func (t *Tun) File() *os.File { return t.file }

// Close closes the file (which removes the device) and destroys the device
// object, which also removes the routes outside the device.
func (t *Tun) Close() error {
	t.once.Do(func() {
		ferr := t.file.Close()
		ctx, cancel := context.WithTimeout(context.Background(), destroyTimeout)
		defer cancel()
		t.err = errors.Join(ferr, t.client.Destroy(ctx, t.path))
	})
	return t.err
}

// dnsSettings describe the tunnel's DNS on the device: servers as
// "addr[:port][#tls-name]", search domains, and routing-only domains as
// "~domain".
func dnsSettings(d netconf.DNS) []setting {
	var out []setting
	domains := slices.Clone(d.Search)
	for _, r := range d.Routing {
		domains = append(domains, "~"+r)
	}
	if len(domains) > 0 {
		out = append(out, setting{method: "AddDNSSearch", args: []any{domains}})
	}
	if len(d.Servers) > 0 {
		servers := make([]string, 0, len(d.Servers))
		for _, s := range d.Servers {
			t := s.Addr().Unmap().String()
			if s.Port() != 0 {
				t = netip.AddrPortFrom(s.Addr().Unmap(), s.Port()).String()
			}
			if d.SNI != "" && d.Transport == "dot" {
				t += "#" + d.SNI
			}
			servers = append(servers, t)
		}
		out = append(out, setting{method: "AddDNS", args: []any{servers}})
	}
	if d.DNSSEC != "" {
		out = append(out, setting{method: "SetDNSSEC", args: []any{d.DNSSEC}})
	}
	if d.Transport != "" {
		out = append(out, setting{method: "SetDNSTransport", args: []any{d.Transport}})
	}
	return out
}

// setting is one call describing a device: a method, or a property Set.
type setting struct {
	method string // device method, or "" for a property
	prop   string
	args   []any
}

// wireSettings are the settings (in order) as Describe's list.
func wireSettings(settings []setting) []api.NetCfgSetting {
	list := make([]api.NetCfgSetting, 0, len(settings))
	for _, s := range settings {
		name := s.method
		if name == "" {
			name = s.prop
		}
		args := make([]dbus.Variant, len(s.args))
		for i, a := range s.args {
			args[i] = dbus.MakeVariant(a)
		}
		list = append(list, api.NetCfgSetting{Name: name, Args: args})
	}
	return list
}
