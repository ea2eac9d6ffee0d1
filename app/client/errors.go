package client

import (
	"errors"
	"fmt"
	"strings"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
)

// Error is a failed D-Bus call: a service error in openvpn3's format
// (spec §4.1: domain and text) or a standard D-Bus error (name and
// message). Compare it with errors.Is against the Err* kinds below.
type Error struct {
	Op     string          // what was done: the method ("Ready"), "read status", …
	Path   dbus.ObjectPath // the object called
	Name   string          // the D-Bus error name on the wire
	Domain string          // openvpn3 domain ("net.openvpn.v3.error.ready"); Name for standard errors
	Text   string          // the service's text without the "GDBus.Error:<domain>: " prefix

	err error // the godbus error
}

func (e *Error) Error() string {
	text := e.Text
	if text == "" {
		text = e.Domain
	}
	if e.Op == "" {
		return text
	}
	return e.Op + ": " + text
}

func (e *Error) Unwrap() error { return e.err }

// Is matches the kinds below.
func (e *Error) Is(target error) bool {
	k, ok := target.(kind)
	return ok && k.match(e)
}

// kind is a class of service errors that errors.Is recognises.
type kind struct {
	text  string
	match func(*Error) bool
}

func (k kind) Error() string { return k.text }

// Kinds of errors, for errors.Is(err, client.ErrNotReady).
var (
	// ErrNotReady: Ready refused (error domain net.openvpn.v3.error.ready:
	// "Missing user credentials", "Pending web authentication").
	ErrNotReady error = kind{"session not ready", func(e *Error) bool { return e.Domain == api.DomainReady }}

	// ErrObjectGone: the object no longer exists (a removed profile, an
	// ended session).
	ErrObjectGone error = kind{"object gone", func(e *Error) bool {
		switch e.Name {
		case api.ErrNameUnknownMethod:
			return strings.HasPrefix(e.Text, "Object does not exist at path") ||
				strings.HasPrefix(e.Text, "No such interface")
		case "org.freedesktop.DBus.Error.UnknownObject", "org.freedesktop.DBus.Error.UnknownInterface":
			return true
		}
		return false
	}}

	// ErrAccessDenied: the bus policy or the object's ACL refused the
	// caller.
	ErrAccessDenied error = kind{"access denied", func(e *Error) bool {
		return e.Name == api.ErrNameAccessDenied ||
			e.Domain == api.DomainGDBusPP && strings.HasPrefix(e.Text, "Authorization failed")
	}}

	// ErrServiceUnknown: no process owns the service's name and the bus
	// cannot start one: the helper is not running.
	ErrServiceUnknown error = kind{"service not running", func(e *Error) bool {
		return e.Name == api.ErrNameServiceUnknown || e.Name == api.ErrNameNameHasNoOwner
	}}

	// ErrSessionStopped: the session's backend process has ended.
	ErrSessionStopped error = kind{"VPN session is stopped", func(e *Error) bool {
		return strings.Contains(e.Text, "VPN session is stopped")
	}}

	// ErrNoReply: the service did not answer in time.
	ErrNoReply error = kind{"no reply", func(e *Error) bool { return e.Name == api.ErrNameNoReply }}
)

// wrapError turns a godbus error into *Error; other errors (a closed
// connection, a context deadline) are wrapped with op.
func wrapError(op string, path dbus.ObjectPath, err error) error {
	domain, text, ok := api.ParseError(err)
	if !ok {
		return fmt.Errorf("%s: %w", op, err)
	}
	e := &Error{Op: op, Path: path, Domain: domain, Text: strings.TrimSpace(text), err: err}
	var de dbus.Error
	var dep *dbus.Error
	switch {
	case errors.As(err, &dep) && dep != nil:
		e.Name = dep.Name
	case errors.As(err, &de):
		e.Name = de.Name
	}
	return e
}

// ErrorText is the service's text of err when it is (or wraps) an *Error,
// else err.Error(): what a front-end shows a person.
func ErrorText(err error) string {
	var e *Error
	if errors.As(err, &e) {
		if e.Text != "" {
			return e.Text
		}
		return e.Domain
	}
	return err.Error()
}
