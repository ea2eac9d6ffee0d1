package sessionmgr

import (
	"encoding/xml"
	"slices"
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
)

// The seed (sessions-api.txt) as a table: every method with its arguments
// (direction, name, type), every signal, every property with its access.

type seedArg struct{ Dir, Name, Type string }

type seedMember struct {
	Name string
	Args []seedArg
}

type seedProp struct{ Name, Type, Access string }

func in(name, typ string) seedArg  { return seedArg{"in", name, typ} }
func out(name, typ string) seedArg { return seedArg{"out", name, typ} }
func sa(name, typ string) seedArg  { return seedArg{"", name, typ} }

var seedManagerMethods = []seedMember{
	{"NewTunnel", []seedArg{in("config_path", "o"), out("session_path", "o")}},
	{"FetchAvailableSessions", []seedArg{out("paths", "ao")}},
	{"FetchManagedInterfaces", []seedArg{out("devices", "as")}},
	{"LookupConfigName", []seedArg{in("config_name", "s"), out("session_paths", "ao")}},
	{"LookupInterface", []seedArg{in("device_name", "s"), out("session_path", "o")}},
}

var seedManagerSignals = []seedMember{
	{"Log", []seedArg{sa("group", "u"), sa("level", "u"), sa("message", "s")}},
	{"SessionManagerEvent", []seedArg{sa("path", "o"), sa("type", "q"), sa("owner", "u")}},
}

// version is not in the seed's empty property list, but front-ends check
// it (spec §2.3).
var seedManagerProps = []seedProp{{"version", "s", "read"}}

var seedSessionMethods = []seedMember{
	{"Connect", nil},
	{"Pause", []seedArg{in("reason", "s")}},
	{"Resume", nil},
	{"Restart", nil},
	{"Disconnect", nil},
	{"Ready", nil},
	{"AccessGrant", []seedArg{in("uid", "u")}},
	{"AccessRevoke", []seedArg{in("uid", "u")}},
	{"LogForward", []seedArg{in("enable", "b")}},
	{"UserInputQueueGetTypeGroup", []seedArg{out("type_group_list", "a(uu)")}},
	{"UserInputQueueFetch", []seedArg{in("type", "u"), in("group", "u"), in("id", "u"),
		out("type", "u"), out("group", "u"), out("id", "u"), out("name", "s"), out("description", "s"), out("hidden_input", "b")}},
	{"UserInputQueueCheck", []seedArg{in("type", "u"), in("group", "u"), out("indexes", "au")}},
	{"UserInputProvide", []seedArg{in("type", "u"), in("group", "u"), in("id", "u"), in("value", "s")}},
}

var seedSessionSignals = []seedMember{
	{"AttentionRequired", []seedArg{sa("type", "u"), sa("group", "u"), sa("message", "s")}},
	{"StatusChange", []seedArg{sa("code_major", "u"), sa("code_minor", "u"), sa("message", "s")}},
	{"Log", []seedArg{sa("group", "u"), sa("level", "u"), sa("message", "s")}},
}

var seedSessionProps = []seedProp{
	{"owner", "u", "read"}, {"session_created", "t", "read"}, {"acl", "au", "read"},
	{"public_access", "b", "readwrite"}, {"status", "s", "read"}, {"last_log", "a{sv}", "read"},
	{"statistics", "a{sx}", "read"}, {"dco", "b", "readwrite"}, {"device_path", "s", "read"},
	{"device_name", "s", "read"}, {"config_path", "o", "read"}, {"config_name", "s", "read"},
	{"connected_to", "(ssu)", "read"}, {"session_name", "s", "read"}, {"backend_pid", "u", "read"},
	{"restrict_log_access", "b", "readwrite"}, {"log_forwards", "ao", "read"}, {"log_verbosity", "u", "readwrite"},
}

// statusType: the seed prints "readonly s status", but every openvpn3
// client and the service use the (uus) tuple (spec §2.4, §6.2, §10.1).
const statusType = "(uus)"

type introNode struct {
	Interfaces []introIface `xml:"interface"`
}

type introIface struct {
	Name       string        `xml:"name,attr"`
	Methods    []introMember `xml:"method"`
	Signals    []introMember `xml:"signal"`
	Properties []seedProp    `xml:"property"`
}

type introMember struct {
	Name string    `xml:"name,attr"`
	Args []seedArg `xml:"arg"`
}

func (a *seedArg) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	for _, at := range start.Attr {
		switch at.Name.Local {
		case "name":
			a.Name = at.Value
		case "type":
			a.Type = at.Value
		case "direction":
			a.Dir = at.Value
		}
	}
	return d.Skip()
}

func (p *seedProp) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	for _, at := range start.Attr {
		switch at.Name.Local {
		case "name":
			p.Name = at.Value
		case "type":
			p.Type = at.Value
		case "access":
			p.Access = at.Value
		}
	}
	return d.Skip()
}

func introspect(t *testing.T, conn *dbus.Conn, path dbus.ObjectPath) introIface {
	t.Helper()
	var text string
	if err := conn.Object(api.ServiceSessions, path).Call(api.InterfaceIntrospectable+".Introspect", 0).Store(&text); err != nil {
		t.Fatalf("Introspect %s: %v", path, err)
	}
	var n introNode
	if err := xml.Unmarshal([]byte(text), &n); err != nil {
		t.Fatalf("introspection of %s: %v", path, err)
	}
	for _, i := range n.Interfaces {
		if i.Name == api.InterfaceSessions {
			return i
		}
	}
	t.Fatalf("%s does not introspect %s:\n%s", path, api.InterfaceSessions, text)
	return introIface{}
}

// checkMembers compares introspected methods or signals with the seed:
// same set, same argument names, types, directions and order.
func checkMembers(t *testing.T, kind string, got []introMember, want []seedMember) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%d %ss introspected, the seed has %d", len(got), kind, len(want))
	}
	for _, w := range want {
		i := slices.IndexFunc(got, func(g introMember) bool { return g.Name == w.Name })
		if i < 0 {
			t.Errorf("%s %s missing", kind, w.Name)
			continue
		}
		g := got[i].Args
		if kind == "method" {
			// in arguments first, as in the seed
			for j := range g {
				if g[j].Dir == "" {
					g[j].Dir = "in"
				}
			}
		}
		if !slices.Equal(g, w.Args) {
			t.Errorf("%s %s args %v, seed %v", kind, w.Name, g, w.Args)
		}
	}
}

func checkProps(t *testing.T, got, want []seedProp) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%d properties introspected, the seed has %d", len(got), len(want))
	}
	for _, w := range want {
		if w.Name == "status" {
			w.Type = statusType
		}
		if !slices.Contains(got, w) {
			t.Errorf("property %v not introspected as such (got %v)", w, got)
		}
	}
}

// zeroOf holds a value of each property type (godbus cannot send back the
// []any it decodes structs into).
var zeroOf = map[string]any{
	"u": uint32(0), "t": uint64(0), "au": []uint32{}, "b": false, "s": "", "o": dbus.ObjectPath("/"),
	"(uus)": struct {
		A, B uint32
		C    string
	}{}, "(ssu)": struct {
		A, B string
		C    uint32
	}{}, "a{sv}": map[string]dbus.Variant{}, "a{sx}": map[string]int64{}, "ao": []dbus.ObjectPath{},
}

// TestConformance checks the manager and a session object against the seed,
// from introspection and from calls: every method, signal and property
// with its signature, read-only properties refuse Set, writable ones take
// their type only, and wrong signatures are refused with GDBus's error.
func TestConformance(t *testing.T) {
	r := newRig(t, "ok", Options{})
	mi := introspect(t, r.client, api.PathSessions)
	checkMembers(t, "method", mi.Methods, seedManagerMethods)
	checkMembers(t, "signal", mi.Signals, seedManagerSignals)
	checkProps(t, mi.Properties, seedManagerProps)

	mgr := r.client.Object(api.ServiceSessions, api.PathSessions)
	var path dbus.ObjectPath
	if err := mgr.Call(api.InterfaceSessions+".NewTunnel", 0, testConfig).Store(&path); err != nil {
		t.Fatalf("NewTunnel: %v", err)
	}
	si := introspect(t, r.client, path)
	checkMembers(t, "method", si.Methods, seedSessionMethods)
	checkMembers(t, "signal", si.Signals, seedSessionSignals)
	checkProps(t, si.Properties, seedSessionProps)

	// Manager calls with the seed's signatures, and with a wrong one.
	var paths []dbus.ObjectPath
	var devs []string
	var one dbus.ObjectPath
	var version string
	for _, c := range []struct {
		m    string
		args []any
		out  []any
	}{
		{"FetchAvailableSessions", nil, []any{&paths}},
		{"FetchManagedInterfaces", nil, []any{&devs}},
		{"LookupConfigName", []any{"fake-profile"}, []any{&paths}},
		{"LookupInterface", []any{"tunfake0"}, []any{&one}},
	} {
		if err := mgr.Call(api.InterfaceSessions+"."+c.m, 0, c.args...).Store(c.out...); err != nil {
			t.Errorf("%s: %v", c.m, err)
		}
		err := mgr.Call(api.InterfaceSessions+"."+c.m, 0, append(c.args, uint32(1))...).Err
		if !api.IsErrorName(err, api.ErrNameInvalidArgs) || !strings.Contains(api.ErrorText(err), "does not match expected type") {
			t.Errorf("%s with an extra argument: %v", c.m, err)
		}
	}
	if one != path || !slices.Contains(paths, path) || !slices.Contains(devs, "tunfake0") {
		t.Errorf("lookups: %v %v %v", one, paths, devs)
	}
	if err := mgr.Call(api.InterfaceProperties+".Get", 0, api.InterfaceSessions, "version").Store(&version); err != nil || !strings.HasPrefix(version, "v") {
		t.Errorf("version = %q, %v", version, err)
	}
	if err := mgr.Call(api.InterfaceProperties+".Set", 0, api.InterfaceSessions, "version", dbus.MakeVariant("x")).Err; !api.IsErrorName(err, api.ErrNameInvalidArgs) {
		t.Errorf("Set version: %v", err)
	}

	// Session: every property readable with its type; writable ones
	// accept their type and refuse others; read-only ones refuse Set.
	obj := r.client.Object(api.ServiceSessions, path)
	good := map[string]any{"public_access": false, "dco": false, "restrict_log_access": true, "log_verbosity": uint32(4)}
	for _, p := range seedSessionProps {
		var v dbus.Variant
		if err := obj.Call(api.InterfaceProperties+".Get", 0, api.InterfaceSessions, p.Name).Store(&v); err != nil {
			t.Errorf("Get %s: %v", p.Name, err)
			continue
		}
		want := p.Type
		switch p.Name {
		case "status":
			want = statusType
		case "device_path":
			want = "o" // declared s, value o, as upstream
		}
		if got := v.Signature().String(); got != want {
			t.Errorf("Get %s: type %s, want %s", p.Name, got, want)
		}
		if p.Access == "read" {
			err := obj.Call(api.InterfaceProperties+".Set", 0, api.InterfaceSessions, p.Name, dbus.MakeVariant(zeroOf[want])).Err
			if !api.IsErrorName(err, api.ErrNameInvalidArgs) || !strings.Contains(api.ErrorText(err), "is not writable") {
				t.Errorf("Set read-only %s: %v", p.Name, err)
			}
			continue
		}
		if err := obj.Call(api.InterfaceProperties+".Set", 0, api.InterfaceSessions, p.Name, dbus.MakeVariant(good[p.Name])).Err; err != nil {
			t.Errorf("Set %s: %v", p.Name, err)
		}
		err := obj.Call(api.InterfaceProperties+".Set", 0, api.InterfaceSessions, p.Name, dbus.MakeVariant("wrong")).Err
		if !api.IsErrorName(err, api.ErrNameInvalidArgs) {
			t.Errorf("Set %s with a string: %v", p.Name, err)
		}
	}

	// Session methods with the seed's signatures reach their handler (any
	// error is the method's own, never a signature or dispatch error) and
	// refuse a wrong signature.
	calls := []struct {
		m    string
		args []any
	}{
		{"Ready", nil}, {"UserInputQueueGetTypeGroup", nil}, {"UserInputQueueCheck", []any{uint32(1), uint32(1)}},
		{"UserInputQueueFetch", []any{uint32(1), uint32(1), uint32(0)}},
		{"UserInputProvide", []any{uint32(1), uint32(1), uint32(0), "x"}},
		{"AccessGrant", []any{uint32(4000)}}, {"AccessRevoke", []any{uint32(4000)}},
		{"LogForward", []any{true}}, {"Connect", nil}, {"Pause", []any{"test"}}, {"Resume", nil}, {"Restart", nil},
		{"LogForward", []any{false}}, {"Disconnect", nil},
	}
	for _, c := range calls {
		err := obj.Call(api.InterfaceSessions+"."+c.m, 0, append(c.args, "extra")...).Err
		if !api.IsErrorName(err, api.ErrNameInvalidArgs) {
			t.Errorf("%s with an extra argument: %v", c.m, err)
		}
		err = obj.Call(api.InterfaceSessions+"."+c.m, 0, c.args...).Err
		if api.IsErrorName(err, api.ErrNameInvalidArgs) || api.IsErrorName(err, api.ErrNameUnknownMethod) {
			t.Errorf("%s: %v", c.m, err)
		}
		if c.m == "LogForward" && c.args[0] == true {
			var fw []dbus.ObjectPath
			if err := obj.Call(api.InterfaceProperties+".Get", 0, api.InterfaceSessions, "log_forwards").Store(&fw); err != nil || len(fw) != 1 {
				t.Errorf("log_forwards after LogForward(true): %v, %v", fw, err)
			}
		}
	}
	r.waitSignal(t, "SESS_DESTROYED", isSessionEvent(path, api.SessionEventDestroyed))
	err := obj.Call(api.InterfaceProperties+".Get", 0, api.InterfaceSessions, "status").Err
	if !api.IsErrorName(err, api.ErrNameUnknownMethod) || !strings.Contains(api.ErrorText(err), "Object does not exist at path") {
		t.Errorf("Get on a removed session: %v", err)
	}
}
