// Package client is the typed Go client of the OpenVPN 3 Linux D-Bus
// services (net.openvpn.v3.configuration, .sessions, .log, .netcfg) that the
// ovpn3go front-ends share: the ovpn3 command line and the tray.
//
// It uses only the documented interfaces (spec/dbus-api.md), so it drives
// openvpn3-linux's own services as well as ovpn3-helper. It has four parts:
//
//   - Profiles (Client.ImportProfile, Client.Profiles, Profile.Info, …) and
//     sessions (Client.NewTunnel, Session.Info, Session.Pause, …) as handles
//     on object paths; every call takes a context and is bounded by
//     Client.CallTimeout.
//   - Session.Start, openvpn3's start loop: fill the user-input queue through
//     a Prompter (the CLI reads the terminal, the tray shows a dialog), Ready,
//     Connect, and wait for the outcome, again when the server asks for more.
//   - Signals as channels (Client.SessionManagerEvents,
//     Client.AttentionRequired, Session.Follow via LogForward,
//     Client.ServiceOwners), each closed when its context ends.
//   - Errors: every failed D-Bus call comes back as *Error with the openvpn3
//     error domain and text; errors.Is matches it against ErrNotReady,
//     ErrObjectGone, ErrAccessDenied, ErrServiceUnknown, ErrSessionStopped.
package client

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
)

// DefaultCallTimeout bounds one D-Bus call unless Client.CallTimeout says
// otherwise. NewTunnel of openvpn3-linux alone takes 0.7 s; a backend start
// or a Disconnect of a busy session can take seconds.
const DefaultCallTimeout = 30 * time.Second

// Client is a connection to the services. Its methods are safe for
// concurrent use.
type Client struct {
	conn    *dbus.Conn
	ownConn bool

	mu       sync.Mutex
	forwards map[dbus.ObjectPath]int // live Follow calls per session
	// switchingOff holds, per session, the LogForward(false) on its way
	// (closed when answered): the next LogForward(true) goes after it.
	switchingOff map[dbus.ObjectPath]chan struct{}
	background   sync.WaitGroup // those LogForward(false) calls; Close waits
	closing      bool           // Close was called: no more of them
	// unforwardTimeout replaces the constant of that name (tests).
	unforwardTimeout time.Duration

	// CallTimeout bounds every method call (0: DefaultCallTimeout). Set
	// it before using the client.
	CallTimeout time.Duration
}

// Connect opens a private connection to the system bus
// (DBUS_SYSTEM_BUS_ADDRESS is honoured). Close closes it.
func Connect(ctx context.Context) (*Client, error) {
	conn, err := dbus.ConnectSystemBus(dbus.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("cannot connect to the system bus: %w", err)
	}
	return &Client{conn: conn, ownConn: true}, nil
}

// New wraps an existing bus connection; Close leaves it open.
func New(conn *dbus.Conn) *Client { return &Client{conn: conn} }

// Conn is the underlying bus connection.
func (c *Client) Conn() *dbus.Conn { return c.conn }

// Close closes the connection if Connect opened it. Subscriptions end
// (their channels close) when the connection closes. It returns once the
// log forwarding switched off in the background (after Start, Follow) is
// off: answered, or, on a connection Close closes, ended with it (the
// session manager stops forwarding to a connection that left the bus).
func (c *Client) Close() error {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	var err error
	if c.ownConn {
		err = c.conn.Close()
	}
	c.background.Wait()
	return err
}

func (c *Client) timeout() time.Duration {
	if c.CallTimeout > 0 {
		return c.CallTimeout
	}
	return DefaultCallTimeout
}

// Call calls iface.method on path of service with args and stores the
// reply in out (pointers). Failures are *Error. The typed methods of this
// package cover the documented API; Call is for the rest (service
// administration commands).
func (c *Client) Call(ctx context.Context, service string, path dbus.ObjectPath, iface, method string, args []any, out ...any) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()
	call := c.conn.Object(service, path).CallWithContext(ctx, iface+"."+method, 0, args...)
	if call.Err != nil {
		return wrapError(method, path, call.Err)
	}
	if len(out) == 0 {
		return nil
	}
	if err := call.Store(out...); err != nil {
		return fmt.Errorf("%s on %s: unexpected reply: %w", method, path, err)
	}
	return nil
}

// GetProperty reads one property of iface into out (a pointer).
func (c *Client) GetProperty(ctx context.Context, service string, path dbus.ObjectPath, iface, name string, out any) error {
	var v dbus.Variant
	if err := c.Call(ctx, service, path, api.InterfaceProperties, "Get", []any{iface, name}, &v); err != nil {
		if e, ok := err.(*Error); ok {
			e.Op = "read " + name
		}
		return err
	}
	if err := dbus.Store([]any{v.Value()}, out); err != nil {
		return fmt.Errorf("property %s of %s: %w", name, path, err)
	}
	return nil
}

// SetProperty writes one property of iface; value's Go type gives the
// D-Bus type (bool b, uint32 u, string s).
func (c *Client) SetProperty(ctx context.Context, service string, path dbus.ObjectPath, iface, name string, value any) error {
	err := c.Call(ctx, service, path, api.InterfaceProperties, "Set", []any{iface, name, dbus.MakeVariant(value)})
	if e, ok := err.(*Error); ok {
		e.Op = "set " + name
	}
	return err
}

// GetAllProperties reads every property of iface.
func (c *Client) GetAllProperties(ctx context.Context, service string, path dbus.ObjectPath, iface string) (map[string]dbus.Variant, error) {
	var props map[string]dbus.Variant
	if err := c.Call(ctx, service, path, api.InterfaceProperties, "GetAll", []any{iface}, &props); err != nil {
		return nil, err
	}
	return props, nil
}

// ServiceVersion reads the version property of a service's manager object
// (net.openvpn.v3.configuration, .sessions, .log, .netcfg, .backends).
func (c *Client) ServiceVersion(ctx context.Context, service string) (string, error) {
	path, ok := managerPaths[service]
	if !ok {
		return "", fmt.Errorf("unknown service %q", service)
	}
	var v string
	if err := c.GetProperty(ctx, service, path, service, "version", &v); err != nil {
		return "", err
	}
	return v, nil
}

// Services are the well-known names ServiceVersion knows, in the order
// openvpn3-admin lists them.
var Services = []string{api.ServiceConfiguration, api.ServiceSessions, api.ServiceLog, api.ServiceNetCfg, api.ServiceBackends}

var managerPaths = map[string]dbus.ObjectPath{
	api.ServiceConfiguration: api.PathConfiguration,
	api.ServiceSessions:      api.PathSessions,
	api.ServiceLog:           api.PathLog,
	api.ServiceNetCfg:        api.PathNetCfg,
	api.ServiceBackends:      api.PathBackends,
}

// storeProp copies props[name] into out, if present and of the right type.
func storeProp(props map[string]dbus.Variant, name string, out any) {
	if v, ok := props[name]; ok {
		_ = dbus.Store([]any{v.Value()}, out)
	}
}

func unixTime(ts uint64) time.Time {
	if ts == 0 {
		return time.Time{}
	}
	return time.Unix(int64(ts), 0)
}
