package busobj

import (
	"context"
	"errors"
	"io"
	"sync"

	"github.com/godbus/dbus/v5"
)

// Arg is one named argument of a method or signal.
type Arg struct {
	Name string
	Type string // a single complete D-Bus type, e.g. "s", "a{sv}", "(uus)"
}

// Method is one method of an application interface.
type Method struct {
	Name string
	In   []Arg
	Out  []Arg
	// Handler runs the call. c.Args holds the decoded arguments, already
	// checked against In. Basic types arrive as their Go types (string,
	// uint32, dbus.ObjectPath, dbus.Variant, []string, map[string]dbus.Variant
	// …); structs and arrays of structs arrive as []any / [][]any — use
	// dbus.Store(c.Args[i:i+1], &typed) to convert them. The returned values must match Out (a mismatch is
	// a programming error and is answered with org.freedesktop.DBus.Error.Failed).
	// Errors: a *dbus.Error (see api.Error) is sent unchanged; any other
	// error is sent as domain net.openvpn.gdbuspp.request with err.Error().
	Handler func(c *Call) ([]any, error)
	// OutOptional lets the handler reply with no values at all instead of
	// Out (netcfg's Establish returns no fd in DCO mode).
	OutOptional bool
}

// Signal is a signal declared in introspection data. Emitting is not tied
// to the declaration: services also send undeclared signals (Log).
type Signal struct {
	Name string
	Args []Arg
}

// Property is one property of an application interface.
type Property struct {
	Name string
	Type string // declared type; Set values are checked against it
	// Get returns the current value. An error makes Get fail (a *dbus.Error
	// is sent unchanged, others as org.freedesktop.DBus.Error.Failed) and
	// drops the property from GetAll. Get must not be nil.
	Get func(c *Call) (any, error)
	// Set stores a new value, already checked to be of Type. nil means the
	// property is read-only. After a successful Set the server broadcasts
	// PropertiesChanged with the new value.
	Set func(c *Call, value any) error
}

// Interface is an object's one application interface plus its
// authorization hook.
type Interface struct {
	Name       string
	Methods    []Method
	Signals    []Signal
	Properties []Property
	// Authorize, if not nil, runs before every method call (c.Op == OpMethod)
	// and every property Get or Set (OpGet, OpSet; c.Member is the property
	// name) of this interface, after the caller's credentials are known.
	// A nil result allows the operation. A non-nil error rejects it:
	//  - method calls: a *dbus.Error is sent unchanged; any other error is
	//    sent in domain net.openvpn.gdbuspp with err.Error() as text, or with
	//    "Authorization failed for <caller> performing method call
	//    <iface>.<Method> in object <path>" when that text is empty (Deny("")).
	//  - property Get/Set: org.freedesktop.DBus.Error.AccessDenied with the
	//    error's text. GetAll silently omits denied properties.
	Authorize func(c *Call) error
}

// Deny is a convenience for Authorize hooks: the rejection text (empty
// means gdbuspp's default text).
func Deny(text string) error { return errors.New(text) }

// Op is what a Call does.
type Op int

const (
	OpMethod Op = iota // an application method call
	OpGet              // Properties.Get, or one property of GetAll
	OpSet              // Properties.Set
)

func (o Op) String() string {
	switch o {
	case OpMethod:
		return "method call"
	case OpGet:
		return "property get"
	case OpSet:
		return "property set"
	}
	return "unknown"
}

// Call is one incoming request as seen by an authorization hook, a method
// handler or a property accessor.
type Call struct {
	// Ctx is cancelled when the server closes or the caller leaves the
	// bus. Handlers pass it to every blocking call they make.
	Ctx context.Context
	// Server is the server that received the call (for Emit, Export, …).
	Server *Server

	Path      dbus.ObjectPath
	Interface string
	Op        Op
	Member    string // method name, or property name for OpGet/OpSet
	Args      []any  // method arguments (nil for property access)

	// Sender is the caller's unique bus name; UID and PID come from the bus
	// (GetConnectionCredentials), cached per unique name.
	Sender string
	UID    uint32
	PID    uint32
	// Interactive is true when the message carried the
	// ALLOW_INTERACTIVE_AUTHORIZATION flag (polkit may ask the user).
	Interactive bool

	// Message is the raw message (read only).
	Message *dbus.Message

	mu    sync.Mutex
	after []func() // AfterReply's, in order
}

// CloseAfterReply registers something (typically an *os.File whose fd is
// returned as a dbus.UnixFD) to be closed once the reply has been written to
// the bus, or when the reply cannot be sent. It is how handlers hand out file
// descriptors without leaking their own copy.
func (c *Call) CloseAfterReply(cl io.Closer) { c.AfterReply(func() { _ = cl.Close() }) }

// AfterReply registers f to run once the reply has been written to the
// bus, or when the reply cannot be sent: work the caller need not wait
// for.
func (c *Call) AfterReply(f func()) {
	c.mu.Lock()
	c.after = append(c.after, f)
	c.mu.Unlock()
}

func (c *Call) runAfterReply() {
	c.mu.Lock()
	after := c.after
	c.after = nil
	c.mu.Unlock()
	for _, f := range after {
		f()
	}
}

// OwnsName reports whether the caller is the current owner of a bus name
// (e.g. api.BackendBusName(c.PID)).
func (c *Call) OwnsName(name string) bool {
	owner, err := c.Server.NameOwner(c.Ctx, name)
	return err == nil && owner == c.Sender
}
