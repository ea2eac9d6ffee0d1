package client

import (
	"context"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
)

// Every subscription below registers its own channel on the connection
// and its own match rules, converts the signals it wants, and stops — rules
// removed, channel closed — when its context ends or the connection closes.
// godbus delivers every signal of the connection to every channel, hence
// each converter checks path, interface and member itself.

// rawBuffer is the depth of a subscription's raw signal channel. godbus
// hands a full channel's signals to extra goroutines, which may reorder
// them; a deep buffer keeps bursts (a connect's log lines) in order.
const rawBuffer = 512

// SessionManagerEvent is a session created or destroyed (broadcast).
type SessionManagerEvent struct {
	Path  dbus.ObjectPath
	Type  api.SessionEventType
	Owner uint32
}

// ConfigurationEvent is a profile created or removed (broadcast).
type ConfigurationEvent struct {
	Path  dbus.ObjectPath
	Type  api.ConfigEventType
	Owner uint32
}

// Attention is an AttentionRequired broadcast by a session: it needs
// credentials (Group names which) or web authentication (OPEN_URL; Message
// is the URL).
type Attention struct {
	Path    dbus.ObjectPath
	Type    api.AttentionType
	Group   api.AttentionGroup
	Message string
}

// Event is what Session.Follow delivers: a StatusChange or a LogLine.
type Event interface{ SessionPath() dbus.ObjectPath }

// StatusChange is a session's new status.
type StatusChange struct {
	Path   dbus.ObjectPath
	Status api.Status
}

// LogLine is one log event of a session.
type LogLine struct {
	Path     dbus.ObjectPath
	Time     time.Time // when it arrived
	Group    api.LogGroup
	Category api.LogCategory
	Message  string
}

func (e StatusChange) SessionPath() dbus.ObjectPath { return e.Path }
func (e LogLine) SessionPath() dbus.ObjectPath      { return e.Path }

// ServiceOwner says a service's name has an owner (the helper runs) or
// lost it (the helper ended or restarts).
type ServiceOwner struct {
	Name    string
	Running bool
}

// SessionManagerEvents delivers SESS_CREATED/SESS_DESTROYED of every
// session the bus lets this connection see.
func (c *Client) SessionManagerEvents(ctx context.Context) (<-chan SessionManagerEvent, error) {
	return subscribe(ctx, c, [][]dbus.MatchOption{{
		dbus.WithMatchSender(api.ServiceSessions), dbus.WithMatchInterface(api.InterfaceSessions),
		dbus.WithMatchMember("SessionManagerEvent"),
	}}, func(s *dbus.Signal) (SessionManagerEvent, bool) {
		if s.Name != api.InterfaceSessions+".SessionManagerEvent" || len(s.Body) != 3 {
			return SessionManagerEvent{}, false
		}
		p, ok1 := s.Body[0].(dbus.ObjectPath)
		t, ok2 := s.Body[1].(uint16)
		o, ok3 := s.Body[2].(uint32)
		return SessionManagerEvent{p, api.SessionEventType(t), o}, ok1 && ok2 && ok3
	}, nil)
}

// ConfigurationEvents delivers CFG_CREATED/CFG_DESTROYED.
func (c *Client) ConfigurationEvents(ctx context.Context) (<-chan ConfigurationEvent, error) {
	return subscribe(ctx, c, [][]dbus.MatchOption{{
		dbus.WithMatchSender(api.ServiceConfiguration), dbus.WithMatchInterface(api.InterfaceConfiguration),
		dbus.WithMatchMember("ConfigurationManagerEvent"),
	}}, func(s *dbus.Signal) (ConfigurationEvent, bool) {
		if s.Name != api.InterfaceConfiguration+".ConfigurationManagerEvent" || len(s.Body) != 3 {
			return ConfigurationEvent{}, false
		}
		p, ok1 := s.Body[0].(dbus.ObjectPath)
		t, ok2 := s.Body[1].(uint16)
		o, ok3 := s.Body[2].(uint32)
		return ConfigurationEvent{p, api.ConfigEventType(t), o}, ok1 && ok2 && ok3
	}, nil)
}

// AttentionRequired delivers the AttentionRequired broadcasts of all
// sessions.
func (c *Client) AttentionRequired(ctx context.Context) (<-chan Attention, error) {
	return subscribe(ctx, c, [][]dbus.MatchOption{{
		dbus.WithMatchSender(api.ServiceSessions), dbus.WithMatchInterface(api.InterfaceSessions),
		dbus.WithMatchMember("AttentionRequired"),
	}}, func(s *dbus.Signal) (Attention, bool) {
		if s.Name != api.InterfaceSessions+".AttentionRequired" || len(s.Body) != 3 {
			return Attention{}, false
		}
		t, ok1 := s.Body[0].(uint32)
		g, ok2 := s.Body[1].(uint32)
		m, ok3 := s.Body[2].(string)
		return Attention{s.Path, api.AttentionType(t), api.AttentionGroup(g), m}, ok1 && ok2 && ok3
	}, nil)
}

// ServiceOwners reports when the named services (default: configuration
// and sessions) gain or lose their owner. The first events say whether
// each runs now.
func (c *Client) ServiceOwners(ctx context.Context, names ...string) (<-chan ServiceOwner, error) {
	if len(names) == 0 {
		names = []string{api.ServiceConfiguration, api.ServiceSessions}
	}
	want := map[string]bool{}
	var rules [][]dbus.MatchOption
	for _, n := range names {
		want[n] = true
		rules = append(rules, []dbus.MatchOption{
			dbus.WithMatchSender("org.freedesktop.DBus"), dbus.WithMatchInterface("org.freedesktop.DBus"),
			dbus.WithMatchMember("NameOwnerChanged"), dbus.WithMatchArg(0, n),
		})
	}
	initial := func(ctx context.Context) []ServiceOwner {
		var out []ServiceOwner
		for _, n := range names {
			var has bool
			err := c.Call(ctx, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "NameHasOwner", []any{n}, &has)
			out = append(out, ServiceOwner{Name: n, Running: err == nil && has})
		}
		return out
	}
	return subscribe(ctx, c, rules, func(s *dbus.Signal) (ServiceOwner, bool) {
		if s.Name != "org.freedesktop.DBus.NameOwnerChanged" || len(s.Body) != 3 {
			return ServiceOwner{}, false
		}
		n, _ := s.Body[0].(string)
		newOwner, _ := s.Body[2].(string)
		return ServiceOwner{Name: n, Running: newOwner != ""}, want[n]
	}, initial)
}

// Follow asks the session manager to forward the session's log and status
// events to this connection (LogForward) and delivers them until ctx ends,
// when forwarding is switched off again (by the last Follow of the session
// on this Client). The session's own log verbosity (SetLogVerbosity)
// decides which log lines come.
func (s *Session) Follow(ctx context.Context) (<-chan Event, error) {
	ch, stop, err := s.follow(ctx)
	if err != nil {
		return nil, err
	}
	go func() {
		<-ctx.Done()
		stop()
	}()
	return ch, nil
}

// follow is Follow with a stop function that returns once forwarding is
// off (Start must not leave it on behind itself).
func (s *Session) follow(ctx context.Context) (<-chan Event, func(), error) {
	f, err := s.subscribeEvents(ctx)
	if err != nil {
		return nil, nil, err
	}
	if err := f.forward(ctx); err != nil {
		f.stop()
		return nil, nil, err
	}
	return f.events, f.stop, nil
}

// following is a subscription to a session's forwarded events, with or
// without LogForward switched on yet (forward).
type following struct {
	s         *Session
	events    <-chan Event
	cancel    context.CancelFunc
	forwarded bool
	once      sync.Once
}

// subscribeEvents adds the match rule for the session's forwarded events;
// nothing is forwarded before forward.
func (s *Session) subscribeEvents(ctx context.Context) (*following, error) {
	path := s.Path
	fctx, cancel := context.WithCancel(ctx)
	ch, err := subscribe(fctx, s.c, [][]dbus.MatchOption{{
		dbus.WithMatchSender(api.ServiceLog), dbus.WithMatchObjectPath(path), dbus.WithMatchInterface(api.InterfaceBackends),
	}}, func(sig *dbus.Signal) (Event, bool) {
		if sig.Path != path || len(sig.Body) != 3 {
			return nil, false
		}
		a, ok1 := sig.Body[0].(uint32)
		b, ok2 := sig.Body[1].(uint32)
		m, ok3 := sig.Body[2].(string)
		if !ok1 || !ok2 || !ok3 {
			return nil, false
		}
		switch sig.Name {
		case api.InterfaceBackends + ".StatusChange":
			return StatusChange{path, api.Status{Major: api.StatusMajor(a), Minor: api.StatusMinor(b), Message: m}}, true
		case api.InterfaceBackends + ".Log":
			return LogLine{path, time.Now(), api.LogGroup(a), api.LogCategory(b), m}, true
		}
		return nil, false
	}, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	return &following{s: s, events: ch, cancel: cancel}, nil
}

// forward switches LogForward on (for the session's first Follow on this
// Client).
func (f *following) forward(ctx context.Context) error {
	if err := f.s.c.forward(ctx, f.s); err != nil {
		return err
	}
	f.forwarded = true
	return nil
}

// stop ends the subscription and, if forward succeeded, switches
// forwarding off again once no other Follow needs it.
func (f *following) stop() {
	f.once.Do(func() {
		f.cancel()
		if f.forwarded {
			f.s.c.unforward(f.s)
		}
	})
}

// forward switches LogForward on for the session's first Follow.
func (c *Client) forward(ctx context.Context, s *Session) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.forwards == nil {
		c.forwards = map[dbus.ObjectPath]int{}
	}
	if c.forwards[s.Path] == 0 {
		if err := s.LogForward(ctx, true); err != nil {
			return err
		}
	}
	c.forwards[s.Path]++
	return nil
}

// unforward switches LogForward off after the session's last Follow ended.
func (c *Client) unforward(s *Session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.forwards[s.Path]--
	if c.forwards[s.Path] > 0 {
		return
	}
	delete(c.forwards, s.Path)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.LogForward(ctx, false) // the session may be gone: nothing to switch off then
}

// subscribe adds the match rules, and delivers what convert accepts until
// ctx ends or the connection closes. initial, if set, produces the first
// values (after the rules are in place, so nothing falls between).
func subscribe[T any](ctx context.Context, c *Client, rules [][]dbus.MatchOption, convert func(*dbus.Signal) (T, bool), initial func(context.Context) []T) (<-chan T, error) {
	raw := make(chan *dbus.Signal, rawBuffer)
	c.conn.Signal(raw)
	var added [][]dbus.MatchOption
	cleanup := func() {
		c.conn.RemoveSignal(raw)
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, r := range added {
			_ = c.conn.RemoveMatchSignalContext(rctx, r...)
		}
	}
	for _, r := range rules {
		if err := c.conn.AddMatchSignalContext(ctx, r...); err != nil {
			cleanup()
			return nil, wrapError("subscribe to signals", "", err)
		}
		added = append(added, r)
	}
	out := make(chan T, 64)
	var first []T
	if initial != nil {
		first = initial(ctx)
	}
	go func() {
		defer close(out)
		defer cleanup()
		for _, v := range first {
			select {
			case out <- v:
			case <-ctx.Done():
				return
			}
		}
		for {
			select {
			case s, ok := <-raw:
				if !ok {
					return // the connection closed
				}
				v, ok := convert(s)
				if !ok {
					continue
				}
				select {
				case out <- v:
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}
