package backend

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/busobj"
	"github.com/ovpn3go/ovpn3go/helper/sessionmgr"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
)

// A configuration that cannot be read (its properties, overrides among
// them, and its text come in one FetchForBackend) starts no session: the
// backend refuses the registration with the reason, NewTunnel fails with
// it, and no session is left behind. Overrides are never silently
// ignored: without the answer there is no profile either.
func TestProfileUnreadable(t *testing.T) {
	r := newRig(t)
	const reason = "the overrides store is unreadable"
	path := api.PathConfiguration + "/unreadable"
	if err := r.srv.Export(path, &busobj.Interface{
		Name: api.InterfaceConfiguration,
		Methods: []busobj.Method{{Name: "FetchForBackend", Out: []busobj.Arg{{Name: "name", Type: "s"}, {Name: "dco", Type: "b"},
			{Name: "overrides", Type: "a{sv}"}, {Name: "config", Type: "s"}},
			Handler: func(*busobj.Call) ([]any, error) { return nil, api.ErrFailed(reason) }}},
	}); err != nil {
		t.Fatal(err)
	}
	r.profiles.mu.Lock()
	r.profiles.extra = map[dbus.ObjectPath]sessionmgr.ProfileInfo{path: {Name: "unreadable", Owner: uint32(os.Getuid())}}
	r.profiles.mu.Unlock()

	var sess dbus.ObjectPath
	err := r.client.Object(api.ServiceSessions, api.PathSessions).Call(api.InterfaceSessions+".NewTunnel", 0, path).Store(&sess)
	if err == nil {
		t.Fatalf("NewTunnel started session %s although its profile cannot be read", sess)
	}
	if msg := api.ErrorText(err); !strings.Contains(msg, "Could not fetch the configuration profile") || !strings.Contains(msg, reason) {
		t.Errorf("NewTunnel: %q, want the fetch named with the reason %q", msg, reason)
	}
	var left []dbus.ObjectPath
	if err := r.client.Object(api.ServiceSessions, api.PathSessions).Call(api.InterfaceSessions+".FetchAvailableSessions", 0).Store(&left); err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Errorf("sessions left behind: %v", left)
	}
}

// At registration the backend reads its profile in one call
// (FetchForBackend: name, dco, overrides and text), not property reads
// and a Fetch one round trip after them, and the overrides it read take
// effect.
func TestRegistrationReadsProfileOnce(t *testing.T) {
	r := newRig(t)
	cfg := r.importProfile(t, testbed.ServerIP4+" 1194")
	if err := r.client.Object(api.ServiceConfiguration, cfg).Call(api.InterfaceConfiguration+".SetOverride", 0,
		"log-level", dbus.MakeVariant("5")).Err; err != nil {
		t.Fatal(err)
	}
	mon, err := testbed.MonitorCalls(r.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer mon.Close()
	path := r.newTunnel(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := mon.Sync(ctx, r.client); err != nil {
		t.Fatal(err)
	}
	var calls []string
	for _, c := range mon.Calls() {
		if c.Path == cfg {
			calls = append(calls, c.Interface+"."+c.Member)
		}
	}
	if want := api.InterfaceConfiguration + ".FetchForBackend"; len(calls) != 1 || calls[0] != want {
		t.Errorf("calls on the profile during registration: %v, want [%s]", calls, want)
	}
	var lvl uint32
	backend := api.BackendBusName(r.backendPID(t, path))
	if err := r.client.Object(backend, api.PathBackendSession).Call(api.InterfaceProperties+".Get", 0,
		api.InterfaceBackends, "log_level").Store(&lvl); err != nil {
		t.Fatal(err)
	}
	if lvl != 5 {
		t.Errorf("backend log_level %d, want the log-level override's 5", lvl)
	}
}
