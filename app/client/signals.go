package client

import (
	"context"
	"errors"
	"strings"
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
	out, added := c.sessionManagerEvents(ctx)
	if err := added(); err != nil {
		return nil, err
	}
	return out, nil
}

// sessionManagerEvents is SessionManagerEvents whose match rule is on its
// way when it returns (added waits for the bus's answer).
func (c *Client) sessionManagerEvents(ctx context.Context) (<-chan SessionManagerEvent, func() error) {
	return subscribeAsync(ctx, c, []matchRule{{
		{"sender", api.ServiceSessions}, {"interface", api.InterfaceSessions}, {"member", "SessionManagerEvent"},
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
	return subscribe(ctx, c, []matchRule{{
		{"sender", api.ServiceConfiguration}, {"interface", api.InterfaceConfiguration}, {"member", "ConfigurationManagerEvent"},
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
	return subscribe(ctx, c, []matchRule{{
		{"sender", api.ServiceSessions}, {"interface", api.InterfaceSessions}, {"member", "AttentionRequired"},
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
	var rules []matchRule
	for _, n := range names {
		want[n] = true
		rules = append(rules, matchRule{
			{"sender", "org.freedesktop.DBus"}, {"interface", "org.freedesktop.DBus"}, {"member", "NameOwnerChanged"}, {"arg0", n},
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

// follow is Follow with its stop function (Start must not leave the
// forwarding on behind itself).
func (s *Session) follow(ctx context.Context) (<-chan Event, func(), error) {
	f, added := s.subscribeEvents(ctx)
	if err := added(); err != nil {
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
// nothing is forwarded before forward. The rule is on its way when it
// returns: added waits for the bus's answer. Calls sent after it reach
// the bus after it, so a LogForward may go out before that answer.
func (s *Session) subscribeEvents(ctx context.Context) (f *following, added func() error) {
	path := s.Path
	fctx, cancel := context.WithCancel(ctx)
	ch, ruleAdded := subscribeForwarded(fctx, s.c, path, func() dbus.ObjectPath { return path })
	return &following{s: s, events: ch, cancel: cancel}, func() error {
		err := ruleAdded()
		if err != nil {
			cancel()
		}
		return err
	}
}

// subscribeForwarded delivers the forwarded Log and StatusChange signals
// of the session whose path want returns (signals of other paths, and any
// before want knows one, are dropped). rulePath narrows the match rule to
// that path; "" leaves it out, so the rule can go out before the session
// exists (the log service sends forwarded signals only to the connection
// that asked for them: the wider rule lets no other session's in).
func subscribeForwarded(ctx context.Context, c *Client, rulePath dbus.ObjectPath, want func() dbus.ObjectPath) (<-chan Event, func() error) {
	rule := matchRule{{"sender", api.ServiceLog}}
	if rulePath != "" {
		rule = append(rule, [2]string{"path", string(rulePath)})
	}
	rule = append(rule, [2]string{"interface", api.InterfaceBackends})
	return subscribeAsync(ctx, c, []matchRule{rule}, func(sig *dbus.Signal) (Event, bool) {
		path := want()
		if path == "" || sig.Path != path || len(sig.Body) != 3 {
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

// stop ends the subscription and, if forward succeeded, has forwarding
// switched off once no other Follow needs it; it does not wait for that
// (Client.unforward).
func (f *following) stop() {
	f.once.Do(func() {
		f.cancel()
		if f.forwarded {
			f.s.c.unforward(f.s)
		}
	})
}

// forward switches LogForward on for the session's first Follow, after a
// switch-off still on its way (unforward) has been answered: the session
// manager may handle two calls of one connection in either order.
func (c *Client) forward(ctx context.Context, s *Session) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.forwards == nil {
		c.forwards = map[dbus.ObjectPath]int{}
	}
	if c.forwards[s.Path] == 0 {
		if off := c.switchingOff[s.Path]; off != nil {
			select {
			case <-off:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if err := s.LogForward(ctx, true); err != nil {
			return err
		}
	}
	c.forwards[s.Path]++
	return nil
}

// unforwardTimeout bounds a LogForward(false) sent in the background
// (unless Client.unforwardTimeout says otherwise).
const unforwardTimeout = 5 * time.Second

// unforward switches LogForward off after the session's last Follow ended.
// The call goes out now but nobody waits for its answer (Start returns
// once connected: ovpn3 session-start prints and exits, and its
// connection's end stops the forwarding anyway); Close waits for it.
func (c *Client) unforward(s *Session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.forwards[s.Path]--
	if c.forwards[s.Path] > 0 {
		return
	}
	delete(c.forwards, s.Path)
	if c.closing { // a Follow ending after Close: nobody waits any more
		ctx, cancel := context.WithTimeout(context.Background(), unforwardTimeout)
		defer cancel()
		_ = s.LogForward(ctx, false)
		return
	}
	if c.switchingOff == nil {
		c.switchingOff = map[dbus.ObjectPath]chan struct{}{}
	}
	done := make(chan struct{})
	c.switchingOff[s.Path] = done
	timeout := unforwardTimeout
	if c.unforwardTimeout > 0 {
		timeout = c.unforwardTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	call := c.conn.Object(api.ServiceSessions, s.Path).GoWithContext(ctx, api.InterfaceSessions+".LogForward", 0, nil, false)
	c.background.Add(1)
	go func() {
		defer c.background.Done()
		select { // the session may be gone: nothing to switch off then
		case <-call.Done:
		case <-ctx.Done():
		}
		cancel()
		close(done)
		c.mu.Lock()
		if c.switchingOff[s.Path] == done {
			delete(c.switchingOff, s.Path)
		}
		c.mu.Unlock()
	}()
}

// matchRule is a signal match rule as key/value pairs (sender, path,
// interface, member, arg0).
type matchRule [][2]string

// String is the rule as AddMatch takes it. The values are bus names,
// paths and interface names: nothing to quote.
func (r matchRule) String() string {
	var b strings.Builder
	b.WriteString("type='signal'")
	for _, kv := range r {
		b.WriteString("," + kv[0] + "='" + kv[1] + "'")
	}
	return b.String()
}

// subscribe adds the match rules, and delivers what convert accepts until
// ctx ends or the connection closes. initial, if set, produces the first
// values (after the rules are in place, so nothing falls between).
func subscribe[T any](ctx context.Context, c *Client, rules []matchRule, convert func(*dbus.Signal) (T, bool), initial func(context.Context) []T) (<-chan T, error) {
	out, added := subscribeAsync(ctx, c, rules, convert, initial)
	if err := added(); err != nil {
		return nil, err
	}
	return out, nil
}

// subscribeAsync is subscribe returning as soon as the AddMatch calls are
// sent: whatever the connection sends afterwards reaches the bus after
// them. added waits for their answers and says whether they all passed;
// if not, the subscription has ended (its channel closes).
func subscribeAsync[T any](ctx context.Context, c *Client, rules []matchRule, convert func(*dbus.Signal) (T, bool), initial func(context.Context) []T) (<-chan T, func() error) {
	raw := make(chan *dbus.Signal, rawBuffer)
	c.conn.Signal(raw)
	bus := c.conn.BusObject()
	calls := make([]*dbus.Call, len(rules))
	for i, r := range rules {
		calls[i] = bus.GoWithContext(ctx, "org.freedesktop.DBus.AddMatch", 0, nil, r.String())
	}
	out := make(chan T, 64)
	result := make(chan error, 1)
	go func() {
		defer close(out)
		var added []matchRule
		defer func() {
			c.conn.RemoveSignal(raw)
			rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			for _, r := range added {
				_ = bus.CallWithContext(rctx, "org.freedesktop.DBus.RemoveMatch", 0, r.String()).Err
			}
		}()
		var err error
		for i, call := range calls {
			<-call.Done
			if call.Err != nil {
				err = errors.Join(err, wrapError("subscribe to signals", "", call.Err))
				continue
			}
			added = append(added, rules[i])
		}
		result <- err
		if err != nil {
			return
		}
		var first []T
		if initial != nil {
			first = initial(ctx)
		}
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
	return out, sync.OnceValue(func() error { return <-result })
}
