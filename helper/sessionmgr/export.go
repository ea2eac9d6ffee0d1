package sessionmgr

import (
	"fmt"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/busobj"
	"github.com/ovpn3go/ovpn3go/internal/version"
)

// Export publishes the manager object on srv and makes srv the exporter of
// session objects and the emitter of all signals.
func (m *Manager) Export(srv *busobj.Server) error {
	if err := srv.Export(api.PathSessions, m.managerInterface()); err != nil {
		return fmt.Errorf("sessionmgr: %w", err)
	}
	m.mu.Lock()
	m.emit = srv
	m.objects = busobjTable{m: m, srv: srv}
	m.busLookups = srv
	m.mu.Unlock()
	return nil
}

type busobjTable struct {
	m   *Manager
	srv *busobj.Server
}

func (t busobjTable) exportSession(s *session) error {
	return t.srv.Export(s.path, t.m.sessionInterface(s))
}

func (t busobjTable) unexportSession(s *session) { t.srv.Unexport(s.path) }

var (
	sigLog = busobj.Signal{Name: "Log", Args: []busobj.Arg{{Name: "group", Type: "u"}, {Name: "level", Type: "u"}, {Name: "message", Type: "s"}}}
)

func (m *Manager) managerInterface() *busobj.Interface {
	return &busobj.Interface{
		Name: api.InterfaceSessions,
		Methods: []busobj.Method{
			{
				Name: "NewTunnel",
				In:   []busobj.Arg{{Name: "config_path", Type: "o"}},
				Out:  []busobj.Arg{{Name: "session_path", Type: "o"}},
				Handler: func(c *busobj.Call) ([]any, error) {
					p, err := m.newTunnelCall(c)
					if err != nil {
						return nil, err
					}
					return []any{p}, nil
				},
			},
			{
				Name: "FetchAvailableSessions",
				Out:  []busobj.Arg{{Name: "paths", Type: "ao"}},
				Handler: func(c *busobj.Call) ([]any, error) {
					return []any{m.FetchAvailableSessions(c.UID)}, nil
				},
			},
			{
				Name: "FetchManagedInterfaces",
				Out:  []busobj.Arg{{Name: "devices", Type: "as"}},
				Handler: func(c *busobj.Call) ([]any, error) {
					return []any{m.FetchManagedInterfaces(c.UID)}, nil
				},
			},
			{
				Name: "LookupConfigName",
				In:   []busobj.Arg{{Name: "config_name", Type: "s"}},
				Out:  []busobj.Arg{{Name: "session_paths", Type: "ao"}},
				Handler: func(c *busobj.Call) ([]any, error) {
					return []any{m.LookupConfigName(c.UID, c.Args[0].(string))}, nil
				},
			},
			{
				Name: "LookupInterface",
				In:   []busobj.Arg{{Name: "device_name", Type: "s"}},
				Out:  []busobj.Arg{{Name: "session_path", Type: "o"}},
				Handler: func(c *busobj.Call) ([]any, error) {
					p, err := m.LookupInterface(c.UID, c.Args[0].(string))
					if err != nil {
						return nil, err
					}
					return []any{p}, nil
				},
			},
		},
		Signals: []busobj.Signal{
			sigLog,
			{Name: "SessionManagerEvent", Args: []busobj.Arg{{Name: "path", Type: "o"}, {Name: "type", Type: "q"}, {Name: "owner", Type: "u"}}},
		},
		Properties: []busobj.Property{
			{Name: "version", Type: "s", Get: func(*busobj.Call) (any, error) { return version.Service(), nil }},
		},
	}
}

func noArgs(fn func() error) func(*busobj.Call) ([]any, error) {
	return func(*busobj.Call) ([]any, error) { return nil, fn() }
}

func (m *Manager) sessionInterface(s *session) *busobj.Interface {
	ro := func(name, typ string, get func() (any, error)) busobj.Property {
		return busobj.Property{Name: name, Type: typ, Get: func(*busobj.Call) (any, error) { return get() }}
	}
	locked := func(get func() any) func() (any, error) {
		return func() (any, error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			return get(), nil
		}
	}
	// fromBackend reads a backend property, with the spec's error when the
	// backend is gone.
	fromBackend := func(name string, zero any) func() (any, error) {
		return func() (any, error) {
			v, err := m.backendProperty(s, name)
			if err != nil {
				if m.isGone(s) {
					return nil, api.ErrFailed(textStopped)
				}
				m.log.Debug("backend property", "session", s.path, "property", name, "err", err)
				return zero, nil
			}
			return v, nil
		}
	}
	uinput := func(name string, in, out []busobj.Arg) busobj.Method {
		return busobj.Method{Name: name, In: in, Out: out, Handler: func(c *busobj.Call) ([]any, error) {
			outs := make([]any, len(out))
			ptrs := make([]any, len(out))
			for i, a := range out {
				switch a.Type {
				case "u":
					ptrs[i] = new(uint32)
				case "s":
					ptrs[i] = new(string)
				case "b":
					ptrs[i] = new(bool)
				case "au":
					ptrs[i] = new([]uint32)
				case "a(uu)":
					ptrs[i] = new([]uintPair)
				}
			}
			if err := m.forward(s, name, ptrs, c.Args...); err != nil {
				return nil, err
			}
			for i, p := range ptrs {
				switch v := p.(type) {
				case *uint32:
					outs[i] = *v
				case *string:
					outs[i] = *v
				case *bool:
					outs[i] = *v
				case *[]uint32:
					outs[i] = *v
				case *[]uintPair:
					outs[i] = *v
				}
			}
			return outs, nil
		}}
	}
	u := func(n string) busobj.Arg { return busobj.Arg{Name: n, Type: "u"} }
	return &busobj.Interface{
		Name:      api.InterfaceSessions,
		Authorize: m.authorize(s),
		Methods: []busobj.Method{
			{Name: "Connect", Handler: noArgs(func() error { return m.Connect(s) })},
			{Name: "Pause", In: []busobj.Arg{{Name: "reason", Type: "s"}}, Handler: func(c *busobj.Call) ([]any, error) {
				m.sessionLog(s, api.LogCategoryInfo, "Pausing connection - "+string(s.path))
				return nil, m.forward(s, "Pause", nil, sanitize(c.Args[0].(string)))
			}},
			{Name: "Resume", Handler: noArgs(func() error { return m.forward(s, "Resume", nil) })},
			{Name: "Restart", Handler: noArgs(func() error { return m.forward(s, "Restart", nil) })},
			{Name: "Disconnect", Handler: noArgs(func() error { return m.Disconnect(s) })},
			{Name: "Ready", Handler: noArgs(func() error { return m.Ready(s) })},
			{Name: "AccessGrant", In: []busobj.Arg{u("uid")}, Handler: func(c *busobj.Call) ([]any, error) {
				return nil, m.AccessGrant(s, c.Args[0].(uint32))
			}},
			{Name: "AccessRevoke", In: []busobj.Arg{u("uid")}, Handler: func(c *busobj.Call) ([]any, error) {
				err := m.AccessRevoke(s, c.Args[0].(uint32))
				m.pruneForwards(s)
				return nil, err
			}},
			{Name: "LogForward", In: []busobj.Arg{{Name: "enable", Type: "b"}}, Handler: func(c *busobj.Call) ([]any, error) {
				return nil, m.LogForward(c.Ctx, s, c.Sender, c.UID, c.Args[0].(bool))
			}},
			uinput("UserInputQueueGetTypeGroup", nil, []busobj.Arg{{Name: "type_group_list", Type: "a(uu)"}}),
			uinput("UserInputQueueFetch", []busobj.Arg{u("type"), u("group"), u("id")},
				[]busobj.Arg{u("type"), u("group"), u("id"), {Name: "name", Type: "s"}, {Name: "description", Type: "s"}, {Name: "hidden_input", Type: "b"}}),
			uinput("UserInputQueueCheck", []busobj.Arg{u("type"), u("group")}, []busobj.Arg{{Name: "indexes", Type: "au"}}),
			uinput("UserInputProvide", []busobj.Arg{u("type"), u("group"), u("id"), {Name: "value", Type: "s"}}, nil),
		},
		Signals: []busobj.Signal{
			{Name: "AttentionRequired", Args: []busobj.Arg{u("type"), u("group"), {Name: "message", Type: "s"}}},
			{Name: "StatusChange", Args: []busobj.Arg{u("code_major"), u("code_minor"), {Name: "message", Type: "s"}}},
			sigLog,
		},
		Properties: []busobj.Property{
			ro("owner", "u", locked(func() any { return s.owner })),
			ro("session_created", "t", func() (any, error) { return uint64(s.created.Unix()), nil }),
			ro("acl", "au", locked(func() any { return append([]uint32{}, s.acl...) })),
			{Name: "public_access", Type: "b", Get: func(*busobj.Call) (any, error) { return locked(func() any { return s.publicAccess })() },
				Set: func(_ *busobj.Call, v any) error {
					s.mu.Lock()
					s.publicAccess = v.(bool)
					s.mu.Unlock()
					m.pruneForwards(s)
					return nil
				}},
			ro("status", "(uus)", locked(func() any {
				return statusTuple{uint32(s.status.Major), uint32(s.status.Minor), s.status.Message}
			})),
			ro("last_log", "a{sv}", locked(func() any {
				return map[string]dbus.Variant{
					"log_group":    dbus.MakeVariant(s.lastLog.Group),
					"log_category": dbus.MakeVariant(s.lastLog.Category),
					"log_message":  dbus.MakeVariant(s.lastLog.Message),
				}
			})),
			ro("statistics", "a{sx}", func() (any, error) {
				st, err := m.statistics(s)
				if err != nil {
					if m.isGone(s) {
						return nil, api.ErrFailed(textStopped)
					}
					return map[string]int64{}, nil
				}
				return st, nil
			}),
			{Name: "dco", Type: "b", Get: func(*busobj.Call) (any, error) {
				s.mu.Lock()
				set, v, locked := s.dcoSet, s.dco, s.dcoLocked
				s.mu.Unlock()
				if set && !locked {
					return v, nil
				}
				// Once connecting, the backend says which data path it
				// really uses (it falls back to TUN when it must).
				return fromBackend("dco", v)()
			}, Set: func(_ *busobj.Call, v any) error {
				s.mu.Lock()
				defer s.mu.Unlock()
				if s.dcoLocked {
					return api.ErrFailed("DCO mode cannot be changed now")
				}
				s.dco, s.dcoSet = v.(bool), true
				return nil
			}},
			// Declared "s" as upstream does; the value is an object path.
			ro("device_path", "s", fromBackend("device_path", dbus.ObjectPath("/"))),
			ro("device_name", "s", fromBackend("device_name", "")),
			ro("config_path", "o", func() (any, error) { return s.configPath, nil }),
			ro("config_name", "s", func() (any, error) { return s.configName, nil }),
			ro("connected_to", "(ssu)", func() (any, error) {
				ct, err := m.connectedTo(s)
				if err != nil && m.isGone(s) {
					return nil, api.ErrFailed(textStopped)
				}
				return ct, nil
			}),
			ro("session_name", "s", fromBackend("session_name", "")),
			ro("backend_pid", "u", func() (any, error) { return s.backendPID, nil }),
			{Name: "restrict_log_access", Type: "b", Get: func(*busobj.Call) (any, error) {
				return locked(func() any { return s.restrictLogAccess })()
			}, Set: func(_ *busobj.Call, v any) error {
				s.mu.Lock()
				s.restrictLogAccess = v.(bool)
				s.mu.Unlock()
				m.pruneForwards(s)
				return nil
			}},
			ro("log_forwards", "ao", func() (any, error) { return m.logForwards(s), nil }),
			{Name: "log_verbosity", Type: "u", Get: func(*busobj.Call) (any, error) {
				return locked(func() any { return s.logVerbosity })()
			}, Set: func(_ *busobj.Call, v any) error {
				lvl := v.(uint32)
				if lvl > api.MaxLogLevel {
					return api.ErrFailed("Incorrect log level")
				}
				s.mu.Lock()
				s.logVerbosity = lvl
				s.mu.Unlock()
				return nil
			}},
		},
	}
}

type statusTuple struct {
	Major, Minor uint32
	Message      string
}

type uintPair struct{ A, B uint32 }
