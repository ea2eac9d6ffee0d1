package sessionmgr

import (
	"testing"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
)

// Errors from the backend reach front-ends as gdbuspp re-throws them
// (spec §4.2): not-ready keeps its domain, the rest become request errors
// with the backend's text after a space.
func TestBackendErrorWireFormat(t *testing.T) {
	for _, c := range []struct {
		in       error
		name     string
		wireText string
	}{
		{api.Error(api.DomainRequest, "net.openvpn.v3.error.invalid-input: No value provided for RequiresSlot ID 1"),
			"org.gtk.GDBus.UnmappedGError.Quark._net_2eopenvpn_2egdbuspp_2erequest.Code36",
			"GDBus.Error:net.openvpn.gdbuspp.request:  net.openvpn.v3.error.invalid-input: No value provided for RequiresSlot ID 1"},
		{api.Error(api.DomainClient, "Connection is already paused"),
			"org.gtk.GDBus.UnmappedGError.Quark._net_2eopenvpn_2egdbuspp_2erequest.Code36",
			"GDBus.Error:net.openvpn.gdbuspp.request:  Connection is already paused"},
		{api.Error(api.DomainReady, "Missing user credentials"),
			"org.gtk.GDBus.UnmappedGError.Quark._net_2eopenvpn_2ev3_2eerror_2eready.Code36",
			"GDBus.Error:net.openvpn.v3.error.ready: Missing user credentials"},
	} {
		got, ok := backendError(c.in).(*dbus.Error)
		if !ok || got.Name != c.name || len(got.Body) != 1 || got.Body[0] != c.wireText {
			t.Errorf("backendError(%v) = %#v, want %s %q", c.in, got, c.name, c.wireText)
		}
	}
}
