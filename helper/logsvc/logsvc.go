// Package logsvc implements net.openvpn.v3.log: the manager object
// /net/openvpn/v3/log with its properties, Attach/Detach and AssignSession
// bookkeeping, and the log-proxy objects created by ProxyLogEvents (the
// session manager asks for one per LogForward caller). The Log and
// StatusChange signals an attached backend sends to the log service's
// connection are forwarded to every proxy of its assigned session, unicast
// to the proxy's target, from the session path with the
// net.openvpn.v3.backends interface (spec §2.10–2.11).
package logsvc

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"sync"

	"github.com/godbus/dbus/v5"
	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/busobj"
	"github.com/ovpn3go/ovpn3go/internal/version"
)

// DefaultLogLevel is the services' default log level (spec §3.6).
const DefaultLogLevel = 3

type attachKey struct{ sender, iface string }

type attachment struct {
	session dbus.ObjectPath // set by AssignSession
}

type proxy struct {
	path     dbus.ObjectPath
	session  dbus.ObjectPath
	target   string // receiver's unique bus name
	uid      uint32 // receiver's UID
	logLevel uint32
}

// MaxAttachPerSender bounds the interfaces one connection may Attach (the
// session manager and each backend use one or two); the entries go when
// the connection leaves the bus.
const MaxAttachPerSender = 16

// Service is the log service.
type Service struct {
	logger *slog.Logger
	srv    *busobj.Server
	stop   func()

	mu          sync.Mutex
	backends    func(*busobj.Call) bool // nil: owners of be<their PID>
	attached    map[attachKey]*attachment
	proxies     map[dbus.ObjectPath]*proxy
	logLevel    uint32
	dbusDetails bool
	logtag      bool
	timestamp   bool
}

// New returns the log service.
func New(logger *slog.Logger) *Service {
	if logger == nil {
		logger = slog.Default()
	}
	return &Service{
		logger:   logger,
		attached: map[attachKey]*attachment{},
		proxies:  map[dbus.ObjectPath]*proxy{},
		logLevel: DefaultLogLevel,
		logtag:   true,
	}
}

// SetBackends tells the service who the backends are (the session
// manager's BackendCaller); without it, a backend is the owner of
// net.openvpn.v3.backends.be<its PID> (the bus policy lets only the
// backend user own those).
func (s *Service) SetBackends(isBackend func(*busobj.Call) bool) {
	s.mu.Lock()
	s.backends = isBackend
	s.mu.Unlock()
}

func (s *Service) isBackend(c *busobj.Call) bool {
	s.mu.Lock()
	f := s.backends
	s.mu.Unlock()
	if f != nil {
		return f(c)
	}
	return c.OwnsName(api.BackendBusName(c.PID))
}

// Export exports /net/openvpn/v3/log on srv and starts dropping the
// attachments and proxies of connections that leave the bus. It does not
// request the bus name.
func (s *Service) Export(srv *busobj.Server) error {
	s.srv = srv
	if err := srv.Export(api.PathLog, s.managerInterface()); err != nil {
		return fmt.Errorf("logsvc: %w", err)
	}
	// Backends send their signals unicast to this connection: no match
	// rule is needed to receive them. NameOwnerChanged (subscribed to by
	// busobj) arrives on the same channel, in order with them.
	ch := make(chan *dbus.Signal, 1024)
	ctx, cancel := context.WithCancel(srv.Context())
	done := make(chan struct{})
	srv.Conn().Signal(ch)
	go func() {
		defer close(done)
		s.receive(ctx, ch)
	}()
	s.stop = func() {
		srv.Conn().RemoveSignal(ch)
		cancel()
		<-done
	}
	return nil
}

// dropSender forgets a connection that left the bus: its attachments, the
// proxies forwarding to it, and the proxies of the sessions it was the
// backend of (nothing more can come for them).
func (s *Service) dropSender(name string) {
	var gone []dbus.ObjectPath
	s.mu.Lock()
	ended := map[dbus.ObjectPath]bool{}
	for k, a := range s.attached {
		if k.sender == name {
			if a.session != "" {
				ended[a.session] = true
			}
			delete(s.attached, k)
		}
	}
	for p, px := range s.proxies {
		if px.target == name || ended[px.session] {
			delete(s.proxies, p)
			gone = append(gone, p)
		}
	}
	s.mu.Unlock()
	for _, p := range gone {
		s.srv.Unexport(p)
	}
}

// NumAttached is the number of attached (sender, interface) pairs.
func (s *Service) NumAttached() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.attached)
}

// LogLevel is the service's current log level (0..6).
func (s *Service) LogLevel() uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logLevel
}

// SessionOf returns the session path assigned to an attachment.
func (s *Service) SessionOf(sender, iface string) (dbus.ObjectPath, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.attached[attachKey{sender, iface}]
	if !ok || a.session == "" {
		return "", false
	}
	return a.session, true
}

func logErr(text string) error { return api.Error(api.DomainLog, text) }

func (s *Service) managerInterface() *busobj.Interface {
	ifaceArg := []busobj.Arg{{Name: "interface", Type: "s"}}
	return &busobj.Interface{
		Name: api.InterfaceLog,
		Methods: []busobj.Method{
			{Name: "Attach", In: ifaceArg, Handler: func(c *busobj.Call) ([]any, error) {
				k := attachKey{c.Sender, c.Args[0].(string)}
				s.mu.Lock()
				defer s.mu.Unlock()
				if _, ok := s.attached[k]; ok {
					return nil, logErr("Already attached")
				}
				n := 0
				for o := range s.attached {
					if o.sender == k.sender {
						n++
					}
				}
				if n >= MaxAttachPerSender {
					return nil, logErr(fmt.Sprintf("Too many attached interfaces for this connection (limit %d)", MaxAttachPerSender))
				}
				s.attached[k] = &attachment{}
				s.logger.Debug("attached", "sender", k.sender, "interface", k.iface)
				return nil, nil
			}},
			{Name: "AssignSession", In: []busobj.Arg{{Name: "session_path", Type: "o"}, {Name: "interface", Type: "s"}},
				Handler: func(c *busobj.Call) ([]any, error) {
					k := attachKey{c.Sender, c.Args[1].(string)}
					s.mu.Lock()
					defer s.mu.Unlock()
					a, ok := s.attached[k]
					if !ok {
						return nil, logErr("Not attached")
					}
					a.session = c.Args[0].(dbus.ObjectPath)
					return nil, nil
				}},
			{Name: "Detach", In: ifaceArg, Handler: func(c *busobj.Call) ([]any, error) {
				k := attachKey{c.Sender, c.Args[0].(string)}
				s.mu.Lock()
				defer s.mu.Unlock()
				if _, ok := s.attached[k]; !ok {
					return nil, logErr("Not attached")
				}
				delete(s.attached, k)
				return nil, nil
			}},
			{Name: "GetSubscriberList", Out: []busobj.Arg{{Name: "subscribers", Type: "a(ssss)"}},
				Handler: func(c *busobj.Call) ([]any, error) { return []any{s.subscribers()}, nil }},
			{Name: "ProxyLogEvents", In: []busobj.Arg{{Name: "target_address", Type: "s"}, {Name: "session_path", Type: "o"}},
				Out: []busobj.Arg{{Name: "proxy_path", Type: "o"}}, Handler: func(c *busobj.Call) ([]any, error) {
					p, err := s.ProxyLogEvents(c.Ctx, c.Args[0].(string), c.Args[1].(dbus.ObjectPath))
					if err != nil {
						return nil, err
					}
					return []any{p}, nil
				}},
		},
		Properties: []busobj.Property{
			{Name: "version", Type: "s", Get: func(*busobj.Call) (any, error) { return version.Service(), nil }},
			{Name: "log_method", Type: "s", Get: func(*busobj.Call) (any, error) { return "slog", nil }},
			{Name: "config_file", Type: "s", Get: func(*busobj.Call) (any, error) { return "", nil }},
			{Name: "num_attached", Type: "u", Get: func(*busobj.Call) (any, error) { return uint32(s.NumAttached()), nil }},
			{Name: "log_level", Type: "u", Get: s.getLocked(func() any { return s.logLevel }),
				Set: func(_ *busobj.Call, v any) error {
					if v.(uint32) > api.MaxLogLevel {
						return api.ErrFailed("Invalid log level")
					}
					s.mu.Lock()
					s.logLevel = v.(uint32)
					s.mu.Unlock()
					return nil
				}},
			{Name: "log_dbus_details", Type: "b", Get: s.getLocked(func() any { return s.dbusDetails }),
				Set: s.setBool(func(b bool) { s.dbusDetails = b })},
			{Name: "log_prefix_logtag", Type: "b", Get: s.getLocked(func() any { return s.logtag }),
				Set: s.setBool(func(b bool) { s.logtag = b })},
			{Name: "timestamp", Type: "b", Get: s.getLocked(func() any { return s.timestamp }),
				Set: s.setBool(func(b bool) { s.timestamp = b })},
		},
		Authorize: func(c *busobj.Call) error {
			switch {
			case c.Op == busobj.OpMethod && (c.Member == "Attach" || c.Member == "Detach"):
				// The session manager, the backends and root: nobody
				// else may feed events into LogForward streams.
				if c.UID != 0 && !c.OwnsName(api.ServiceSessions) && !s.isBackend(c) {
					return busobj.Deny("")
				}
			case c.Op == busobj.OpMethod && c.Member == "GetSubscriberList":
				// root only, as upstream's bus policy
				if c.UID != 0 {
					return busobj.Deny("")
				}
			case c.Op == busobj.OpMethod && c.Member == "AssignSession":
				if !s.isBackend(c) {
					return busobj.Deny("")
				}
			case c.Op == busobj.OpMethod && c.Member == "ProxyLogEvents":
				if !c.OwnsName(api.ServiceSessions) {
					return busobj.Deny("")
				}
			case c.Op == busobj.OpSet && c.UID != 0:
				// upstream's bus policy: only root (and $OVPN) may change settings
				return busobj.Deny("Access denied")
			}
			return nil
		},
	}
}

func (s *Service) getLocked(f func() any) func(*busobj.Call) (any, error) {
	return func(*busobj.Call) (any, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		return f(), nil
	}
}

func (s *Service) setBool(f func(bool)) func(*busobj.Call, any) error {
	return func(_ *busobj.Call, v any) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		f(v.(bool))
		return nil
	}
}

type subscriber struct{ Tag, BusName, Interface, Path string }

func (s *Service) subscribers() []subscriber {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []subscriber{}
	for k, a := range s.attached {
		out = append(out, subscriber{tag(k), k.sender, k.iface, string(a.session)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Tag < out[j].Tag })
	return out
}

// tag is a stable decimal hash of "[<busname>/<interface>]" (FNV-1a; the
// value only has to be stable while the service runs).
func tag(k attachKey) string {
	h := uint64(14695981039346656037)
	for _, b := range []byte("[" + k.sender + "/" + k.iface + "]") {
		h ^= uint64(b)
		h *= 1099511628211
	}
	return strconv.FormatUint(h, 10)
}

// Close stops watching the bus for vanished connections and stops
// forwarding.
func (s *Service) Close() {
	if s.stop != nil {
		s.stop()
	}
}
