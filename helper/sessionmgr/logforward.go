package sessionmgr

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
)

// LogProxies is the log service as the session manager uses it in-process
// (helper/logsvc.Service implements it): one log-proxy object per
// LogForward subscriber, forwarding the backend's Log and StatusChange
// signals unicast to that subscriber.
type LogProxies interface {
	ProxyLogEvents(ctx context.Context, target string, session dbus.ObjectPath) (dbus.ObjectPath, error)
	RemoveProxy(path dbus.ObjectPath) bool
	ProxiesOf(session dbus.ObjectPath) []dbus.ObjectPath
}

// MaxForwardsPerSession bounds a session's LogForward subscribers (one per
// connection; an entry goes when its connection leaves the bus).
const MaxForwardsPerSession = 64

// LogForward starts (enable) or stops forwarding the session's events to
// the caller's connection. A second enable replaces the caller's proxy;
// disabling without a proxy is not an error (as upstream, it is only
// logged). The caller's right to it was checked by authorize.
func (m *Manager) LogForward(ctx context.Context, s *session, sender string, uid uint32, enable bool) error {
	if m.logs == nil {
		return errRequest("Log forwarding is not available")
	}
	if !enable {
		s.mu.Lock()
		f, ok := s.forwards[sender]
		delete(s.forwards, sender)
		s.mu.Unlock()
		if !ok {
			m.log.Debug("LogForward(false) without a forward", "session", s.path, "caller", sender)
			return nil
		}
		m.logs.RemoveProxy(f.path)
		return nil
	}
	s.mu.Lock()
	_, had := s.forwards[sender]
	n := len(s.forwards)
	s.mu.Unlock()
	if !had && n >= MaxForwardsPerSession {
		m.log.Warn("LogForward refused: forward limit", "session", s.path, "caller", sender, "forwards", n)
		return errRequest(fmt.Sprintf("Too many log forwards on this session: %d (limit %d)", n, MaxForwardsPerSession))
	}
	p, err := m.logs.ProxyLogEvents(ctx, sender, s.path)
	if err != nil {
		// Re-thrown like any error from another service (spec §4.2).
		return errRequest(" " + api.ErrorText(err))
	}
	s.mu.Lock()
	if s.forwards == nil {
		s.forwards = map[string]logForward{}
	}
	old, had := s.forwards[sender]
	s.forwards[sender] = logForward{path: p, uid: uid}
	s.mu.Unlock()
	if had {
		m.logs.RemoveProxy(old.path)
	}
	// The session may have ended while the proxy was being made.
	if m.isGone(s) {
		m.dropForwards(s)
	}
	return nil
}

// logForwards lists the session's live log proxies (a proxy whose target
// left the bus is gone from the log service already).
func (m *Manager) logForwards(s *session) []dbus.ObjectPath {
	out := []dbus.ObjectPath{}
	if m.logs == nil {
		return out
	}
	live := m.logs.ProxiesOf(s.path)
	s.mu.Lock()
	for _, f := range s.forwards {
		if slices.Contains(live, f.path) {
			out = append(out, f.path)
		}
	}
	s.mu.Unlock()
	slices.Sort(out)
	return out
}

// pruneForwards removes the forwards of callers the session's access
// rules no longer admit (after AccessRevoke or a change of public_access
// or restrict_log_access): events only reach those allowed to see them.
func (m *Manager) pruneForwards(s *session) {
	if m.logs == nil {
		return
	}
	a := s.access()
	var gone []dbus.ObjectPath
	s.mu.Lock()
	for sender, f := range s.forwards {
		if !a.mayForwardLog(f.uid, s.restrictLogAccess) {
			gone = append(gone, f.path)
			delete(s.forwards, sender)
		}
	}
	s.mu.Unlock()
	for _, p := range gone {
		m.logs.RemoveProxy(p)
	}
}

// dropForwards forgets the forwards of a session that ended. The proxies
// themselves are removed by the log service once it has seen the backend
// leave the bus, after forwarding the backend's last events (CONN_FAILED,
// CONN_DONE): removing them here could overtake those.
func (m *Manager) dropForwards(s *session) {
	s.mu.Lock()
	s.forwards = nil
	s.mu.Unlock()
}

// sanitize drops control characters from caller text that ends up in
// status messages and logs.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
