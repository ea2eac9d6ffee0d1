package netcfg

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
	path, err := c.createDevice(ctx, label, cfg)
	if err != nil {
		return nil, "", "", err
	}
	defer func() {
		if err != nil {
			c.destroyAfterFailure(ctx, path, &err)
		}
	}()
	devicePath = path
	dev := c.conn.Object(c.dest, devicePath)
	var fd dbus.UnixFD
	if err := dev.CallWithContext(ctx, api.InterfaceNetCfg+".Establish", 0).Store(&fd); err != nil {
		return nil, "", "", fmt.Errorf("netcfg: Establish on %s: %w", devicePath, err)
	}
	if devName, err = c.deviceName(ctx, devicePath); err != nil {
		closeFD(int(fd))
		return nil, "", "", err
	}
	return os.NewFile(uintptr(fd), devName), devicePath, devName, nil
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
	var path dbus.ObjectPath
	if err := c.manager().CallWithContext(ctx, api.InterfaceNetCfg+".CreateVirtualInterface", 0, label).Store(&path); err != nil {
		return "", fmt.Errorf("netcfg: CreateVirtualInterface(%q): %w", label, err)
	}
	defer func() {
		if err != nil {
			c.destroyAfterFailure(ctx, path, &err)
		}
	}()
	devicePath := path
	dev := c.conn.Object(c.dest, devicePath)
	call := func(method string, args ...any) error {
		if err := dev.CallWithContext(ctx, api.InterfaceNetCfg+"."+method, 0, args...).Err; err != nil {
			return fmt.Errorf("netcfg: %s on %s: %w", method, devicePath, err)
		}
		return nil
	}
	set := func(prop string, v any) error {
		err := dev.CallWithContext(ctx, api.InterfaceProperties+".Set", 0, api.InterfaceNetCfg, prop, dbus.MakeVariant(v)).Err
		if err != nil {
			return fmt.Errorf("netcfg: set %s on %s: %w", prop, devicePath, err)
		}
		return nil
	}

	if err := set("layer", uint32(layerTUN)); err != nil {
		return "", err
	}
	if cfg.MTU != 0 {
		if err := set("mtu", uint16(cfg.MTU)); err != nil {
			return "", err
		}
	}
	if cfg.Remote.IsValid() {
		r := cfg.Remote.Unmap()
		if err := call("SetRemoteAddress", r.String(), r.Is6()); err != nil {
			return "", err
		}
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
		if err := call("AddIPAddress", ip.String(), uint32(a.Bits()), gwText, ip.Is6()); err != nil {
			return "", err
		}
	}
	if cfg.VnetHdr {
		if err := set("vnet_hdr", true); err != nil {
			return "", err
		}
	}
	if err := set("reroute_ipv4", cfg.RedirectIPv4); err != nil {
		return "", err
	}
	if err := set("reroute_ipv6", cfg.RedirectIPv6); err != nil {
		return "", err
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
		if err := set("route_flags", flags); err != nil {
			return "", err
		}
	}
	// Routes naming a gateway go through AddNetworksVia (ours; openvpn3's
	// AddNetworks has no gateway), the rest through AddNetworks.
	var nets []network
	var via []networkVia
	for _, r := range cfg.Routes {
		ip := r.Prefix.Addr().Unmap()
		metric := int32(-1)
		if r.Metric > 0 {
			metric = int32(min(r.Metric, 1<<31-1))
		}
		if r.Gateway.IsValid() {
			via = append(via, networkVia{Address: ip.String(), Prefix: uint32(r.Prefix.Bits()),
				Metric: metric, IPv6: ip.Is6(), Exclude: r.Exclude, Gateway: r.Gateway.Unmap().String()})
			continue
		}
		nets = append(nets, network{Address: ip.String(), Prefix: uint32(r.Prefix.Bits()),
			Metric: metric, IPv6: ip.Is6(), Exclude: r.Exclude})
	}
	if len(nets) > 0 {
		if err := call("AddNetworks", nets); err != nil {
			return "", err
		}
	}
	if len(via) > 0 {
		if err := call("AddNetworksVia", via); err != nil {
			return "", err
		}
	}
	if cfg.DNSScope != "" {
		if err := set("dns_scope", cfg.DNSScope); err != nil {
			return "", err
		}
	}
	if err := setDNS(cfg.DNS, call); err != nil {
		return "", err
	}

	return path, nil
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
	f, path, name, err := c.Establish(ctx, label, cfg)
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

// setDNS describes the tunnel's DNS on the device: servers as
// "addr[:port][#tls-name]", search domains, and routing-only domains as
// "~domain".
func setDNS(d netconf.DNS, call func(method string, args ...any) error) error {
	domains := slices.Clone(d.Search)
	for _, r := range d.Routing {
		domains = append(domains, "~"+r)
	}
	if len(domains) > 0 {
		if err := call("AddDNSSearch", domains); err != nil {
			return err
		}
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
		if err := call("AddDNS", servers); err != nil {
			return err
		}
	}
	if d.DNSSEC != "" {
		if err := call("SetDNSSEC", d.DNSSEC); err != nil {
			return err
		}
	}
	if d.Transport != "" {
		if err := call("SetDNSTransport", d.Transport); err != nil {
			return err
		}
	}
	return nil
}
