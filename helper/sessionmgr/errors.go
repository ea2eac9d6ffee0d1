package sessionmgr

import (
	"errors"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
)

// Error texts of spec §4.3 that this service sends.
const (
	textAccessDenied   = "Access denied"
	textStopped        = "VPN session is stopped"
	textCouldNotStart  = "Could not start the VPN client"
	textAlreadyRunning = "A session with this configuration profile is already running"
)

func errGeneric(text string) *dbus.Error { return api.Error(api.DomainGDBusPP, text) }
func errRequest(text string) *dbus.Error { return api.Error(api.DomainRequest, text) }

// backendError passes an error from the backend on to the front-end: "not
// ready" keeps its domain (front-ends test for it); anything else becomes a
// request error carrying the backend's text after its domain, with the
// leading space gdbuspp leaves when it re-throws (spec §4.2), e.g.
// "GDBus.Error:net.openvpn.gdbuspp.request:  net.openvpn.v3.error.invalid-input: No value provided for RequiresSlot ID 1".
func backendError(err error) error {
	if err == nil {
		return nil
	}
	if api.IsDomain(err, api.DomainReady) {
		var de dbus.Error
		if errors.As(err, &de) {
			return &de
		}
		var dep *dbus.Error
		if errors.As(err, &dep) {
			return dep
		}
	}
	_, t, ok := api.ParseError(err)
	if !ok {
		return errRequest(err.Error())
	}
	return errRequest(" " + t)
}
