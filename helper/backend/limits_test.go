package backend

import (
	"context"
	"testing"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/engine"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
)

// A session that ends by its own limits (inactive, session-timeout) is
// CONN_DONE with the reason, as openvpn3 reports its inactivity timeout,
// and the final teardown keeps that reason.
func TestSessionLimitIsConnDone(t *testing.T) {
	b := quietBackend(&profile.Profile{})
	events{b}.State(engine.StateDone, "Inactive tunnel, disconnected (inactive 5s)")
	if b.status.Major != api.StatusMajorConnection || b.status.Minor != api.StatusMinorConnDone ||
		b.status.Message != "Inactive tunnel, disconnected (inactive 5s)" {
		t.Fatalf("status %s", b.status)
	}
	b.teardown(context.Background())
	if b.status.Minor != api.StatusMinorConnDone || b.status.Message == "" {
		t.Fatalf("teardown replaced the reason: %s", b.status)
	}
}
