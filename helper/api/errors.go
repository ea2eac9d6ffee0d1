package api

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/godbus/dbus/v5"
)

// Error domains used by the services (spec §4.2). A domain is not an error
// name: Error turns it into GLib's "unmapped GError" wire name.
const (
	DomainGDBusPP        = "net.openvpn.gdbuspp"                  // method exceptions, method authorization failures
	DomainRequest        = "net.openvpn.gdbuspp.request"          // anything else escaping a method
	DomainReady          = "net.openvpn.v3.error.ready"           // session/backend Ready: not ready
	DomainClient         = "net.openvpn.v3.error.client"          // backend client errors
	DomainBERegistration = "net.openvpn.v3.error.be-registration" // backend RegistrationConfirmation
	DomainNetCfg         = "net.openvpn.v3.netcfg.error"
	DomainNetCfgDevice   = "net.openvpn.v3.netcfg.device.error" // declared upstream, unused
	DomainLog            = "net.openvpn.v3.log.error"
)

const (
	unmappedPrefix = "org.gtk.GDBus.UnmappedGError.Quark._"
	unmappedSuffix = ".Code36" // 36 = G_IO_ERROR_DBUS_ERROR
	messagePrefix  = "GDBus.Error:"
)

// ErrorName is the wire error name GLib gives an error of this domain:
// letters and digits are kept, every other byte becomes "_" + two hex digits.
func ErrorName(domain string) string {
	var b strings.Builder
	b.WriteString(unmappedPrefix)
	for i := 0; i < len(domain); i++ {
		c := domain[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "_%02x", c)
		}
	}
	b.WriteString(unmappedSuffix)
	return b.String()
}

// DomainFromErrorName decodes a name built by ErrorName back to its domain.
func DomainFromErrorName(name string) (string, bool) {
	s, ok := strings.CutPrefix(name, unmappedPrefix)
	if !ok {
		return "", false
	}
	s, ok = strings.CutSuffix(s, unmappedSuffix)
	if !ok {
		return "", false
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '_' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", false
		}
		v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", false
		}
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), true
}

// Error is a service error as gdbuspp sends it (spec §4.1): the unmapped-quark
// name of the domain, and the message "GDBus.Error:<domain>: <text>".
func Error(domain, text string) *dbus.Error {
	return dbus.NewError(ErrorName(domain), []any{messagePrefix + domain + ": " + text})
}

// Errorf is Error with a formatted text.
func Errorf(domain, format string, args ...any) *dbus.Error {
	return Error(domain, fmt.Sprintf(format, args...))
}

// ParseError extracts the domain and the text of a D-Bus error. For errors
// in the gdbuspp format it returns the domain and the bare text; for other
// D-Bus errors the error name and the message; ok is false if err is not a
// D-Bus error at all.
func ParseError(err error) (domain, text string, ok bool) {
	var de dbus.Error
	var dep *dbus.Error
	switch {
	case errors.As(err, &dep) && dep != nil:
		de = *dep
	case errors.As(err, &de):
	default:
		return "", "", false
	}
	msg := ""
	if len(de.Body) > 0 {
		msg, _ = de.Body[0].(string)
	}
	if rest, ok := strings.CutPrefix(msg, messagePrefix); ok {
		if d, t, ok := strings.Cut(rest, ": "); ok && !strings.ContainsAny(d, " \n") {
			return d, t, true
		}
	}
	if d, ok := DomainFromErrorName(de.Name); ok {
		return d, msg, true
	}
	return de.Name, msg, true
}

// ErrorText is the human text of any error: for D-Bus errors the message
// without the GDBus prefix (or the name when there is no message), otherwise
// err.Error(). Front-ends print it.
func ErrorText(err error) string {
	if err == nil {
		return ""
	}
	d, t, ok := ParseError(err)
	if !ok {
		return err.Error()
	}
	if t == "" {
		return d
	}
	return strings.TrimSpace(t)
}

// IsDomain reports whether err is a D-Bus error of this domain.
func IsDomain(err error, domain string) bool {
	d, _, ok := ParseError(err)
	return ok && d == domain
}

// Standard D-Bus error names GDBus uses (spec §4.2).
const (
	ErrNameUnknownMethod  = "org.freedesktop.DBus.Error.UnknownMethod"
	ErrNameInvalidArgs    = "org.freedesktop.DBus.Error.InvalidArgs"
	ErrNameAccessDenied   = "org.freedesktop.DBus.Error.AccessDenied"
	ErrNameFailed         = "org.freedesktop.DBus.Error.Failed"
	ErrNameServiceUnknown = "org.freedesktop.DBus.Error.ServiceUnknown"
	ErrNameNameHasNoOwner = "org.freedesktop.DBus.Error.NameHasNoOwner"
	ErrNameNoReply        = "org.freedesktop.DBus.Error.NoReply"
)

func stdError(name, text string) *dbus.Error { return dbus.NewError(name, []any{text}) }

// ErrUnknownObject is GDBus's reply for a path where nothing is exported.
func ErrUnknownObject(path dbus.ObjectPath) *dbus.Error {
	return stdError(ErrNameUnknownMethod, "Object does not exist at path “"+string(path)+"”")
}

// ErrUnknownInterface is GDBus's reply for an interface the object lacks.
func ErrUnknownInterface(iface string, path dbus.ObjectPath) *dbus.Error {
	return stdError(ErrNameUnknownMethod, "No such interface “"+iface+"” on object at path "+string(path))
}

// ErrUnknownMethod is GDBus's reply for a method the interface lacks.
func ErrUnknownMethod(method string) *dbus.Error {
	return stdError(ErrNameUnknownMethod, "No such method “"+method+"”")
}

// ErrSignature is GDBus's reply when the arguments do not have the declared
// types; got and want are the bare signatures ("s", "").
func ErrSignature(got, want string) *dbus.Error {
	return stdError(ErrNameInvalidArgs, "Type of message, “("+got+")”, does not match expected type “("+want+")”")
}

// ErrNoSuchInterface is GDBus's reply to Properties calls naming an interface
// the object lacks.
func ErrNoSuchInterface(iface string) *dbus.Error {
	return stdError(ErrNameInvalidArgs, "No such interface “"+iface+"”")
}

// ErrNoSuchProperty is GDBus's reply to Get/Set of an unknown property.
func ErrNoSuchProperty(name string) *dbus.Error {
	return stdError(ErrNameInvalidArgs, "No such property “"+name+"”")
}

// ErrNotWritable is GDBus's reply to Set of a read-only property.
func ErrNotWritable(name string) *dbus.Error {
	return stdError(ErrNameInvalidArgs, "Property “"+name+"” is not writable")
}

// ErrNotReadable is GDBus's reply to Get of a write-only property.
func ErrNotReadable(name string) *dbus.Error {
	return stdError(ErrNameInvalidArgs, "Property “"+name+"” is not readable")
}

// ErrPropertyType is GDBus's reply to Set with a variant of the wrong type.
func ErrPropertyType(name, want, got string) *dbus.Error {
	return stdError(ErrNameInvalidArgs, "Error setting property “"+name+"”: Expected type “"+want+"” but got “"+got+"”")
}

// ErrAccessDenied is the reply to a property Get/Set the object refused.
func ErrAccessDenied(text string) *dbus.Error { return stdError(ErrNameAccessDenied, text) }

// ErrFailed is the reply to a property Get/Set that failed.
func ErrFailed(text string) *dbus.Error { return stdError(ErrNameFailed, text) }

// IsErrorName reports whether err is a D-Bus error with this name.
func IsErrorName(err error, name string) bool {
	var dep *dbus.Error
	if errors.As(err, &dep) && dep != nil {
		return dep.Name == name
	}
	var de dbus.Error
	return errors.As(err, &de) && de.Name == name
}
