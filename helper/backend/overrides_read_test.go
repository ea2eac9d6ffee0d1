package backend

import (
	"os"
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/busobj"
	"github.com/ovpn3go/ovpn3go/helper/sessionmgr"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
)

func TestOverridesOf(t *testing.T) {
	answer := func(v dbus.Variant) *dbus.Call { return &dbus.Call{Body: []any{v}} }
	want := map[string]dbus.Variant{"ipv6": dbus.MakeVariant("no")}
	got, err := overridesOf(answer(dbus.MakeVariant(want)))
	if err != nil || len(got) != 1 || got["ipv6"].Value() != "no" {
		t.Errorf("readable overrides: %v, %v", got, err)
	}
	got, err = overridesOf(answer(dbus.MakeVariant(map[string]dbus.Variant{})))
	if err != nil || len(got) != 0 {
		t.Errorf("no overrides: %v, %v", got, err)
	}
	for _, tc := range []struct {
		call *dbus.Call
		want string
	}{
		{&dbus.Call{Err: api.ErrAccessDenied("not yours")}, "property overrides: not yours"},
		{answer(dbus.MakeVariant("ipv6=no")), "property overrides has type s, want a{sv}"},
	} {
		got, err := overridesOf(tc.call)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, %v; want an error containing %q", tc.call, got, err, tc.want)
		}
	}
}

// A configuration whose overrides cannot be read starts no session: the
// backend refuses the registration with the reason, NewTunnel fails with
// it, and no session is left behind.
func TestOverridesUnreadable(t *testing.T) {
	r := newRig(t)
	pki := testbed.PKI(t)
	text, err := pki.Profile(testbed.VariantA)
	if err != nil {
		t.Fatal(err)
	}
	const reason = "the overrides store is unreadable"
	path := api.PathConfiguration + "/unreadableoverrides"
	if err := r.srv.Export(path, &busobj.Interface{
		Name: api.InterfaceConfiguration,
		Methods: []busobj.Method{{Name: "Fetch", Out: []busobj.Arg{{Name: "config", Type: "s"}},
			Handler: func(*busobj.Call) ([]any, error) { return []any{text}, nil }}},
		Properties: []busobj.Property{
			{Name: "name", Type: "s", Get: func(*busobj.Call) (any, error) { return "unreadable-overrides", nil }},
			{Name: "overrides", Type: "a{sv}", Get: func(*busobj.Call) (any, error) { return nil, api.ErrFailed(reason) }},
		},
	}); err != nil {
		t.Fatal(err)
	}
	r.profiles.mu.Lock()
	r.profiles.extra = map[dbus.ObjectPath]sessionmgr.ProfileInfo{path: {Name: "unreadable-overrides", Owner: uint32(os.Getuid())}}
	r.profiles.mu.Unlock()

	var sess dbus.ObjectPath
	err = r.client.Object(api.ServiceSessions, api.PathSessions).Call(api.InterfaceSessions+".NewTunnel", 0, path).Store(&sess)
	if err == nil {
		t.Fatalf("NewTunnel started session %s although its overrides cannot be read", sess)
	}
	if msg := api.ErrorText(err); !strings.Contains(msg, "overrides") || !strings.Contains(msg, reason) {
		t.Errorf("NewTunnel: %q, want the overrides named with the reason %q", msg, reason)
	}
	var left []dbus.ObjectPath
	if err := r.client.Object(api.ServiceSessions, api.PathSessions).Call(api.InterfaceSessions+".FetchAvailableSessions", 0).Store(&left); err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Errorf("sessions left behind: %v", left)
	}
}
