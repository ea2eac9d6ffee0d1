package logsvc_test

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/busobj"
	"github.com/ovpn3go/ovpn3go/helper/busobj/busobjtest"
	"github.com/ovpn3go/ovpn3go/helper/logsvc"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
	"github.com/ovpn3go/ovpn3go/internal/version"
)

func TestLogService(t *testing.T) {
	testenv.RequireRoot(t)
	addr := busobjtest.StartBus(t)
	srv, err := busobj.Connect(context.Background(), addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	svc := logsvc.New(slog.New(slog.DiscardHandler))
	if err := svc.Export(srv); err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	if err := srv.RequestName(api.ServiceLog); err != nil {
		t.Fatal(err)
	}
	conn := func() *dbus.Conn {
		c, err := dbus.Connect(addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	logObj := func(c *dbus.Conn) dbus.BusObject { return c.Object(api.ServiceLog, api.PathLog) }
	call := func(c *dbus.Conn, m string, args ...any) error {
		return logObj(c).Call(api.InterfaceLog+"."+m, 0, args...).Err
	}
	text := func(err error) string { return api.ErrorText(err) }

	be := backendConn(t, addr)
	// Only the session manager, backends and root may attach: a process
	// of the backend user owning no be<PID> name is no backend.
	if err := call(be, "Attach", api.InterfaceBackends); !api.IsDomain(err, api.DomainGDBusPP) {
		t.Errorf("Attach by a non-backend: %v", err)
	}
	if err := call(be, "Detach", api.InterfaceBackends); !api.IsDomain(err, api.DomainGDBusPP) {
		t.Errorf("Detach by a non-backend: %v", err)
	}
	session := dbus.ObjectPath("/net/openvpn/v3/sessions/abc")
	if err := call(be, "AssignSession", session, api.InterfaceBackends); !api.IsDomain(err, api.DomainGDBusPP) {
		t.Errorf("AssignSession by a non-backend: %v", err)
	}
	if n := svc.NumAttached(); n != 0 {
		t.Fatalf("%d attached after refused calls", n)
	}
	if _, err := be.RequestName(api.BackendBusName(uint32(os.Getpid())), dbus.NameFlagDoNotQueue); err != nil {
		t.Fatal(err)
	}
	if err := call(be, "Attach", api.InterfaceBackends); err != nil {
		t.Fatal(err)
	}
	if err := call(be, "Attach", api.InterfaceBackends); text(err) != "Already attached" || !api.IsDomain(err, api.DomainLog) {
		t.Errorf("second Attach: %v", err)
	}
	if err := call(be, "Detach", "x.y"); text(err) != "Not attached" {
		t.Errorf("Detach: %v", err)
	}
	if v, err := logObj(be).GetProperty(api.InterfaceLog + ".num_attached"); err != nil || v.Value() != uint32(1) {
		t.Errorf("num_attached %v %v", v, err)
	}
	// with the session manager's view of who the backends are
	svc.SetBackends(func(*busobj.Call) bool { return false })
	if err := call(be, "AssignSession", session, api.InterfaceBackends); !api.IsDomain(err, api.DomainGDBusPP) {
		t.Errorf("AssignSession by a backend the session manager does not know: %v", err)
	}
	svc.SetBackends(nil)
	if err := call(be, "AssignSession", session, api.InterfaceBackends); err != nil {
		t.Fatalf("AssignSession: %v", err)
	}
	if p, ok := svc.SessionOf(be.Names()[0], api.InterfaceBackends); !ok || p != session {
		t.Errorf("SessionOf %v %v", p, ok)
	}
	// GetSubscriberList is root's (the bus policy refuses the backend)
	if err := logObj(be).Call(api.InterfaceLog+".GetSubscriberList", 0).Err; !api.IsErrorName(err, "org.freedesktop.DBus.Error.AccessDenied") {
		t.Errorf("GetSubscriberList by a backend: %v", err)
	}
	var subs [][]any
	if err := logObj(conn()).Call(api.InterfaceLog+".GetSubscriberList", 0).Store(&subs); err != nil || len(subs) != 1 || subs[0][1] != be.Names()[0] || subs[0][3] != string(session) {
		t.Errorf("GetSubscriberList %v %v", subs, err)
	}

	// ProxyLogEvents: only the session manager
	front := conn()
	if err := call(front, "ProxyLogEvents", front.Names()[0], session); !api.IsDomain(err, api.DomainGDBusPP) {
		t.Errorf("ProxyLogEvents by a front-end: %v", err)
	}
	sm := conn()
	if _, err := sm.RequestName(api.ServiceSessions, dbus.NameFlagDoNotQueue); err != nil {
		t.Fatal(err)
	}
	if err := call(sm, "ProxyLogEvents", front.Names()[0], dbus.ObjectPath("/net/openvpn/v3/sessions/none")); text(err) != "No session available" {
		t.Errorf("ProxyLogEvents without a session: %v", err)
	}
	var proxy dbus.ObjectPath
	if err := logObj(sm).Call(api.InterfaceLog+".ProxyLogEvents", 0, front.Names()[0], session).Store(&proxy); err != nil {
		t.Fatal(err)
	}
	if !api.IsChildPath(api.PathLogProxy, proxy) {
		t.Errorf("proxy path %s", proxy)
	}
	pobj := front.Object(api.ServiceLog, proxy)
	if v, err := pobj.GetProperty(api.InterfaceLog + ".target"); err != nil || v.Value() != front.Names()[0] {
		t.Errorf("target %v %v", v, err)
	}
	if err := pobj.SetProperty(api.InterfaceLog+".log_level", dbus.MakeVariant(uint32(7))); text(err) != "Invalid log level" {
		t.Errorf("log_level 7: %v", err)
	}
	if err := pobj.Call(api.InterfaceLog+".Remove", 0).Err; err != nil {
		t.Fatal(err)
	}
	if err := pobj.Call(api.InterfaceLog+".Remove", 0).Err; !api.IsErrorName(err, api.ErrNameUnknownMethod) {
		t.Errorf("proxy after Remove: %v", err)
	}

	// settings: root only, 0..6
	if err := logObj(front).SetProperty(api.InterfaceLog+".log_level", dbus.MakeVariant(uint32(5))); err != nil {
		t.Fatal(err)
	}
	if svc.LogLevel() != 5 {
		t.Error("log_level not stored")
	}
	if err := logObj(front).SetProperty(api.InterfaceLog+".log_level", dbus.MakeVariant(uint32(9))); text(err) != "Invalid log level" {
		t.Errorf("log_level 9: %v", err)
	}
	if v, err := logObj(front).GetProperty(api.InterfaceLog + ".version"); err != nil || v.Value() != version.Service() {
		t.Errorf("version %v %v", v, err)
	}

	// a vanished backend's attachment is dropped
	be.Close()
	deadline := time.Now().Add(20 * time.Second) // eventual, not a speed check
	for svc.NumAttached() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("attachment of a vanished connection kept")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// backendConn is a connection of the backend user, as a backend's (its PID
// is this process's).
func backendConn(t *testing.T, addr string) *dbus.Conn {
	t.Helper()
	uid, gid := testenv.EnsureBackendUser(t)
	return busobjtest.DialAs(t, addr, uid, gid)
}
