package logsvc

import (
	"context"
	"strings"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
)

// receive handles the Log and StatusChange signals that reach the log
// service's connection. Only signals from an attached (sender, interface)
// with a session assigned to it are forwarded: a backend has to Attach and
// AssignSession first, and only the session manager creates proxies, so a
// caller cannot inject events into someone else's session.
func (s *Service) receive(ctx context.Context, ch <-chan *dbus.Signal) {
	for {
		select {
		case sig, ok := <-ch:
			if !ok {
				return
			}
			s.forward(sig)
		case <-ctx.Done():
			return
		}
	}
}

func (s *Service) forward(sig *dbus.Signal) {
	if sig.Name == "org.freedesktop.DBus.NameOwnerChanged" && len(sig.Body) == 3 {
		// Handled here, in order with the signals the vanished connection
		// sent before it left, so a backend's last events still reach
		// the proxies before they are removed.
		name, _ := sig.Body[0].(string)
		newOwner, _ := sig.Body[2].(string)
		if newOwner == "" && strings.HasPrefix(name, ":") {
			s.dropSender(name)
		}
		return
	}
	i := strings.LastIndexByte(sig.Name, '.')
	if i < 0 {
		return
	}
	iface, member := sig.Name[:i], sig.Name[i+1:]
	if member != "Log" && member != "StatusChange" {
		return
	}
	s.mu.Lock()
	a, ok := s.attached[attachKey{sig.Sender, iface}]
	if !ok || a.session == "" {
		s.mu.Unlock()
		return
	}
	session := a.session
	type target struct {
		name  string
		level uint32
	}
	var targets []target
	for _, px := range s.proxies {
		if px.session == session {
			targets = append(targets, target{px.target, px.logLevel})
		}
	}
	s.mu.Unlock()

	var args []any
	var cat api.LogCategory
	switch member {
	case "Log":
		// Backends send (uuss) with their session token; forwarded events
		// are (uus), as the Python module's callbacks expect.
		var group, category uint32
		var token, msg string
		var err error
		if len(sig.Body) == 4 {
			err = dbus.Store(sig.Body, &group, &category, &token, &msg)
		} else {
			err = dbus.Store(sig.Body, &group, &category, &msg)
		}
		if err != nil {
			return
		}
		cat = api.LogCategory(category)
		args = []any{group, category, msg}
		s.logger.Debug("session log", "session", session, "group", api.LogGroup(group).String(), "category", cat.String(), "message", msg)
	case "StatusChange":
		var major, minor uint32
		var msg string
		if err := dbus.Store(sig.Body, &major, &minor, &msg); err != nil {
			return
		}
		args = []any{major, minor, msg}
		s.logger.Debug("session status", "session", session, "status",
			api.Status{Major: api.StatusMajor(major), Minor: api.StatusMinor(minor), Message: msg}.String())
	}
	for _, t := range targets {
		if member == "Log" && cat.MinLogLevel() > t.level {
			continue
		}
		// Sent from the session's path with the backends interface:
		// openvpn3 front-ends match exactly that (spec §2.10).
		if err := s.srv.EmitTo(t.name, session, api.InterfaceBackends, member, args...); err != nil {
			s.logger.Debug("forward event", "target", t.name, "err", err)
		}
	}
}

// ProxiesOf lists the log-proxy objects forwarding session's events.
func (s *Service) ProxiesOf(session dbus.ObjectPath) []dbus.ObjectPath {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []dbus.ObjectPath
	for p, px := range s.proxies {
		if px.session == session {
			out = append(out, p)
		}
	}
	return out
}
