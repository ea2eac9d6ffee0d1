package logsvc_test

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/busobj"
	"github.com/ovpn3go/ovpn3go/helper/busobj/busobjtest"
	"github.com/ovpn3go/ovpn3go/helper/logsvc"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// TestForwarding: an attached, assigned backend's Log and StatusChange
// reach the proxy's target as (uus) from the session path with the
// backends interface; Log respects the proxy's level; other senders and
// other sessions are not forwarded; removed proxies stop forwarding.
func TestForwarding(t *testing.T) {
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
	logSvc := srv.Conn().Names()[0]
	be := backendConn(t, addr)
	if _, err := be.RequestName(api.BackendBusName(uint32(os.Getpid())), dbus.NameFlagDoNotQueue); err != nil {
		t.Fatal(err)
	}
	session := dbus.ObjectPath("/net/openvpn/v3/sessions/fwd")
	for _, c := range []struct {
		m    string
		args []any
	}{{"Attach", []any{api.InterfaceBackends}}, {"AssignSession", []any{session, api.InterfaceBackends}}} {
		if err := be.Object(api.ServiceLog, api.PathLog).Call(api.InterfaceLog+"."+c.m, 0, c.args...).Err; err != nil {
			t.Fatalf("%s: %v", c.m, err)
		}
	}
	front, other := conn(), conn()
	ch := make(chan *dbus.Signal, 64)
	front.Signal(ch)
	och := make(chan *dbus.Signal, 64)
	other.Signal(och)
	proxy, err := svc.ProxyLogEvents(context.Background(), front.Names()[0], session)
	if err != nil {
		t.Fatal(err)
	}
	if got := svc.ProxiesOf(session); len(got) != 1 || got[0] != proxy {
		t.Errorf("ProxiesOf = %v", got)
	}
	// Emit unicast needs a destination: use EmitTo through busobj-like
	// raw messages.
	sendTo := func(c *dbus.Conn, member string, args ...any) {
		t.Helper()
		msg := &dbus.Message{Type: dbus.TypeSignal, Headers: map[dbus.HeaderField]dbus.Variant{
			dbus.FieldPath:        dbus.MakeVariant(api.PathBackendSession),
			dbus.FieldInterface:   dbus.MakeVariant(api.InterfaceBackends),
			dbus.FieldMember:      dbus.MakeVariant(member),
			dbus.FieldDestination: dbus.MakeVariant(logSvc),
		}, Body: args}
		msg.Headers[dbus.FieldSignature] = dbus.MakeVariant(dbus.SignatureOf(args...))
		if call := c.Send(msg, nil); call.Err != nil {
			t.Fatal(call.Err)
		}
	}
	sendTo(be, "Log", uint32(api.LogGroupClient), uint32(api.LogCategoryDebug), "token", "too verbose")
	// The level change comes over another connection, so it could overtake
	// the signal above: wait for that signal's forward before changing it.
	first := nextSignal(t, ch)
	if first.Name != api.InterfaceBackends+".Log" || len(first.Body) != 3 || first.Body[2] != "too verbose" {
		t.Fatalf("first forwarded signal %s %v, want the DEBUG Log at the default level", first.Name, first.Body)
	}
	if err := front.Object(api.ServiceLog, proxy).SetProperty(api.InterfaceLog+".log_level", dbus.MakeVariant(uint32(3))); err != nil {
		t.Fatal(err)
	}
	sendTo(be, "Log", uint32(api.LogGroupClient), uint32(api.LogCategoryDebug), "token", "filtered")
	sendTo(be, "Log", uint32(api.LogGroupClient), uint32(api.LogCategoryInfo), "token", "hello")
	sendTo(be, "StatusChange", uint32(api.StatusMajorConnection), uint32(api.StatusMinorConnConnected), "")
	// a stranger pretending to be a backend
	sendTo(other, "StatusChange", uint32(api.StatusMajorConnection), uint32(api.StatusMinorConnFailed), "fake")

	want := []struct {
		member string
		body   []any
	}{
		{"Log", []any{uint32(api.LogGroupClient), uint32(api.LogCategoryInfo), "hello"}},
		{"StatusChange", []any{uint32(api.StatusMajorConnection), uint32(api.StatusMinorConnConnected), ""}},
	}
	for _, w := range want {
		select {
		case s := <-ch:
			if s.Sender != logSvc || s.Path != session || s.Name != api.InterfaceBackends+"."+w.member ||
				len(s.Body) != 3 || s.Body[0] != w.body[0] || s.Body[1] != w.body[1] || s.Body[2] != w.body[2] {
				t.Errorf("got %s %s %s %v, want %s %v", s.Sender, s.Path, s.Name, s.Body, w.member, w.body)
			}
		case <-time.After(10 * time.Second): // a lost signal, not a speed check
			t.Fatalf("no forwarded %s %v", w.member, w.body)
		}
	}
	quiet := time.After(300 * time.Millisecond)
	for done := false; !done; {
		select {
		case s := <-ch:
			if !strings.HasPrefix(s.Name, "org.freedesktop.DBus.") {
				t.Errorf("unexpected forwarded signal %s %v", s.Name, s.Body)
			}
		case s := <-och:
			if !strings.HasPrefix(s.Name, "org.freedesktop.DBus.") {
				t.Errorf("non-target received %s %v", s.Name, s.Body)
			}
		case <-quiet:
			done = true
		}
	}
	if !svc.RemoveProxy(proxy) {
		t.Fatal("RemoveProxy")
	}
	sendTo(be, "StatusChange", uint32(api.StatusMajorConnection), uint32(api.StatusMinorConnDone), "")
	select {
	case s := <-ch:
		t.Errorf("forwarded after Remove: %s %v", s.Name, s.Body)
	case <-time.After(300 * time.Millisecond):
	}
}

// nextSignal returns the next signal from ch that is not the bus's own.
func nextSignal(t *testing.T, ch <-chan *dbus.Signal) *dbus.Signal {
	t.Helper()
	for {
		select {
		case s := <-ch:
			if !strings.HasPrefix(s.Name, "org.freedesktop.DBus.") {
				return s
			}
		case <-time.After(10 * time.Second): // a lost signal, not a speed check
			t.Fatal("no forwarded signal")
		}
	}
}
