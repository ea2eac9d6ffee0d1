package api

import (
	"crypto/rand"
	"fmt"
	"strings"

	"github.com/godbus/dbus/v5"
)

// NewUUID returns a random (version 4) UUID in lower-case text form.
func NewUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// Each service replaces the dashes of a UUID by its own letter so that the
// UUID is a valid path element (spec §1.2).
const (
	configLetter  = "x"
	sessionLetter = "s"
	tokenLetter   = "t"
	logLetter     = "l"
)

// ConfigPath is the profile object path for a UUID.
func ConfigPath(uuid string) dbus.ObjectPath {
	return PathConfiguration + "/" + dbus.ObjectPath(strings.ReplaceAll(uuid, "-", configLetter))
}

// SessionPath is the session object path for a UUID.
func SessionPath(uuid string) dbus.ObjectPath {
	return PathSessions + "/" + dbus.ObjectPath(strings.ReplaceAll(uuid, "-", sessionLetter))
}

// LogProxyPath is the log-proxy object path for a UUID.
func LogProxyPath(uuid string) dbus.ObjectPath {
	return PathLogProxy + "/" + dbus.ObjectPath(strings.ReplaceAll(uuid, "-", logLetter))
}

// SessionToken is the backend session token for a UUID.
func SessionToken(uuid string) string { return strings.ReplaceAll(uuid, "-", tokenLetter) }

// NewConfigPath returns a fresh profile object path.
func NewConfigPath() dbus.ObjectPath { return ConfigPath(NewUUID()) }

// NewSessionPath returns a fresh session object path.
func NewSessionPath() dbus.ObjectPath { return SessionPath(NewUUID()) }

// NewLogProxyPath returns a fresh log-proxy object path.
func NewLogProxyPath() dbus.ObjectPath { return LogProxyPath(NewUUID()) }

// NewSessionToken returns a fresh backend session token.
func NewSessionToken() string { return SessionToken(NewUUID()) }

// PathID is the last element of an object path: the id part of profile,
// session and log-proxy paths, used e.g. as a persistent file name.
func PathID(p dbus.ObjectPath) string {
	s := string(p)
	return s[strings.LastIndexByte(s, '/')+1:]
}

// IsChildPath reports whether p is a direct child of parent with a non-empty,
// valid last element.
func IsChildPath(parent, p dbus.ObjectPath) bool {
	rest, ok := strings.CutPrefix(string(p), string(parent)+"/")
	return ok && rest != "" && !strings.Contains(rest, "/") && p.IsValid()
}
