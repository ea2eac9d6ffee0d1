package busobj_test

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/busobj"
	"github.com/ovpn3go/ovpn3go/helper/busobj/busobjtest"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

const (
	// The test bus runs the shipped policy: the test object poses as
	// the configuration service, which root may own and whose
	// interface everyone may call.
	testName  = "net.openvpn.v3.configuration"
	testIface = "net.openvpn.v3.configuration"
	testPath  = dbus.ObjectPath("/net/openvpn/v3/test")
)

type fixture struct {
	addr   string
	srv    *busobj.Server
	client *dbus.Conn

	mu    sync.Mutex
	name  string
	count uint32
}

func (f *fixture) iface() *busobj.Interface {
	return &busobj.Interface{
		Name: testIface,
		Methods: []busobj.Method{
			{Name: "Echo", In: []busobj.Arg{{"text", "s"}}, Out: []busobj.Arg{{"echo", "s"}},
				Handler: func(c *busobj.Call) ([]any, error) { return []any{c.Args[0].(string)}, nil }},
			{Name: "Whoami", Out: []busobj.Arg{{"uid", "u"}, {"pid", "u"}, {"interactive", "b"}, {"sender", "s"}},
				Handler: func(c *busobj.Call) ([]any, error) {
					return []any{c.UID, c.PID, c.Interactive, c.Sender}, nil
				}},
			{Name: "Fail", In: []busobj.Arg{{"domain", "s"}, {"text", "s"}},
				Handler: func(c *busobj.Call) ([]any, error) {
					return nil, api.Error(c.Args[0].(string), c.Args[1].(string))
				}},
			{Name: "Plain", Handler: func(c *busobj.Call) ([]any, error) { return nil, errors.New("plain failure") }},
			{Name: "Secret"},
			{Name: "Forbidden"},
			{Name: "Wrong", Out: []busobj.Arg{{"x", "u"}},
				Handler: func(c *busobj.Call) ([]any, error) { return []any{"not a u"}, nil }},
			{Name: "Panic", Handler: func(c *busobj.Call) ([]any, error) { panic("boom") }},
			{Name: "OpenFile", Out: []busobj.Arg{{"fd", "h"}},
				Handler: func(c *busobj.Call) ([]any, error) {
					r, w, err := os.Pipe()
					if err != nil {
						return nil, err
					}
					_, _ = w.WriteString("through the pipe")
					_ = w.Close()
					c.CloseAfterReply(r)
					return []any{dbus.UnixFD(r.Fd())}, nil
				}},
			{Name: "ReadFD", In: []busobj.Arg{{"fd", "h"}}, Out: []busobj.Arg{{"content", "s"}},
				Handler: func(c *busobj.Call) ([]any, error) {
					f := os.NewFile(uintptr(c.Args[0].(dbus.UnixFD)), "received")
					defer f.Close()
					b, err := io.ReadAll(f)
					return []any{string(b)}, err
				}},
			{Name: "Networks", In: []busobj.Arg{{"networks", "a(suibb)"}}, Out: []busobj.Arg{{"count", "u"}},
				Handler: func(c *busobj.Call) ([]any, error) {
					var nets []struct {
						Addr           string
						Prefix         uint32
						Metric         int32
						IPv6, Excluded bool
					}
					if err := dbus.Store(c.Args[0:1], &nets); err != nil {
						return nil, err
					}
					return []any{uint32(len(nets))}, nil
				}},
			{Name: "Unicast", In: []busobj.Arg{{"text", "s"}},
				Handler: func(c *busobj.Call) ([]any, error) {
					return nil, c.Server.EmitTo(c.Sender, c.Path, testIface, "Note", c.Args[0].(string))
				}},
		},
		Signals: []busobj.Signal{{Name: "Note", Args: []busobj.Arg{{"text", "s"}}}},
		Properties: []busobj.Property{
			{Name: "name", Type: "s",
				Get: func(*busobj.Call) (any, error) { f.mu.Lock(); defer f.mu.Unlock(); return f.name, nil },
				Set: func(_ *busobj.Call, v any) error { f.mu.Lock(); defer f.mu.Unlock(); f.name = v.(string); return nil }},
			{Name: "count", Type: "u",
				Get: func(*busobj.Call) (any, error) { f.mu.Lock(); defer f.mu.Unlock(); return f.count, nil }},
			{Name: "secret", Type: "s", Get: func(*busobj.Call) (any, error) { return "hidden", nil }},
			{Name: "broken", Type: "s", Get: func(*busobj.Call) (any, error) { return nil, errors.New("VPN session is stopped") }},
			{Name: "locked", Type: "b", Get: func(*busobj.Call) (any, error) { return true, nil },
				Set: func(*busobj.Call, any) error { return nil }},
		},
		Authorize: func(c *busobj.Call) error {
			switch {
			case c.Op == busobj.OpMethod && c.Member == "Secret":
				return busobj.Deny("")
			case c.Op == busobj.OpMethod && c.Member == "Forbidden":
				return busobj.Deny("Access denied")
			case c.Op == busobj.OpGet && c.Member == "secret":
				return busobj.Deny("Access to the secret is denied.")
			case c.Op == busobj.OpSet && c.Member == "locked":
				return busobj.Deny("Configuration can only be modified by the profile owner")
			}
			return nil
		},
	}
}

func setup(t *testing.T) *fixture {
	t.Helper()
	testenv.RequireRoot(t)
	f := &fixture{addr: busobjtest.StartBus(t), name: "initial", count: 7}
	ctx := context.Background()
	srv, err := busobj.Connect(ctx, f.addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	f.srv = srv
	if err := srv.Export(testPath, f.iface()); err != nil {
		t.Fatal(err)
	}
	if err := srv.Export(testPath+"/child/leaf", &busobj.Interface{Name: testIface}); err != nil {
		t.Fatal(err)
	}
	if err := srv.RequestName(testName); err != nil {
		t.Fatal(err)
	}
	client, err := dbus.Connect(f.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	f.client = client
	return f
}

func (f *fixture) call(path dbus.ObjectPath, method string, args ...any) *dbus.Call {
	return f.client.Object(testName, path).Call(method, 0, args...)
}

func wantErr(t *testing.T, err error, name, text string) {
	t.Helper()
	var de dbus.Error
	if !errors.As(err, &de) {
		t.Fatalf("error %v (%T), want %s %q", err, err, name, text)
	}
	msg, _ := de.Body[0].(string)
	if de.Name != name || msg != text {
		t.Errorf("error %s %q, want %s %q", de.Name, msg, name, text)
	}
}

func TestIntrospection(t *testing.T) {
	f := setup(t)
	for path, child := range map[dbus.ObjectPath]string{
		"/": "net", "/net": "openvpn", "/net/openvpn": "v3", "/net/openvpn/v3": "test",
		testPath: "child", testPath + "/child": "leaf",
	} {
		var x string
		if err := f.call(path, "org.freedesktop.DBus.Introspectable.Introspect").Store(&x); err != nil {
			t.Fatalf("Introspect %s: %v", path, err)
		}
		if !strings.Contains(x, `<node name="`+child+`"/>`) || len(x) <= 218 {
			t.Errorf("Introspect %s: no child %q or too short:\n%s", path, child, x)
		}
		var n struct {
			XMLName xml.Name `xml:"node"`
		}
		if err := xml.Unmarshal([]byte(x), &n); err != nil {
			t.Errorf("Introspect %s: not XML: %v", path, err)
		}
	}
	var x string
	if err := f.call(testPath, "org.freedesktop.DBus.Introspectable.Introspect").Store(&x); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`<interface name="net.openvpn.v3.configuration">`,
		"<method name=\"Echo\">\n      <arg type=\"s\" name=\"text\" direction=\"in\"/>\n      <arg type=\"s\" name=\"echo\" direction=\"out\"/>\n    </method>",
		`<method name="Plain"/>`,
		"<signal name=\"Note\">\n      <arg type=\"s\" name=\"text\"/>\n    </signal>",
		`<property type="s" name="name" access="readwrite"/>`,
		`<property type="u" name="count" access="read"/>`,
		`<interface name="org.freedesktop.DBus.Properties">`,
		`<interface name="org.freedesktop.DBus.Peer">`,
	} {
		if !strings.Contains(x, want) {
			t.Errorf("introspection lacks %q:\n%s", want, x)
		}
	}
	// GLib's parser must accept it too (dbus-python and gdbus clients introspect).
	if gdbus, err := runTool(t, "gdbus", "introspect", "--address", f.addr, "--dest", testName, "--object-path", string(testPath)); err != nil {
		t.Errorf("gdbus introspect: %v: %s", err, gdbus)
	} else if !strings.Contains(gdbus, "Echo(in  s text,") || !strings.Contains(gdbus, "readwrite s name") {
		t.Errorf("gdbus introspect:\n%s", gdbus)
	}
}

func TestStandardErrors(t *testing.T) {
	f := setup(t)
	wantErr(t, f.call("/nope", testIface+".Echo", "x").Err, api.ErrNameUnknownMethod, "Object does not exist at path “/nope”")
	wantErr(t, f.call("/nope", "org.freedesktop.DBus.Introspectable.Introspect").Err, api.ErrNameUnknownMethod, "Object does not exist at path “/nope”")
	wantErr(t, f.call("/net", "org.freedesktop.DBus.Properties.GetAll", testIface).Err, api.ErrNameUnknownMethod, "No such interface “org.freedesktop.DBus.Properties” on object at path /net")
	wantErr(t, f.call(testPath, "x.y.Z").Err, api.ErrNameUnknownMethod, "No such interface “x.y” on object at path /net/openvpn/v3/test")
	wantErr(t, f.call(testPath, testIface+".Nope").Err, api.ErrNameUnknownMethod, "No such method “Nope”")
	wantErr(t, f.call(testPath, testIface+".Echo").Err, api.ErrNameInvalidArgs, "Type of message, “()”, does not match expected type “(s)”")
	wantErr(t, f.call(testPath, testIface+".Plain", "x").Err, api.ErrNameInvalidArgs, "Type of message, “(s)”, does not match expected type “()”")
	wantErr(t, f.call(testPath, "org.freedesktop.DBus.Properties.Get", testIface).Err, api.ErrNameInvalidArgs, "Type of message, “(s)”, does not match expected type “(ss)”")
	type network struct {
		Addr           string
		Prefix         uint32
		Metric         int32
		IPv6, Excluded bool
	}
	var n uint32
	if err := f.call(testPath, testIface+".Networks", []network{{"10.0.0.0", 8, -1, false, false}, {"fd00::", 64, 0, true, true}}).Store(&n); err != nil || n != 2 {
		t.Errorf("array of structs: %d %v", n, err)
	}
	if err := f.call("/", "org.freedesktop.DBus.Peer.Ping").Err; err != nil {
		t.Errorf("Ping on /: %v", err)
	}
	if err := f.call("/nowhere", "org.freedesktop.DBus.Peer.Ping").Err; err != nil {
		t.Errorf("Ping on /nowhere: %v", err)
	}
}

func TestServiceErrors(t *testing.T) {
	f := setup(t)
	err := f.call(testPath, testIface+".Fail", api.DomainReady, "Missing user credentials").Err
	wantErr(t, err, "org.gtk.GDBus.UnmappedGError.Quark._net_2eopenvpn_2ev3_2eerror_2eready.Code36",
		"GDBus.Error:net.openvpn.v3.error.ready: Missing user credentials")
	if d, txt, _ := api.ParseError(err); d != api.DomainReady || txt != "Missing user credentials" {
		t.Errorf("ParseError: %q %q", d, txt)
	}
	wantErr(t, f.call(testPath, testIface+".Plain").Err, api.ErrorName(api.DomainRequest),
		"GDBus.Error:net.openvpn.gdbuspp.request: plain failure")
	clientName := f.client.Names()[0]
	wantErr(t, f.call(testPath, testIface+".Secret").Err, api.ErrorName(api.DomainGDBusPP),
		"GDBus.Error:net.openvpn.gdbuspp: Authorization failed for "+clientName+
			" performing method call net.openvpn.v3.configuration.Secret in object /net/openvpn/v3/test")
	wantErr(t, f.call(testPath, testIface+".Forbidden").Err, api.ErrorName(api.DomainGDBusPP),
		"GDBus.Error:net.openvpn.gdbuspp: Access denied")
	wantErr(t, f.call(testPath, testIface+".Wrong").Err, api.ErrNameFailed,
		"internal error: reply does not match the declared signature")
	wantErr(t, f.call(testPath, testIface+".Panic").Err, api.ErrNameFailed, "internal error")
	// the service survives
	var s string
	if err := f.call(testPath, testIface+".Echo", "still here").Store(&s); err != nil || s != "still here" {
		t.Errorf("Echo after panic: %q %v", s, err)
	}
}

func TestProperties(t *testing.T) {
	f := setup(t)
	props := "org.freedesktop.DBus.Properties."
	var v dbus.Variant
	if err := f.call(testPath, props+"Get", testIface, "count").Store(&v); err != nil || v.Value() != uint32(7) {
		t.Errorf("Get count: %v %v", v, err)
	}
	var all map[string]dbus.Variant
	if err := f.call(testPath, props+"GetAll", testIface).Store(&all); err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 || all["name"].Value() != "initial" || all["locked"].Value() != true {
		t.Errorf("GetAll = %v (secret and broken must be omitted)", all)
	}
	wantErr(t, f.call(testPath, props+"GetAll", "x.y").Err, api.ErrNameInvalidArgs, "No such interface “x.y”")
	wantErr(t, f.call(testPath, props+"Get", testIface, "nope").Err, api.ErrNameInvalidArgs, "No such property “nope”")
	wantErr(t, f.call(testPath, props+"Get", testIface, "secret").Err, api.ErrNameAccessDenied, "Access to the secret is denied.")
	wantErr(t, f.call(testPath, props+"Get", testIface, "broken").Err, api.ErrNameFailed, "VPN session is stopped")
	wantErr(t, f.call(testPath, props+"Set", testIface, "count", dbus.MakeVariant(uint32(1))).Err, api.ErrNameInvalidArgs, "Property “count” is not writable")
	wantErr(t, f.call(testPath, props+"Set", testIface, "nope", dbus.MakeVariant(uint32(1))).Err, api.ErrNameInvalidArgs, "No such property “nope”")
	wantErr(t, f.call(testPath, props+"Set", testIface, "locked", dbus.MakeVariant("yes")).Err, api.ErrNameInvalidArgs, "Error setting property “locked”: Expected type “b” but got “s”")
	wantErr(t, f.call(testPath, props+"Set", testIface, "locked", dbus.MakeVariant(false)).Err, api.ErrNameAccessDenied, "Configuration can only be modified by the profile owner")

	// a successful Set broadcasts PropertiesChanged
	listener, err := dbus.Connect(f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()
	if err := listener.AddMatchSignal(dbus.WithMatchInterface("org.freedesktop.DBus.Properties"), dbus.WithMatchObjectPath(testPath)); err != nil {
		t.Fatal(err)
	}
	ch := make(chan *dbus.Signal, 4)
	listener.Signal(ch)
	if err := f.call(testPath, props+"Set", testIface, "name", dbus.MakeVariant("renamed")).Err; err != nil {
		t.Fatal(err)
	}
	if err := f.call(testPath, props+"Get", testIface, "name").Store(&v); err != nil || v.Value() != "renamed" {
		t.Errorf("Get after Set: %v %v", v, err)
	}
	sig := waitSignal(t, ch, "org.freedesktop.DBus.Properties.PropertiesChanged")
	if sig.Body[0] != testIface || sig.Body[1].(map[string]dbus.Variant)["name"].Value() != "renamed" || len(sig.Body[2].([]string)) != 0 {
		t.Errorf("PropertiesChanged body %v", sig.Body)
	}
}

func waitSignal(t *testing.T, ch chan *dbus.Signal, name string) *dbus.Signal {
	t.Helper()
	timeout := time.After(20 * time.Second) // a lost signal, not a speed assertion
	for {
		select {
		case s := <-ch:
			if s.Name == name {
				return s
			}
		case <-timeout:
			t.Fatalf("no %s signal", name)
		}
	}
}

func TestCaller(t *testing.T) {
	f := setup(t)
	var uid, pid uint32
	var inter bool
	var sender string
	if err := f.call(testPath, testIface+".Whoami").Store(&uid, &pid, &inter, &sender); err != nil {
		t.Fatal(err)
	}
	if uid != 0 || pid != uint32(os.Getpid()) || inter || sender != f.client.Names()[0] {
		t.Errorf("Whoami = %d %d %v %q", uid, pid, inter, sender)
	}
	// godbus's Object.Call masks this flag: send the message by hand
	msg := &dbus.Message{Type: dbus.TypeMethodCall, Flags: dbus.FlagAllowInteractiveAuthorization,
		Headers: map[dbus.HeaderField]dbus.Variant{
			dbus.FieldDestination: dbus.MakeVariant(testName),
			dbus.FieldPath:        dbus.MakeVariant(testPath),
			dbus.FieldInterface:   dbus.MakeVariant(testIface),
			dbus.FieldMember:      dbus.MakeVariant("Whoami"),
		}}
	call := <-f.client.Send(msg, make(chan *dbus.Call, 1)).Done
	err := call.Store(&uid, &pid, &inter, &sender)
	if err != nil || !inter {
		t.Errorf("interactive flag not seen: %v %v", inter, err)
	}
	// another UID from this process (busobjtest.DialAs): the bus and the
	// service see that UID and this PID
	nobody := busobjtest.DialAs(t, f.addr, 65534, 65534)
	if err := nobody.Object(testName, testPath).Call(testIface+".Whoami", 0).Store(&uid, &pid, &inter, &sender); err != nil {
		t.Fatal(err)
	}
	if uid != 65534 || pid != uint32(os.Getpid()) || sender != nobody.Names()[0] {
		t.Errorf("Whoami over DialAs(65534) = %d %d %q", uid, pid, sender)
	}
	if os.Getuid() != 0 || os.Geteuid() != 0 {
		t.Errorf("DialAs changed this process's identity: uid %d euid %d", os.Getuid(), os.Geteuid())
	}
	// another UID, through a real client program (busctl) as nobody
	out, err := execCmd(busobjtest.AsUser(t, 65534, f.addr, testenv.RequireCommand(t, "busctl"),
		"--system", "call", testName, string(testPath), testIface, "Whoami"))
	if err != nil {
		t.Fatalf("busctl as nobody: %v: %s", err, out)
	}
	if !strings.HasPrefix(out, "ubbs 65534 ") && !strings.HasPrefix(out, "uubs 65534 ") {
		t.Errorf("busctl as nobody: %q", out)
	}
}

func TestCredentialCacheDropped(t *testing.T) {
	f := setup(t)
	c2, err := dbus.Connect(f.addr)
	if err != nil {
		t.Fatal(err)
	}
	name := c2.Names()[0]
	if err := c2.Object(testName, testPath).Call(testIface+".Whoami", 0).Err; err != nil {
		t.Fatal(err)
	}
	gone := make(chan string, 4)
	stop := f.srv.WatchNames(func(n, _, newOwner string) {
		if n == name && newOwner == "" {
			gone <- n
		}
	})
	defer stop()
	c2.Close()
	select {
	case <-gone:
	case <-time.After(20 * time.Second):
		t.Fatal("no NameOwnerChanged for the closed client")
	}
	// the cache entry is gone: asking again goes to the bus, which no longer knows the name
	if _, _, err := f.srv.Credentials(context.Background(), name); err == nil {
		t.Error("credentials of a vanished name still served")
	}
}

func TestFDPassing(t *testing.T) {
	f := setup(t)
	var fd dbus.UnixFD
	if err := f.call(testPath, testIface+".OpenFile").Store(&fd); err != nil {
		t.Fatal(err)
	}
	file := os.NewFile(uintptr(fd), "from server")
	b, err := io.ReadAll(file)
	file.Close()
	if err != nil || string(b) != "through the pipe" {
		t.Errorf("read %q %v", b, err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.WriteString("to the server")
	w.Close()
	var s string
	err = f.call(testPath, testIface+".ReadFD", dbus.UnixFD(r.Fd())).Store(&s)
	r.Close()
	if err != nil || s != "to the server" {
		t.Errorf("ReadFD = %q %v", s, err)
	}
}

func TestSignalsAndConcurrency(t *testing.T) {
	f := setup(t)
	if err := f.client.AddMatchSignal(dbus.WithMatchInterface(testIface)); err != nil {
		t.Fatal(err)
	}
	ch := make(chan *dbus.Signal, 8)
	f.client.Signal(ch)
	if err := f.call(testPath, testIface+".Unicast", "just for you").Err; err != nil {
		t.Fatal(err)
	}
	if s := waitSignal(t, ch, testIface+".Note"); s.Body[0] != "just for you" || s.Path != testPath {
		t.Errorf("unicast signal %v", s)
	}
	if err := f.srv.Emit(testPath, testIface, "Note", "for everyone"); err != nil {
		t.Fatal(err)
	}
	if s := waitSignal(t, ch, testIface+".Note"); s.Body[0] != "for everyone" {
		t.Errorf("broadcast signal %v", s)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var s string
			want := fmt.Sprint("call ", i)
			if err := f.call(testPath, testIface+".Echo", want).Store(&s); err != nil || s != want {
				errs <- fmt.Errorf("Echo %q = %q, %v", want, s, err)
			}
			if err := f.call(testPath, "org.freedesktop.DBus.Properties.Set", testIface, "name", dbus.MakeVariant(want)).Err; err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestExportRules(t *testing.T) {
	srv := busobj.NewServer(nil)
	if err := srv.Export("bad path", &busobj.Interface{Name: "a.b"}); err == nil {
		t.Error("invalid path accepted")
	}
	if err := srv.Export("/a", &busobj.Interface{Name: "a.b", Properties: []busobj.Property{{Name: "p", Type: "s"}}}); err == nil {
		t.Error("property without getter accepted")
	}
	if err := srv.Export("/a", &busobj.Interface{Name: "a.b"}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Export("/a", &busobj.Interface{Name: "a.b"}); err == nil {
		t.Error("double export accepted")
	}
	if !srv.Exported("/a") || !srv.Unexport("/a") || srv.Exported("/a") || srv.Unexport("/a") {
		t.Error("Unexport")
	}
}

// TestNameOwnerCached: OwnsName on every call asks the bus once per name
// (GetNameOwner), and still follows the name from owner to owner: a change
// of owner made before a call is seen by that call.
func TestNameOwnerCached(t *testing.T) {
	f := setup(t)
	mon, err := testbed.MonitorCalls(f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer mon.Close()
	const name = "net.openvpn.v3.log" // root may own it (shipped policy)
	const path = testPath + "/owner"
	if err := f.srv.Export(path, &busobj.Interface{Name: testIface, Methods: []busobj.Method{
		{Name: "OwnsLog", Out: []busobj.Arg{{"owns", "b"}},
			Handler: func(c *busobj.Call) ([]any, error) { return []any{c.OwnsName(name)}, nil }},
	}}); err != nil {
		t.Fatal(err)
	}
	a, b := dialBus(t, f.addr), dialBus(t, f.addr)
	owns := func(conn *dbus.Conn) bool {
		t.Helper()
		var yes bool
		if err := conn.Object(testName, path).Call(testIface+".OwnsLog", 0).Store(&yes); err != nil {
			t.Fatal(err)
		}
		return yes
	}
	take := func(conn *dbus.Conn) {
		t.Helper()
		if r, err := conn.RequestName(name, dbus.NameFlagDoNotQueue); err != nil || r != dbus.RequestNameReplyPrimaryOwner {
			t.Fatalf("RequestName: %v %v", r, err)
		}
	}
	release := func(conn *dbus.Conn) {
		t.Helper()
		if _, err := conn.ReleaseName(name); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		if owns(a) {
			t.Fatal("owns a name nobody owns")
		}
	}
	take(a)
	if !owns(a) || owns(b) {
		t.Fatal("after a took the name")
	}
	release(a)
	take(b)
	if owns(a) || !owns(b) {
		t.Fatal("after b took the name over")
	}
	release(b)
	if owns(a) || owns(b) {
		t.Fatal("after b released the name")
	}
	take(a)
	if !owns(a) {
		t.Fatal("after a took the name again")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := mon.Sync(ctx, f.client); err != nil {
		t.Fatal(err)
	}
	asked := 0
	for _, c := range mon.Calls() {
		if c.Sender == f.srv.Conn().Names()[0] && c.Member == "GetNameOwner" {
			asked++
		}
	}
	if asked != 1 {
		t.Errorf("the server asked the bus for the owner %d times in 10 calls, want once", asked)
	}
}

func dialBus(t *testing.T, addr string) *dbus.Conn {
	t.Helper()
	conn, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// TestNameOwnerLearnsCredentials: looking up a name's owner also fetches
// the owner's credentials, so its first call needs no question to the bus.
func TestNameOwnerLearnsCredentials(t *testing.T) {
	f := setup(t)
	mon, err := testbed.MonitorCalls(f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer mon.Close()
	const name = "net.openvpn.v3.log"
	a := dialBus(t, f.addr)
	if r, err := a.RequestName(name, dbus.NameFlagDoNotQueue); err != nil || r != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("RequestName: %v %v", r, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	owner, err := f.srv.NameOwner(ctx, name)
	if err != nil || owner != a.Names()[0] {
		t.Fatalf("NameOwner = %q, %v", owner, err)
	}
	// A second name of the same owner: its credentials are not asked for
	// twice.
	const other = "net.openvpn.v3.netcfg"
	if r, err := a.RequestName(other, dbus.NameFlagDoNotQueue); err != nil || r != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("RequestName: %v %v", r, err)
	}
	if o, err := f.srv.NameOwner(ctx, other); err != nil || o != owner {
		t.Fatalf("NameOwner(%s) = %q, %v", other, o, err)
	}
	asked := func() int {
		t.Helper()
		if err := mon.Sync(ctx, f.client); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, c := range mon.Calls() {
			if c.Sender == f.srv.Conn().Names()[0] && c.Member == "GetConnectionCredentials" && len(c.Body) == 1 && c.Body[0] == owner {
				n++
			}
		}
		return n
	}
	for asked() == 0 { // learnt in the background: wait for it (a hang, not a speed check)
		select {
		case <-ctx.Done():
			t.Fatal("the owner's credentials were never asked for")
		case <-time.After(10 * time.Millisecond):
		}
	}
	var uid, pid uint32
	var interactive bool
	var sender string
	if err := a.Object(testName, testPath).Call(testIface+".Whoami", 0).Store(&uid, &pid, &interactive, &sender); err != nil {
		t.Fatal(err)
	}
	if pid != uint32(os.Getpid()) || sender != owner {
		t.Errorf("Whoami = %d %d %v %q", uid, pid, interactive, sender)
	}
	if n := asked(); n != 1 {
		t.Errorf("the owner's credentials were asked for %d times, want once", n)
	}
}

// TestCredentialsSharedInFlight: callers that need one connection's
// credentials while they are being asked for share the question (a
// backend's Attach, registration and owner lookup arrive together).
func TestCredentialsSharedInFlight(t *testing.T) {
	f := setup(t)
	mon, err := testbed.MonitorCalls(f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer mon.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := dialBus(t, f.addr)
	name := a.Names()[0]
	const callers = 4
	busobj.HoldCredentials(ctx, f.srv, callers-1)
	type answer struct {
		pid uint32
		err error
	}
	answers := make(chan answer, callers)
	for range callers {
		go func() {
			_, pid, err := f.srv.Credentials(ctx, name)
			answers <- answer{pid, err}
		}()
	}
	for range callers {
		if a := <-answers; a.err != nil || a.pid != uint32(os.Getpid()) {
			t.Errorf("Credentials = pid %d, %v", a.pid, a.err)
		}
	}
	if ctx.Err() != nil {
		t.Fatal("the callers never waited for one question together")
	}
	if err := mon.Sync(ctx, f.client); err != nil {
		t.Fatal(err)
	}
	asked := 0
	for _, c := range mon.Calls() {
		if c.Sender == f.srv.Conn().Names()[0] && c.Member == "GetConnectionCredentials" && len(c.Body) == 1 && c.Body[0] == name {
			asked++
		}
	}
	if asked != 1 {
		t.Errorf("%d callers asked the bus %d times, want once", callers, asked)
	}
}
