package sessionmgr

import (
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/busobj"
	"github.com/ovpn3go/ovpn3go/helper/busobj/busobjtest"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// The seed's session properties with their exact types.
var seedProperties = map[string]string{
	"owner": "u", "session_created": "t", "acl": "au", "public_access": "b", "status": "(uus)",
	"last_log": "a{sv}", "statistics": "a{sx}", "dco": "b", "device_path": "s", "device_name": "s",
	"config_path": "o", "config_name": "s", "connected_to": "(ssu)", "session_name": "s",
	"backend_pid": "u", "restrict_log_access": "b", "log_forwards": "ao", "log_verbosity": "u",
}

func TestSessionOverDBus(t *testing.T) {
	r := newRig(t, "ok", Options{})
	mgr := r.client.Object(api.ServiceSessions, api.PathSessions)
	var path dbus.ObjectPath
	if err := mgr.Call(api.InterfaceSessions+".NewTunnel", 0, testConfig).Store(&path); err != nil {
		t.Fatalf("NewTunnel: %v", err)
	}
	if !api.IsChildPath(api.PathSessions, path) {
		t.Fatalf("session path %q", path)
	}
	var xml string
	if err := r.client.Object(api.ServiceSessions, path).Call(api.InterfaceIntrospectable+".Introspect", 0).Store(&xml); err != nil {
		t.Fatal(err)
	}
	for name, typ := range seedProperties {
		if !strings.Contains(xml, `<property type="`+typ+`" name="`+name+`"`) {
			t.Errorf("introspection lacks property %s %s", name, typ)
		}
	}
	for _, m := range []string{"Connect", "Pause", "Resume", "Restart", "Disconnect", "Ready", "AccessGrant",
		"AccessRevoke", "LogForward", "UserInputQueueGetTypeGroup", "UserInputQueueFetch", "UserInputQueueCheck",
		"UserInputProvide"} {
		if !strings.Contains(xml, `<method name="`+m+`"`) {
			t.Errorf("introspection lacks method %s", m)
		}
	}
	for _, s := range []string{"AttentionRequired", "StatusChange", "Log"} {
		if !strings.Contains(xml, `<signal name="`+s+`"`) {
			t.Errorf("introspection lacks signal %s", s)
		}
	}
	var all map[string]dbus.Variant
	obj := r.client.Object(api.ServiceSessions, path)
	if err := obj.Call(api.InterfaceProperties+".GetAll", 0, api.InterfaceSessions).Store(&all); err != nil {
		t.Fatal(err)
	}
	for name, typ := range seedProperties {
		v, ok := all[name]
		if !ok {
			t.Errorf("GetAll lacks %s", name)
			continue
		}
		got := v.Signature().String()
		switch name {
		case "device_path":
			typ = "o" // declared s, value o, as upstream
		case "status", "connected_to":
			// godbus decodes structs into []any: check the shape.
			if f, ok := v.Value().([]any); ok && len(f) == 3 {
				continue
			}
		}
		if got != typ {
			t.Errorf("property %s has type %s, want %s", name, got, typ)
		}
	}
	if all["config_name"].Value() != "fake-profile" || all["owner"].Value() != uint32(0) {
		t.Errorf("config_name %v owner %v", all["config_name"], all["owner"])
	}
	if err := obj.Call(api.InterfaceSessions+".Connect", 0).Err; err != nil {
		t.Fatalf("Connect: %v", err)
	}
	r.waitSignal(t, "CONN_CONNECTED", isStatus(path, api.StatusMinorConnConnected))
	var st struct {
		Major, Minor uint32
		Msg          string
	}
	if err := obj.Call(api.InterfaceProperties+".Get", 0, api.InterfaceSessions, "status").Store(&st); err != nil ||
		st.Minor != uint32(api.StatusMinorConnConnected) {
		t.Errorf("status = %+v, %v", st, err)
	}
	if err := obj.Call(api.InterfaceSessions+".AccessGrant", 0, uint32(1000)).Err; err != nil {
		t.Errorf("AccessGrant: %v", err)
	}
	if err := obj.Call(api.InterfaceSessions+".AccessGrant", 0, uint32(1000)).Err; errText(err) != "UID already granted access" {
		t.Errorf("second AccessGrant: %v", err)
	}
	if err := obj.Call(api.InterfaceProperties+".Set", 0, api.InterfaceSessions, "log_verbosity", dbus.MakeVariant(uint32(9))).Err; err == nil ||
		!strings.Contains(err.Error(), "Incorrect log level") {
		t.Errorf("Set log_verbosity 9: %v", err)
	}
	if err := obj.Call(api.InterfaceProperties+".Set", 0, api.InterfaceSessions, "dco", dbus.MakeVariant(true)).Err; err == nil ||
		!strings.Contains(err.Error(), "DCO mode cannot be changed now") {
		t.Errorf("Set dco after Connect: %v", err)
	}
	if err := obj.Call(api.InterfaceSessions+".Disconnect", 0).Err; err != nil {
		t.Fatalf("Disconnect: %v", err)
	}
	r.waitSignal(t, "SESS_DESTROYED", isSessionEvent(path, api.SessionEventDestroyed))
	err := obj.Call(api.InterfaceSessions+".Ready", 0).Err
	if !api.IsErrorName(err, api.ErrNameUnknownMethod) {
		t.Errorf("Ready after Disconnect: %v", err)
	}
}

func TestSessionAuthorization(t *testing.T) {
	m := &Manager{}
	s := &session{owner: 1000, acl: []uint32{1001}, restrictLogAccess: true, gone: make(chan struct{})}
	auth := m.authorize(s)
	check := func(op busobj.Op, member string, uid uint32, want bool) {
		t.Helper()
		if got := aclAllows(s, op, member, uid); got != want {
			t.Errorf("%v %s by %d: allowed=%v, want %v", op, member, uid, got, want)
		}
	}
	check(busobj.OpMethod, "Connect", 1000, true)
	check(busobj.OpMethod, "Connect", 1001, true)
	check(busobj.OpMethod, "Connect", 1002, false)
	check(busobj.OpMethod, "AccessGrant", 1001, false)
	check(busobj.OpMethod, "AccessGrant", 1000, true)
	check(busobj.OpMethod, "LogForward", 1001, false)
	check(busobj.OpGet, "status", 0, true)
	check(busobj.OpGet, "status", 1002, false)
	check(busobj.OpSet, "public_access", 1001, false)
	check(busobj.OpSet, "log_verbosity", 1001, true)
	s.publicAccess = true
	s.restrictLogAccess = false
	check(busobj.OpMethod, "Connect", 1002, true)
	check(busobj.OpMethod, "LogForward", 1002, true)
	check(busobj.OpGet, "status", 1002, false) // public_access does not grant reads
	check(busobj.OpSet, "dco", 1002, false)
	close(s.gone)
	if err := auth(&busobj.Call{Op: busobj.OpMethod, Member: "Connect", UID: 1000}); err == nil {
		t.Error("call on a stopped session allowed")
	}
}

// Another user sees nothing and may not touch the session; after
// AccessGrant it may.
func TestOtherUserAccess(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "busctl")
	r := newRig(t, "ok", Options{})
	path, err := r.m.NewTunnel(0, testConfig)
	if err != nil {
		t.Fatal(err)
	}
	const nobody = 65534
	busctl := func(args ...string) (string, error) {
		all := append([]string{"--system", "--no-pager", "call", api.ServiceSessions}, args...)
		out, err := busobjtest.AsUser(t, nobody, r.addr, "busctl", all...).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	if out, err := busctl(string(api.PathSessions), api.InterfaceSessions, "FetchAvailableSessions"); err != nil || out != "ao 0" {
		t.Errorf("FetchAvailableSessions as nobody: %q, %v", out, err)
	}
	if out, err := busctl(string(path), api.InterfaceSessions, "Ready"); err == nil || !strings.Contains(out, "Access denied") {
		t.Errorf("Ready as nobody: %q, %v", out, err)
	}
	if out, err := busctl(string(path), api.InterfaceProperties, "Get", "ss", api.InterfaceSessions, "status"); err == nil ||
		!strings.Contains(out, "Access denied") {
		t.Errorf("Get status as nobody: %q, %v", out, err)
	}
	if err := r.m.AccessGrant(r.m.session(path), nobody); err != nil {
		t.Fatal(err)
	}
	if out, err := busctl(string(api.PathSessions), api.InterfaceSessions, "FetchAvailableSessions"); err != nil || !strings.Contains(out, string(path)) {
		t.Errorf("FetchAvailableSessions as granted nobody: %q, %v", out, err)
	}
	if out, err := busctl(string(path), api.InterfaceSessions, "Ready"); err != nil {
		t.Errorf("Ready as granted nobody: %q, %v", out, err)
	}
	if out, err := busctl(string(path), api.InterfaceSessions, "AccessRevoke", "u", "65534"); err == nil || !strings.Contains(out, "Access denied") {
		t.Errorf("AccessRevoke by a non-owner: %q, %v", out, err)
	}
}
