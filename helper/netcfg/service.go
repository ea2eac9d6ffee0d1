// Package netcfg is the net.openvpn.v3.netcfg D-Bus service (spec
// dbus-api.md §2.7–2.8; its client is package netcfgclient). The service
// runs in the root helper daemon: a backend process describes its tunnel on
// a device object (addresses, networks, MTU, DNS), calls Establish, and
// receives the TUN file descriptor; the device layer itself is package
// tundev.
//
// Devices belong to the process that created them. They are torn down by
// Destroy, by the creator's Cleanup, when the creator's bus connection goes
// away, and when the daemon calls CleanupPID after a backend exited.
package netcfg

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/godbus/dbus/v5"
	"github.com/vishvananda/netns"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/busobj"
	"github.com/ovpn3go/ovpn3go/helper/netcfg/dns"
	"github.com/ovpn3go/ovpn3go/helper/netcfg/journal"
	"github.com/ovpn3go/ovpn3go/helper/netcfg/sharedroute"
	"github.com/ovpn3go/ovpn3go/internal/version"
)

// Limits on what one caller may queue, so a misbehaving client cannot make
// the root daemon grow without bound.
const (
	maxDevicesPerPID = 16
	maxLabelLen      = 128
	maxAddresses     = 64
	maxNetworks      = 4096
	maxDNSEntries    = 64
)

// Service is the netcfg service: one manager object and the device objects.
type Service struct {
	// openDCO reaches the kernel's ovpn module for EnableDCO; tests
	// replace it (the module is missing on most test kernels).
	openDCO func(netns.NsHandle) (DCOKernel, error)
	log     *slog.Logger

	mu          sync.Mutex
	srv         *busobj.Server
	ns          netns.NsHandle
	devices     map[dbus.ObjectPath]*device
	subscribers map[string]api.NetCfgChangeType // unique bus name -> filter
	subOwner    map[string]uint32               // unique bus name -> UID
	logLevel    uint32
	stopWatch   func()
	closed      bool
	journal     *journal.Store     // nil: no journal (SetStateDir not called)
	undoers     journal.Undoers    // undo functions by journal entry kind
	shared      *sharedroute.Table // routes outside the tunnels, shared by devices
	dns         *dns.Manager       // nil: no resolver backend (dnshook.go)
	backends    func(*busobj.Call) bool
	wg          sync.WaitGroup // cleanups started from the name watch
	choosing    sync.WaitGroup // resolver choices (chooseResolver), apart from wg so a test can wait for them alone
}

// NewService returns a service that is not exported yet.
func NewService(logger *slog.Logger) *Service {
	if logger == nil {
		logger = slog.Default()
	}
	return &Service{
		log:         logger.With("service", api.ServiceNetCfg),
		ns:          netns.None(),
		devices:     map[dbus.ObjectPath]*device{},
		openDCO:     openKernelDCO,
		subscribers: map[string]api.NetCfgChangeType{},
		subOwner:    map[string]uint32{},
		logLevel:    4,
	}
}

// SetBackends tells the service who the backends are (the session
// manager's BackendCaller). Only root and those may create, change or
// destroy devices, protect sockets or subscribe; without SetBackends only
// root may.
func (s *Service) SetBackends(isBackend func(*busobj.Call) bool) {
	s.mu.Lock()
	s.backends = isBackend
	s.mu.Unlock()
}

// mayConfigure: root or a backend.
func (s *Service) mayConfigure(c *busobj.Call) bool {
	if c.UID == 0 {
		return true
	}
	s.mu.Lock()
	f := s.backends
	s.mu.Unlock()
	return f != nil && f(c)
}

// SetNetNS makes the service create its devices in the network namespace
// ns instead of the daemon's own (tests run the service in-process in a
// namespace of their own). Call it before Export; the handle must stay open
// while the service lives.
func (s *Service) SetNetNS(ns netns.NsHandle) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ns = ns
}

// Export publishes the manager object on srv and starts watching for
// device creators that leave the bus. The caller owns the bus name.
func (s *Service) Export(srv *busobj.Server) error {
	s.mu.Lock()
	if s.srv != nil {
		s.mu.Unlock()
		return fmt.Errorf("netcfg: already exported")
	}
	s.srv = srv
	s.mu.Unlock()
	if err := s.startRouting(context.Background()); err != nil {
		return err
	}
	if err := srv.Export(api.PathNetCfg, s.managerInterface()); err != nil {
		return fmt.Errorf("netcfg: %w", err)
	}
	stop := srv.WatchNames(func(name, _, newOwner string) {
		if newOwner != "" || !strings.HasPrefix(name, ":") {
			return
		}
		// Runs on the server's signal goroutine, which must not block.
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.closed {
			return
		}
		delete(s.subscribers, name)
		delete(s.subOwner, name)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.cleanup(func(d *device) bool { return d.creatorName == name }, "creator "+name+" left the bus")
		}()
	})
	s.mu.Lock()
	s.stopWatch = stop
	s.mu.Unlock()
	return nil
}

// Close tears down every device and unexports the objects.
func (s *Service) Close() error {
	s.mu.Lock()
	s.closed = true
	stop := s.stopWatch
	s.stopWatch = nil
	srv := s.srv
	s.mu.Unlock()
	if stop != nil {
		stop()
	}
	s.wg.Wait()
	s.choosing.Wait()
	s.cleanup(func(*device) bool { return true }, "service shutting down")
	s.mu.Lock()
	shared := s.shared
	s.mu.Unlock()
	if shared != nil {
		if err := shared.Close(); err != nil {
			s.log.Error("shared routes not fully removed", "err", err)
		}
	}
	if srv != nil {
		srv.Unexport(api.PathNetCfg)
	}
	return nil
}

// CleanupPID tears down and removes every device the process pid created.
// The daemon calls it when a backend process exits, however it died.
func (s *Service) CleanupPID(pid uint32) {
	s.cleanup(func(d *device) bool { return d.creatorPID == pid }, "process "+strconv.FormatUint(uint64(pid), 10)+" exited")
}

// cleanup destroys the devices match selects.
func (s *Service) cleanup(match func(*device) bool, why string) {
	s.mu.Lock()
	var victims []*device
	for _, d := range s.devices {
		if match(d) {
			victims = append(victims, d)
		}
	}
	s.mu.Unlock()
	for _, d := range victims {
		s.destroy(d, why)
	}
}

// destroy tears a device down and removes its object.
func (s *Service) destroy(d *device, why string) {
	s.mu.Lock()
	if s.devices[d.path] != d {
		s.mu.Unlock()
		return // someone else got there first
	}
	delete(s.devices, d.path)
	srv := s.srv
	s.mu.Unlock()
	if srv != nil {
		srv.Unexport(d.path)
	}
	d.teardown()
	s.log.Info("device removed", "path", d.path, "reason", why)
}

func (s *Service) server() *busobj.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.srv
}

func (s *Service) netNS() netns.NsHandle {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ns
}

// notify sends NetworkChange from a device path to every subscriber whose
// filter matches (unicast, as upstream does).
func (s *Service) notify(path dbus.ObjectPath, typ api.NetCfgChangeType, dev string, details map[string]string) {
	s.mu.Lock()
	srv := s.srv
	var to []string
	for name, filter := range s.subscribers {
		if filter&typ != 0 {
			to = append(to, name)
		}
	}
	s.mu.Unlock()
	if srv == nil {
		return
	}
	if details == nil {
		details = map[string]string{}
	}
	for _, name := range to {
		if err := srv.EmitTo(name, path, api.InterfaceNetCfg, "NetworkChange", uint32(typ), dev, details); err != nil {
			s.log.Debug("NetworkChange not delivered", "to", name, "err", err)
		}
	}
}

func netcfgError(format string, args ...any) error {
	return api.Errorf(api.DomainNetCfg, format, args...)
}

func (s *Service) managerInterface() *busobj.Interface {
	return &busobj.Interface{
		Name: api.InterfaceNetCfg,
		Methods: []busobj.Method{
			{Name: "CreateVirtualInterface", In: []busobj.Arg{{Name: "device_name", Type: "s"}},
				Out: []busobj.Arg{{Name: "device_path", Type: "o"}}, Handler: s.createVirtualInterface},
			// ovpn3go's own: CreateVirtualInterface and the device's
			// Prepare in one call (prepare.go of the client's side).
			{Name: "PrepareVirtualInterface", In: []busobj.Arg{{Name: "device_name", Type: "s"}, {Name: "vnet_hdr", Type: "b"}},
				Out: []busobj.Arg{{Name: "device_path", Type: "o"}}, Handler: s.prepareVirtualInterface},
			{Name: "FetchInterfaceList", Out: []busobj.Arg{{Name: "device_paths", Type: "ao"}},
				Handler: s.fetchInterfaceList},
			{Name: "ProtectSocket",
				In: []busobj.Arg{{Name: "remote", Type: "s"}, {Name: "ipv6", Type: "b"},
					{Name: "device_path", Type: "o"}},
				Out:     []busobj.Arg{{Name: "succeeded", Type: "b"}},
				Handler: s.protectSocket},
			{Name: "DcoAvailable", Out: []busobj.Arg{{Name: "available", Type: "b"}},
				Handler: func(*busobj.Call) ([]any, error) {
					ok, why := s.dcoAvailable()
					if !ok {
						s.log.Debug("DCO not available", "reason", why)
					}
					return []any{ok}, nil
				}},
			{Name: "Cleanup", Handler: func(c *busobj.Call) ([]any, error) {
				s.cleanup(func(d *device) bool { return d.creatorPID == c.PID },
					"Cleanup by "+c.Sender)
				return nil, nil
			}},
			{Name: "NotificationSubscribe", In: []busobj.Arg{{Name: "filter", Type: "u"}},
				Handler: s.notificationSubscribe},
			{Name: "NotificationUnsubscribe", In: []busobj.Arg{{Name: "subscriber", Type: "s"}},
				Handler: s.notificationUnsubscribe},
			{Name: "NotificationSubscriberList", Out: []busobj.Arg{{Name: "subscriptions", Type: "a(su)"}},
				Handler: s.notificationSubscriberList},
		},
		Signals: []busobj.Signal{
			{Name: "Log", Args: []busobj.Arg{{Name: "group", Type: "u"}, {Name: "level", Type: "u"}, {Name: "message", Type: "s"}}},
			{Name: "NetworkChange", Args: []busobj.Arg{{Name: "type", Type: "u"}, {Name: "device", Type: "s"}, {Name: "details", Type: "a{ss}"}}},
		},
		Properties: []busobj.Property{
			// What the resolver backend applied for all devices.
			{Name: "global_dns_servers", Type: "as", Get: func(*busobj.Call) (any, error) {
				servers, _ := s.globalDNS()
				return servers, nil
			}},
			{Name: "global_dns_search", Type: "as", Get: func(*busobj.Call) (any, error) {
				_, search := s.globalDNS()
				return search, nil
			}},
			{Name: "log_level", Type: "u",
				Get: func(*busobj.Call) (any, error) {
					s.mu.Lock()
					defer s.mu.Unlock()
					return s.logLevel, nil
				},
				Set: func(_ *busobj.Call, v any) error {
					lvl := v.(uint32)
					if lvl > 6 {
						return fmt.Errorf("Invalid log level")
					}
					s.mu.Lock()
					s.logLevel = lvl
					s.mu.Unlock()
					return nil
				}},
			{Name: "config_file", Type: "s", Get: func(*busobj.Call) (any, error) { return "", nil }},
			{Name: "version", Type: "s", Get: func(*busobj.Call) (any, error) { return version.Service(), nil }},
		},
		// Reading is everyone's (the bus policy lets only root and the
		// backends call methods; this holds without it too).
		Authorize: func(c *busobj.Call) error {
			switch {
			case c.Op == busobj.OpGet:
				return nil
			case c.Op == busobj.OpMethod && (c.Member == "NotificationSubscriberList" || c.Member == "FetchInterfaceList"):
				if c.UID == 0 {
					return nil
				}
			case s.mayConfigure(c):
				return nil
			}
			s.log.Warn("unauthorized access to netcfg", "sender", c.Sender, "uid", c.UID, "pid", c.PID, "op", c.Op, "member", c.Member)
			if c.Op == busobj.OpSet {
				return busobj.Deny("Access denied")
			}
			return busobj.Deny("")
		},
	}
}

// validLabel accepts what can be part of an object path element.
func validLabel(l string) bool {
	if l == "" || len(l) > maxLabelLen {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func (s *Service) createVirtualInterface(c *busobj.Call) ([]any, error) {
	label := c.Args[0].(string)
	if !validLabel(label) {
		s.log.Warn("CreateVirtualInterface: bad device name", "sender", c.Sender, "name", strconv.Quote(label))
		return nil, netcfgError("Error creating virtual interface '%s'", sanitize(label))
	}
	path := api.PathNetCfg + dbus.ObjectPath("/"+strconv.FormatUint(uint64(c.PID), 10)+"_"+label)
	d := newDevice(s, path, label, c.UID, c.PID, c.Sender)

	s.mu.Lock()
	srv := s.srv
	old := s.devices[path]
	n := 0
	for _, x := range s.devices {
		if x.creatorPID == c.PID && x != old {
			n++
		}
	}
	s.mu.Unlock()
	if n >= maxDevicesPerPID {
		s.log.Warn("CreateVirtualInterface: too many devices", "pid", c.PID)
		return nil, netcfgError("Error creating virtual interface '%s'", label)
	}
	if old != nil {
		// The same process asks again for the same label (a reconnect
		// that skipped Destroy): the old device is of no use to it.
		s.destroy(old, "replaced by a new CreateVirtualInterface")
	}
	s.mu.Lock()
	if _, taken := s.devices[path]; taken || s.closed {
		s.mu.Unlock()
		return nil, netcfgError("Error creating virtual interface '%s'", label)
	}
	s.devices[path] = d
	s.mu.Unlock()
	if err := srv.Export(path, d.iface()); err != nil {
		s.mu.Lock()
		delete(s.devices, path)
		s.mu.Unlock()
		s.log.Error("CreateVirtualInterface: export", "path", path, "err", err)
		return nil, netcfgError("Error creating virtual interface '%s'", label)
	}
	// The creator may have left before our name watch could see a device
	// of its: check once now that the device is registered. Its leaving
	// cancels c.Ctx (busobj) before the name watch hears of it, so no
	// question to the bus is needed.
	if c.Ctx.Err() != nil {
		s.destroy(d, "creator "+c.Sender+" already left the bus")
		return nil, netcfgError("Error creating virtual interface '%s'", label)
	}
	s.log.Info("device created", "path", path, "uid", c.UID, "pid", c.PID)
	return []any{path}, nil
}

// prepareVirtualInterface is ovpn3go's own PrepareVirtualInterface: the
// device object (CreateVirtualInterface) and its TUN device made ahead of
// the configuration (the device's Prepare) in one round trip. When the
// Prepare fails the object goes again: nothing is left.
func (s *Service) prepareVirtualInterface(c *busobj.Call) ([]any, error) {
	out, err := s.createVirtualInterface(c)
	if err != nil {
		return nil, err
	}
	path := out[0].(dbus.ObjectPath)
	s.mu.Lock()
	d := s.devices[path]
	s.mu.Unlock()
	if d == nil {
		return nil, netcfgError("Virtual interface has been destroyed")
	}
	sub := &busobj.Call{Ctx: c.Ctx, Server: c.Server, Path: path, Interface: c.Interface, Member: "Prepare",
		Sender: c.Sender, UID: c.UID, PID: c.PID, Message: c.Message, Op: busobj.OpMethod, Args: []any{c.Args[1]}}
	if _, err := d.prepare(sub); err != nil {
		s.destroy(d, "its Prepare failed")
		return nil, err
	}
	return out, nil
}

func (s *Service) fetchInterfaceList(*busobj.Call) ([]any, error) {
	s.mu.Lock()
	paths := slices.Sorted(maps.Keys(s.devices))
	s.mu.Unlock()
	if paths == nil {
		paths = []dbus.ObjectPath{}
	}
	return []any{paths}, nil
}

// protectSocket: with the default host-route method the host route to the
// server is added at Establish (reroute), so the socket itself needs
// nothing; its fd is only closed.
func (s *Service) protectSocket(c *busobj.Call) ([]any, error) {
	for _, fd := range unixFDs(c.Message.Body) {
		closeFD(fd)
	}
	return []any{true}, nil
}

func unixFDs(body []any) []int {
	var out []int
	for _, v := range body {
		switch fd := v.(type) {
		case dbus.UnixFD:
			out = append(out, int(fd))
		case []dbus.UnixFD:
			for _, f := range fd {
				out = append(out, int(f))
			}
		}
	}
	return out
}

func (s *Service) notificationSubscribe(c *busobj.Call) ([]any, error) {
	filter := c.Args[0].(uint32)
	if filter == 0 {
		return nil, netcfgError("Subscription filter flag must be > 0")
	}
	if filter > 65535 {
		return nil, netcfgError("Invalid subscription flag, must be < 65535")
	}
	s.mu.Lock()
	s.subscribers[c.Sender] = api.NetCfgChangeType(filter)
	s.subOwner[c.Sender] = c.UID
	s.mu.Unlock()
	return nil, nil
}

func (s *Service) notificationUnsubscribe(c *busobj.Call) ([]any, error) {
	who := c.Sender
	if c.UID == 0 {
		who = c.Args[0].(string)
		if who == "" {
			return nil, netcfgError("Failed to retrieve subscriber")
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	owner, ok := s.subOwner[who]
	if !ok {
		return nil, netcfgError("Subscription not found for '%s'", sanitize(who))
	}
	if c.UID != 0 && owner != c.UID {
		return nil, api.Error(api.DomainGDBusPP, fmt.Sprintf(
			"Authorization failed for %s performing method call %s.NotificationUnsubscribe in object %s",
			c.Sender, api.InterfaceNetCfg, c.Path))
	}
	delete(s.subscribers, who)
	delete(s.subOwner, who)
	return nil, nil
}

func (s *Service) notificationSubscriberList(*busobj.Call) ([]any, error) {
	type sub struct {
		Name   string
		Filter uint32
	}
	s.mu.Lock()
	out := make([]sub, 0, len(s.subscribers))
	for _, name := range slices.Sorted(maps.Keys(s.subscribers)) {
		out = append(out, sub{name, uint32(s.subscribers[name])})
	}
	s.mu.Unlock()
	return []any{out}, nil
}

// sanitize keeps caller-supplied text printable and short in replies and
// logs.
func sanitize(s string) string {
	if len(s) > 256 {
		s = s[:256]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
}
