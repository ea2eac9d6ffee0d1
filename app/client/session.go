package client

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
)

// Session is a VPN session object of net.openvpn.v3.sessions.
type Session struct {
	Path dbus.ObjectPath
	c    *Client
}

// Session is the handle of the session at path (nothing is checked).
func (c *Client) Session(path dbus.ObjectPath) *Session { return &Session{Path: path, c: c} }

func (c *Client) sessionMgr(ctx context.Context, method string, args []any, out ...any) error {
	return c.Call(ctx, api.ServiceSessions, api.PathSessions, api.InterfaceSessions, method, args, out...)
}

// NewTunnel starts a session (a backend process) from the profile at
// path. The session object may appear only after the reply (openvpn3-linux
// replies first); Start and the session methods wait for it.
func (c *Client) NewTunnel(ctx context.Context, profile dbus.ObjectPath) (*Session, error) {
	var path dbus.ObjectPath
	if err := c.sessionMgr(ctx, "NewTunnel", []any{profile}, &path); err != nil {
		return nil, err
	}
	return c.Session(path), nil
}

// Sessions lists the sessions the caller may see.
func (c *Client) Sessions(ctx context.Context) ([]*Session, error) {
	return c.sessionList(ctx, "FetchAvailableSessions")
}

// LookupSessions lists the sessions started from a profile named name.
func (c *Client) LookupSessions(ctx context.Context, configName string) ([]*Session, error) {
	return c.sessionList(ctx, "LookupConfigName", configName)
}

// LookupInterface finds the session whose tunnel device is dev.
func (c *Client) LookupInterface(ctx context.Context, dev string) (*Session, error) {
	var p dbus.ObjectPath
	if err := c.sessionMgr(ctx, "LookupInterface", []any{dev}, &p); err != nil {
		return nil, err
	}
	return c.Session(p), nil
}

// ManagedInterfaces lists the tunnel devices of the visible sessions.
func (c *Client) ManagedInterfaces(ctx context.Context) ([]string, error) {
	var devs []string
	err := c.sessionMgr(ctx, "FetchManagedInterfaces", nil, &devs)
	return devs, err
}

func (c *Client) sessionList(ctx context.Context, method string, args ...any) ([]*Session, error) {
	var paths []dbus.ObjectPath
	if err := c.sessionMgr(ctx, method, args, &paths); err != nil {
		return nil, err
	}
	out := make([]*Session, len(paths))
	for i, p := range paths {
		out[i] = c.Session(p)
	}
	return out, nil
}

// Endpoint is the connected_to property: the server a session talks to.
type Endpoint struct {
	Proto string // "UDP", "TCP", … as the backend reports it
	IP    string
	Port  uint32
}

// String is proto:ip:port ([ip] for IPv6), "" when not connected.
func (e Endpoint) String() string {
	if e.IP == "" {
		return ""
	}
	ip := e.IP
	if strings.Contains(ip, ":") {
		ip = "[" + ip + "]"
	}
	s := e.Proto + ":" + ip
	if e.Port != 0 {
		s += ":" + strconv.FormatUint(uint64(e.Port), 10)
	}
	return s
}

// SessionInfo is every property of a session (spec §2.4) except the
// statistics (Session.Statistics), which need the backend.
type SessionInfo struct {
	Path              dbus.ObjectPath
	Owner             uint32
	ACL               []uint32
	PublicAccess      bool
	RestrictLogAccess bool
	Created           time.Time
	ConfigPath        dbus.ObjectPath
	ConfigName        string
	BackendPID        uint32
	Status            api.Status
	DCO               bool
	DeviceName        string // "" before the tunnel is up
	DevicePath        dbus.ObjectPath
	SessionName       string
	ConnectedTo       Endpoint
	LogVerbosity      uint32
}

// Info reads the session's properties.
func (s *Session) Info(ctx context.Context) (SessionInfo, error) {
	props, err := s.c.GetAllProperties(ctx, api.ServiceSessions, s.Path, api.InterfaceSessions)
	if err != nil {
		return SessionInfo{}, err
	}
	in := SessionInfo{Path: s.Path}
	var created uint64
	storeProp(props, "owner", &in.Owner)
	storeProp(props, "acl", &in.ACL)
	storeProp(props, "public_access", &in.PublicAccess)
	storeProp(props, "restrict_log_access", &in.RestrictLogAccess)
	storeProp(props, "session_created", &created)
	storeProp(props, "config_path", &in.ConfigPath)
	storeProp(props, "config_name", &in.ConfigName)
	storeProp(props, "backend_pid", &in.BackendPID)
	storeProp(props, "dco", &in.DCO)
	storeProp(props, "device_name", &in.DeviceName)
	storeProp(props, "session_name", &in.SessionName)
	storeProp(props, "log_verbosity", &in.LogVerbosity)
	in.Created = unixTime(created)
	// device_path is declared s but carries o (spec §2.4): take either.
	switch v := props["device_path"].Value().(type) {
	case dbus.ObjectPath:
		in.DevicePath = v
	case string:
		in.DevicePath = dbus.ObjectPath(v)
	}
	if v, ok := props["status"].Value().([]any); ok {
		in.Status = statusOf(v)
	}
	if v, ok := props["connected_to"].Value().([]any); ok && len(v) == 3 {
		in.ConnectedTo.Proto, _ = v[0].(string)
		in.ConnectedTo.IP, _ = v[1].(string)
		in.ConnectedTo.Port, _ = v[2].(uint32)
	}
	return in, nil
}

func statusOf(v []any) api.Status {
	if len(v) != 3 {
		return api.Status{}
	}
	major, _ := v[0].(uint32)
	minor, _ := v[1].(uint32)
	msg, _ := v[2].(string)
	return api.Status{Major: api.StatusMajor(major), Minor: api.StatusMinor(minor), Message: msg}
}

// Get reads one property into out.
func (s *Session) Get(ctx context.Context, name string, out any) error {
	return s.c.GetProperty(ctx, api.ServiceSessions, s.Path, api.InterfaceSessions, name, out)
}

// Set writes one property: public_access, restrict_log_access, dco (bool),
// log_verbosity (uint32).
func (s *Session) Set(ctx context.Context, name string, value any) error {
	return s.c.SetProperty(ctx, api.ServiceSessions, s.Path, api.InterfaceSessions, name, value)
}

// Status reads the session's last status.
func (s *Session) Status(ctx context.Context) (api.Status, error) {
	var st struct {
		Major, Minor uint32
		Message      string
	}
	if err := s.Get(ctx, "status", &st); err != nil {
		return api.Status{}, err
	}
	return api.Status{Major: api.StatusMajor(st.Major), Minor: api.StatusMinor(st.Minor), Message: st.Message}, nil
}

// Statistics reads the traffic counters (BYTES_IN, PACKETS_OUT, …).
func (s *Session) Statistics(ctx context.Context) (map[string]int64, error) {
	stats := map[string]int64{}
	err := s.Get(ctx, "statistics", &stats)
	return stats, err
}

// ConnectedTo reads the server the session is connected to.
func (s *Session) ConnectedTo(ctx context.Context) (Endpoint, error) {
	var e Endpoint
	err := s.Get(ctx, "connected_to", &e)
	return e, err
}

// DeviceName reads the tunnel device's name ("" before it exists).
func (s *Session) DeviceName(ctx context.Context) (string, error) {
	var d string
	err := s.Get(ctx, "device_name", &d)
	return d, err
}

// SetLogVerbosity sets the session's log level (0..6) for log forwards.
func (s *Session) SetLogVerbosity(ctx context.Context, level uint32) error {
	if level > api.MaxLogLevel {
		return fmt.Errorf("log level %d: the levels are 0 to %d", level, api.MaxLogLevel)
	}
	return s.Set(ctx, "log_verbosity", level)
}

// SetDCO asks for data channel offload before Connect.
func (s *Session) SetDCO(ctx context.Context, on bool) error { return s.Set(ctx, "dco", on) }

func (s *Session) call(ctx context.Context, method string, args []any, out ...any) error {
	return s.c.Call(ctx, api.ServiceSessions, s.Path, api.InterfaceSessions, method, args, out...)
}

// Ready fails with ErrNotReady while the session needs input.
func (s *Session) Ready(ctx context.Context) error { return s.call(ctx, "Ready", nil) }

// Connect starts connecting; the outcome arrives as status changes.
func (s *Session) Connect(ctx context.Context) error { return s.call(ctx, "Connect", nil) }

// Pause pauses a connected session.
func (s *Session) Pause(ctx context.Context, reason string) error {
	return s.call(ctx, "Pause", []any{reason})
}

// Resume resumes a paused session.
func (s *Session) Resume(ctx context.Context) error { return s.call(ctx, "Resume", nil) }

// Restart reconnects the session.
func (s *Session) Restart(ctx context.Context) error { return s.call(ctx, "Restart", nil) }

// Disconnect ends the session and removes it.
func (s *Session) Disconnect(ctx context.Context) error { return s.call(ctx, "Disconnect", nil) }

// Grant gives uid access to the session.
func (s *Session) Grant(ctx context.Context, uid uint32) error {
	return s.call(ctx, "AccessGrant", []any{uid})
}

// Revoke takes uid's access away.
func (s *Session) Revoke(ctx context.Context, uid uint32) error {
	return s.call(ctx, "AccessRevoke", []any{uid})
}

// LogForward switches forwarding of the backend's Log and StatusChange
// signals to this connection on or off. Follow does both for you.
func (s *Session) LogForward(ctx context.Context, enable bool) error {
	return s.call(ctx, "LogForward", []any{enable})
}

// Slot is one entry of the session's user-input queue (spec §6.5).
type Slot struct {
	Type        api.AttentionType
	Group       api.AttentionGroup
	ID          uint32
	Name        string // the backend's variable name: username, password, static_challenge, …
	Description string // what to show the person: "Auth User name", a challenge text
	Hidden      bool   // do not echo the answer
}

// PendingInput lists the unanswered slots of type CREDENTIALS, in the
// order the backend queued them (the other types need no person).
func (s *Session) PendingInput(ctx context.Context) ([]Slot, error) {
	var groups []struct{ Type, Group uint32 }
	if err := s.call(ctx, "UserInputQueueGetTypeGroup", nil, &groups); err != nil {
		return nil, err
	}
	var out []Slot
	for _, tg := range groups {
		if api.AttentionType(tg.Type) != api.AttentionTypeCredentials {
			continue
		}
		var ids []uint32
		if err := s.call(ctx, "UserInputQueueCheck", []any{tg.Type, tg.Group}, &ids); err != nil {
			return nil, err
		}
		for _, id := range ids {
			var typ, group, sid uint32
			var sl Slot
			if err := s.call(ctx, "UserInputQueueFetch", []any{tg.Type, tg.Group, id},
				&typ, &group, &sid, &sl.Name, &sl.Description, &sl.Hidden); err != nil {
				return nil, err
			}
			sl.Type, sl.Group, sl.ID = api.AttentionType(typ), api.AttentionGroup(group), sid
			out = append(out, sl)
		}
	}
	return out, nil
}

// Provide answers one slot.
func (s *Session) Provide(ctx context.Context, slot Slot, value string) error {
	return s.call(ctx, "UserInputProvide", []any{uint32(slot.Type), uint32(slot.Group), slot.ID, value})
}

// Close disconnects the session and returns once it is gone. A session
// whose backend already ended refuses Disconnect ("VPN session is
// stopped") until the session manager has noticed; Close then waits for
// its SESS_DESTROYED (or for the object to vanish) until ctx ends.
func (s *Session) Close(ctx context.Context) error {
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	events, subErr := s.c.SessionManagerEvents(sctx)
	err := s.Disconnect(ctx)
	if err == nil || errors.Is(err, ErrObjectGone) {
		return nil
	}
	if !errors.Is(err, ErrSessionStopped) || subErr != nil {
		return err
	}
	poll := time.NewTicker(statusPoll)
	defer poll.Stop()
	for {
		if _, serr := s.Status(ctx); errors.Is(serr, ErrObjectGone) {
			return nil
		}
		select {
		case ev, ok := <-events:
			if !ok {
				return err
			}
			if ev.Path == s.Path && ev.Type == api.SessionEventDestroyed {
				return nil
			}
		case <-poll.C:
		case <-ctx.Done():
			return fmt.Errorf("%w (and it was not removed: %w)", err, ctx.Err())
		}
	}
}
