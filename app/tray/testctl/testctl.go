// Package testctl names the test control ovpn3-tray exports on its session
// bus when OVPN3_TRAY_TEST_CONTROL=1 (see app/tray's control.go): tests and
// `make screenshots` use it to answer the real credential dialog. A leaf
// package so the desktop test harness can name it without importing the UI.
package testctl

import "github.com/godbus/dbus/v5"

const (
	Env       = "OVPN3_TRAY_TEST_CONTROL"
	Name      = "net.ovpn3go.TrayTest"
	Path      = dbus.ObjectPath("/net/ovpn3go/TrayTest")
	Interface = "net.ovpn3go.TrayTest"
)
