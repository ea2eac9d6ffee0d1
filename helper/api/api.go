// Package api is the D-Bus contract of ovpn3go: the bus names, object paths,
// interface names, enumerations and error formats of the OpenVPN 3 Linux
// services (spec/dbus-api.md). The helper daemon, the backend processes, the
// CLI and the tray all import it, so a name or a number is written down once.
package api

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/godbus/dbus/v5"
)

// Version is the package version reported by the `version` property of every
// manager object. Clients derive feature flags from it (spec §2.0): it must
// look like an upstream release, "v<major>".
const Version = "v27"

// Well-known bus names. Every object exports exactly one application
// interface, named like the service that owns it.
const (
	ServiceConfiguration = "net.openvpn.v3.configuration"
	ServiceSessions      = "net.openvpn.v3.sessions"
	ServiceBackends      = "net.openvpn.v3.backends"
	ServiceNetCfg        = "net.openvpn.v3.netcfg"
	ServiceLog           = "net.openvpn.v3.log"

	// BackendNamePrefix + decimal PID is the bus name a backend process owns.
	BackendNamePrefix = "net.openvpn.v3.backends.be"
)

// Interface names (identical to the service names).
const (
	InterfaceConfiguration = ServiceConfiguration
	InterfaceSessions      = ServiceSessions
	InterfaceBackends      = ServiceBackends
	InterfaceNetCfg        = ServiceNetCfg
	InterfaceLog           = ServiceLog
)

// Standard interfaces every object carries.
const (
	InterfaceProperties     = "org.freedesktop.DBus.Properties"
	InterfaceIntrospectable = "org.freedesktop.DBus.Introspectable"
	InterfacePeer           = "org.freedesktop.DBus.Peer"
)

// Object paths.
const (
	PathRoot           dbus.ObjectPath = "/net/openvpn/v3"
	PathConfiguration  dbus.ObjectPath = "/net/openvpn/v3/configuration"
	PathSessions       dbus.ObjectPath = "/net/openvpn/v3/sessions"
	PathBackends       dbus.ObjectPath = "/net/openvpn/v3/backends"
	PathBackendSession dbus.ObjectPath = "/net/openvpn/v3/backends/session"
	PathNetCfg         dbus.ObjectPath = "/net/openvpn/v3/netcfg"
	PathLog            dbus.ObjectPath = "/net/openvpn/v3/log"
	PathLogProxy       dbus.ObjectPath = "/net/openvpn/v3/log/proxy"
)

// BackendBusName is the bus name the backend process with this PID owns.
func BackendBusName(pid uint32) string {
	return BackendNamePrefix + strconv.FormatUint(uint64(pid), 10)
}

// ParseBackendBusName returns the PID in a backend bus name.
func ParseBackendBusName(name string) (uint32, error) {
	s, ok := strings.CutPrefix(name, BackendNamePrefix)
	if !ok {
		return 0, fmt.Errorf("bus name %q is not a backend name", name)
	}
	pid, err := strconv.ParseUint(s, 10, 32)
	if err != nil || pid == 0 || s[0] == '0' {
		return 0, fmt.Errorf("bus name %q: bad backend PID", name)
	}
	return uint32(pid), nil
}
