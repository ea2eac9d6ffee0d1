package logsvc

import (
	"context"
	"fmt"

	"github.com/godbus/dbus/v5"
	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/busobj"
)

// ProxyLogEvents creates a log-proxy object that will forward the events of
// session to target (a unique bus name). The session must have been
// assigned by a backend (AssignSession). The session manager may call this
// in-process instead of over the bus.
func (s *Service) ProxyLogEvents(ctx context.Context, target string, session dbus.ObjectPath) (dbus.ObjectPath, error) {
	s.mu.Lock()
	found := false
	for _, a := range s.attached {
		if a.session == session {
			found = true
			break
		}
	}
	s.mu.Unlock()
	if !found {
		return "", logErr("No session available")
	}
	uid, _, err := s.srv.Credentials(ctx, target)
	if err != nil {
		return "", logErr(fmt.Sprintf("Could not identify the log receiver %s", target))
	}
	px := &proxy{path: api.NewLogProxyPath(), session: session, target: target, uid: uid, logLevel: api.MaxLogLevel}
	s.mu.Lock()
	s.proxies[px.path] = px
	s.mu.Unlock()
	if err := s.srv.Export(px.path, s.proxyInterface(px)); err != nil {
		s.mu.Lock()
		delete(s.proxies, px.path)
		s.mu.Unlock()
		return "", err
	}
	return px.path, nil
}

// RemoveProxy removes a log-proxy object.
func (s *Service) RemoveProxy(path dbus.ObjectPath) bool {
	s.mu.Lock()
	_, ok := s.proxies[path]
	delete(s.proxies, path)
	s.mu.Unlock()
	if ok {
		s.srv.Unexport(path)
	}
	return ok
}

func (s *Service) proxyInterface(px *proxy) *busobj.Interface {
	return &busobj.Interface{
		Name: api.InterfaceLog,
		Methods: []busobj.Method{{Name: "Remove", Handler: func(*busobj.Call) ([]any, error) {
			s.RemoveProxy(px.path)
			return nil, nil
		}}},
		Properties: []busobj.Property{
			{Name: "log_level", Type: "u", Get: s.getLocked(func() any { return px.logLevel }),
				Set: func(_ *busobj.Call, v any) error {
					if v.(uint32) > api.MaxLogLevel {
						return api.ErrFailed("Invalid log level")
					}
					s.mu.Lock()
					px.logLevel = v.(uint32)
					s.mu.Unlock()
					return nil
				}},
			{Name: "session_path", Type: "o", Get: func(*busobj.Call) (any, error) { return px.session, nil }},
			// declared o, value s — as upstream (spec §2.11)
			{Name: "target", Type: "o", Get: func(*busobj.Call) (any, error) { return px.target, nil }},
		},
		Authorize: func(c *busobj.Call) error {
			if c.UID == px.uid || c.OwnsName(api.ServiceSessions) {
				return nil
			}
			return busobj.Deny("Access denied")
		},
	}
}
