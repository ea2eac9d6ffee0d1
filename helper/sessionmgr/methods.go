package sessionmgr

import (
	"context"
	"errors"
	"slices"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
)

// The behaviour of the manager and session methods, independent of how
// they are exported. uid is the caller's UID.

// FetchAvailableSessions lists the sessions uid may see.
func (m *Manager) FetchAvailableSessions(uid uint32) []dbus.ObjectPath {
	out := []dbus.ObjectPath{}
	for _, s := range m.list() {
		if s.access().visible(uid) {
			out = append(out, s.path)
		}
	}
	return out
}

// FetchManagedInterfaces lists the device names of the sessions uid may
// see ("" for sessions without a device yet).
func (m *Manager) FetchManagedInterfaces(uid uint32) []string {
	out := []string{}
	for _, s := range m.list() {
		if s.access().visible(uid) {
			out = append(out, m.deviceName(s))
		}
	}
	return out
}

// LookupConfigName lists the visible sessions started from a profile of
// this name.
func (m *Manager) LookupConfigName(uid uint32, name string) []dbus.ObjectPath {
	out := []dbus.ObjectPath{}
	for _, s := range m.list() {
		if s.configName == name && s.access().visible(uid) {
			out = append(out, s.path)
		}
	}
	return out
}

// LookupInterface finds the visible session using a device.
func (m *Manager) LookupInterface(uid uint32, device string) (dbus.ObjectPath, error) {
	var found []dbus.ObjectPath
	for _, s := range m.list() {
		if device != "" && s.access().visible(uid) && m.deviceName(s) == device {
			found = append(found, s.path)
		}
	}
	switch len(found) {
	case 0:
		return "", errGeneric("Interface not found")
	case 1:
		return found[0], nil
	default:
		return "", errGeneric("More than one interface found")
	}
}

// deviceName asks the backend for its device; an unreachable backend has
// none.
func (m *Manager) deviceName(s *session) string {
	v, err := m.backendProperty(s, "device_name")
	if err != nil {
		return ""
	}
	name, _ := v.Value().(string)
	return name
}

func (m *Manager) callCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(m.ctx, m.callTO)
}

// forward calls a backend method and passes its error on.
func (m *Manager) forward(s *session, method string, out []any, args ...any) error {
	ctx, cancel := m.callCtx()
	defer cancel()
	return m.forwardReply(s, method, m.backendObj(s).CallWithContext(ctx, api.InterfaceBackends+"."+method, 0, args...), out)
}

// forwardReply passes on the backend's reply to method (a finished call),
// storing it in out. A backend that did not answer within CallTimeout is
// killed (forwardedMethods are not pinged first); the timeout is the
// manager's own, never the front-end's, so a caller leaving cannot pass
// for a hung backend.
func (m *Manager) forwardReply(s *session, method string, call *dbus.Call, out []any) error {
	m.noteAnswer(s, call.Err)
	if call.Err != nil {
		if m.isGone(s) {
			return errGeneric(textStopped)
		}
		if errors.Is(call.Err, context.DeadlineExceeded) && m.ctx.Err() == nil {
			return m.unanswered(s, method, call.Err)
		}
		return backendError(call.Err)
	}
	if len(out) > 0 {
		if err := call.Store(out...); err != nil {
			return errRequest("Unexpected reply from the VPN backend: " + err.Error())
		}
	}
	return nil
}

func (m *Manager) isGone(s *session) bool {
	select {
	case <-s.gone:
		return true
	default:
		return false
	}
}

// backendProperty reads one property of the session's backend.
func (m *Manager) backendProperty(s *session, name string) (dbus.Variant, error) {
	ctx, cancel := m.callCtx()
	defer cancel()
	var v dbus.Variant
	err := m.backendObj(s).CallWithContext(ctx, api.InterfaceProperties+".Get", 0, api.InterfaceBackends, name).Store(&v)
	m.noteAnswer(s, err)
	if err != nil {
		return dbus.Variant{}, err
	}
	return v, nil
}

// Ready forwards Ready.
func (m *Manager) Ready(s *session) error { return m.forward(s, "Ready", nil) }

// Connect applies a pending DCO change, locks DCO, takes over the backend's
// log level and starts the connection.
func (m *Manager) Connect(s *session) error {
	s.mu.Lock()
	dcoSet, dco := s.dcoSet, s.dco
	s.dcoLocked = true
	s.connectCalled = true
	s.mu.Unlock()
	ctx, cancel := m.callCtx()
	defer cancel()
	obj := m.backendObj(s)
	if dcoSet {
		call := obj.CallWithContext(ctx, api.InterfaceProperties+".Set", 0, api.InterfaceBackends, "dco", dbus.MakeVariant(dco))
		if errors.Is(call.Err, context.DeadlineExceeded) {
			return m.forwardReply(s, "Set", call, nil)
		}
		if call.Err != nil {
			m.log.Warn("set backend dco", "session", s.path, "err", call.Err)
		}
	}
	m.sessionLog(s, api.LogCategoryInfo, "Starting connection - "+string(s.path))
	// The log level is read while Connect runs: neither waits for the
	// other, and the backend's log level does not change on Connect.
	level := obj.GoWithContext(ctx, api.InterfaceProperties+".Get", 0, nil, api.InterfaceBackends, "log_level")
	err := m.forwardReply(s, "Connect", obj.CallWithContext(ctx, api.InterfaceBackends+".Connect", 0), nil)
	select {
	case <-level.Done:
		var v dbus.Variant
		if level.Store(&v) == nil {
			if lvl, ok := v.Value().(uint32); ok {
				s.mu.Lock()
				s.logVerbosity = lvl
				s.mu.Unlock()
			}
		}
	case <-ctx.Done():
	}
	return err
}

// Disconnect stops the backend and returns once the session is gone.
func (m *Manager) Disconnect(s *session) error {
	m.stopSession(m.ctx, s)
	return nil
}

// AccessGrant adds uid to the ACL (owner only; checked by the caller).
func (m *Manager) AccessGrant(s *session, uid uint32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if slices.Contains(s.acl, uid) {
		return errGeneric("UID already granted access")
	}
	s.acl = append(s.acl, uid)
	return nil
}

// AccessRevoke removes uid from the ACL.
func (m *Manager) AccessRevoke(s *session, uid uint32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.Index(s.acl, uid)
	if i < 0 {
		return errGeneric("UID not granted access")
	}
	s.acl = slices.Delete(s.acl, i, i+1)
	return nil
}

// statistics reads the backend's counters.
func (m *Manager) statistics(s *session) (map[string]int64, error) {
	v, err := m.backendProperty(s, "statistics")
	if err != nil {
		return nil, err
	}
	st, ok := v.Value().(map[string]int64)
	if !ok {
		return map[string]int64{}, nil
	}
	return st, nil
}

// connectedTo maps the backend's connection (sssu) to (ssu): protocol,
// server IP, port.
func (m *Manager) connectedTo(s *session) (connectedTo, error) {
	v, err := m.backendProperty(s, "connection")
	if err != nil {
		return connectedTo{}, err
	}
	var c struct {
		Proto, Host, IP string
		Port            uint32
	}
	if err := dbus.Store([]any{v.Value()}, &c); err != nil {
		return connectedTo{}, nil
	}
	return connectedTo{Proto: c.Proto, IP: c.IP, Port: c.Port}, nil
}

// connectedTo is the (ssu) connected_to property.
type connectedTo struct {
	Proto, IP string
	Port      uint32
}
