package e2e

import (
	"context"
	"encoding/xml"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/introspect"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/busobj/busobjtest"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
)

// abuseObject is one object of the matrix: a kind ("session", …) and where
// it lives.
type abuseObject struct {
	kind string
	dest string
	path dbus.ObjectPath
}

// abuseCase is what the matrix knows about one method beyond its
// introspected signature.
type abuseCase struct {
	// args are arguments the owner might send (nil: the method takes
	// none): the stranger sends these.
	args func(o *abuseObjects) []any
	// open: a stranger may call it (it answers with the stranger's own
	// data, or refuses for a reason other than authorization); otherwise
	// a stranger is refused.
	open bool
	// anyArgs says per argument whether every bad value is legitimate
	// input ('*': free text, any uid, so success is as right as an
	// error) or must be refused with an error ('.', and every argument
	// past the string's end): an empty or huge string, a bad object path,
	// an out-of-range number.
	anyArgs string
	// restore undoes what a successful bad-value call changed.
	restore func(t *testing.T, o *abuseObjects)
}

// abuseObjects is what the matrix runs against.
type abuseObjects struct {
	st                            *testbed.Stack
	session, config, device, logp dbus.ObjectPath
	backend                       string
	owner, stranger               *dbus.Conn
	profile                       string // the text of a good profile
}

const hugeLen = 1 << 20

// abuseValues are the owner's bad values for one argument of type sig; nil
// when the type has none worth sending.
func abuseValues(sig string, o *abuseObjects) []any {
	switch sig {
	case "s":
		return []any{"", strings.Repeat("A", hugeLen), "\x01\n\t"}
	case "o":
		// nonexistent, the root, and another service's object
		return []any{dbus.ObjectPath("/net/openvpn/v3/nonexistent"), dbus.ObjectPath("/"), o.device}
	case "u":
		return []any{uint32(0xffffffff), uint32(0x7fffffff)}
	case "q":
		return []any{uint16(0xffff)}
	case "i":
		return []any{int32(-1), int32(0x7fffffff)}
	case "as":
		return []any{[]string{}, []string{strings.Repeat("B", hugeLen)}}
	case "v":
		return []any{dbus.MakeVariant(strings.Repeat("C", hugeLen)), dbus.MakeVariant(uint32(0xffffffff)), dbus.MakeVariant([]string{"x"})}
	}
	return nil
}

// zeroArg is a value of D-Bus type sig for a signature-correct call.
func zeroArg(t *testing.T, sig string) any {
	switch sig {
	case "s":
		return "x"
	case "o":
		return dbus.ObjectPath("/")
	case "u":
		return uint32(0)
	case "q":
		return uint16(0)
	case "i":
		return int32(0)
	case "b":
		return false
	case "v":
		return dbus.MakeVariant("x")
	case "as":
		return []string{}
	}
	t.Fatalf("no zero value for D-Bus type %q", sig)
	return nil
}

// wellFormed: err is nil or an error a D-Bus client of openvpn3 can
// handle: a service error of a known domain in the GDBus wire format
// ("GDBus.Error:<domain>: <text>") with a text, or one of the standard
// errors GDBus itself sends — never a timeout, a vanished service or an
// error without a message.
func wellFormed(err error) error {
	if err == nil {
		return nil
	}
	var de dbus.Error
	switch e := err.(type) {
	case dbus.Error:
		de = e
	case *dbus.Error:
		de = *e
	default:
		return fmt.Errorf("not a D-Bus error: %v", err)
	}
	text := ""
	if len(de.Body) > 0 {
		text, _ = de.Body[0].(string)
	}
	if strings.TrimSpace(text) == "" {
		return fmt.Errorf("error %s without a message", de.Name)
	}
	for _, d := range []string{api.DomainGDBusPP, api.DomainRequest, api.DomainReady, api.DomainClient,
		api.DomainBERegistration, api.DomainNetCfg, api.DomainLog} {
		if de.Name == api.ErrorName(d) {
			if !strings.HasPrefix(text, "GDBus.Error:"+d+": ") || len(text) == len("GDBus.Error:"+d+": ") {
				return fmt.Errorf("error %s: message %q is not \"GDBus.Error:%s: <text>\"", de.Name, text, d)
			}
			return nil
		}
	}
	switch de.Name {
	case "org.freedesktop.DBus.Error.InvalidArgs", "org.freedesktop.DBus.Error.UnknownMethod",
		"org.freedesktop.DBus.Error.AccessDenied", "org.freedesktop.DBus.Error.Failed":
		return nil
	}
	return fmt.Errorf("unexpected error %s: %q", de.Name, text)
}

// TestHostileCallers (issue 15 point 4): every method of every object of
// net.openvpn.v3.configuration, .sessions, .log, .netcfg and of a
// session's backend (net.openvpn.v3.backends), as the objects introspect
// themselves, is called with wrong argument types, on nonexistent and
// foreign object paths, by the owner with empty, huge and control-character
// strings, invalid and foreign object paths and out-of-range numbers, and
// by a stranger with the owner's arguments. Each call answers (no hang)
// with the right kind of error in openvpn3's format; after each, another
// user is still served and the helper still runs; no handler panicked;
// and the owner's session still passes traffic. A method the table below
// does not know fails the test, so a new method needs its case.
func TestHostileCallers(t *testing.T) {
	t.Parallel()
	bin := binaries(t)
	st := testbed.NewStack(t, bin, testbed.VariantA)
	w := watch(t, st)
	pf, err := st.WriteProfile(testbed.VariantA)
	if err != nil {
		t.Fatal(err)
	}
	profile, err := os.ReadFile(pf)
	if err != nil {
		t.Fatal(err)
	}
	// root owns the objects, then an ordinary user (whom the caps and
	// the ACLs apply to); each time another user is the stranger and a
	// third one must still be served.
	for _, pass := range []struct {
		name                   string
		owner, stranger, other uint32
	}{{"owner root", 0, 65534, 1}, {"owner nobody", 65534, 1, 0}} {
		t.Run(pass.name, func(t *testing.T) {
			abuseMatrix(t, st, w, string(profile), pass.owner, pass.stranger, pass.other)
		})
	}
	logs, err := os.ReadFile(st.Helper.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"handler panicked", "panic:", "goroutine "} {
		if strings.Contains(string(logs), bad) {
			t.Errorf("the helper log contains %q", bad)
		}
	}
}

// dialUID is a bus connection of uid (the stack's own for root).
func dialUID(t *testing.T, st *testbed.Stack, uid uint32) *dbus.Conn {
	if uid == 0 {
		return st.Conn
	}
	return busobjtest.DialAs(t, st.Bus.Address, uid, uid)
}

// abuseMatrix runs the matrix with the objects owned by ownerUID.
func abuseMatrix(t *testing.T, st *testbed.Stack, w *testbed.Watcher, profile string, ownerUID, strangerUID, otherUID uint32) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	o := &abuseObjects{st: st, profile: profile, owner: dialUID(t, st, ownerUID)}
	name := fmt.Sprintf("e2e-abuse-%d", ownerUID)
	var cfg dbus.ObjectPath
	if err := o.owner.Object(api.ServiceConfiguration, api.PathConfiguration).CallWithContext(ctx, api.InterfaceConfiguration+".Import", 0,
		name, profile, false, false).Store(&cfg); err != nil {
		t.Fatal(err)
	}
	if err := o.owner.Object(api.ServiceSessions, api.PathSessions).CallWithContext(ctx, api.InterfaceSessions+".NewTunnel", 0, cfg).Store(&o.session); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"Ready", "Connect"} {
		if err := o.owner.Object(api.ServiceSessions, o.session).CallWithContext(ctx, api.InterfaceSessions+"."+m, 0).Err; err != nil {
			t.Fatalf("%s: %v", m, err)
		}
	}
	session := o.session
	waitConnected(t, st, session, "connecting")
	prop := func(name string) dbus.ObjectPath {
		v, err := st.SessionProperty(ctx, session, name)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := v.Value().(dbus.ObjectPath)
		return p
	}
	o.config, o.device = prop("config_path"), prop("device_path")
	o.backend = api.BackendBusName(backendPID(t, st, session))
	if err := o.owner.Object(api.ServiceSessions, session).CallWithContext(ctx, api.InterfaceSessions+".LogForward", 0, true).Err; err != nil {
		t.Fatal(err)
	}
	v, err := st.SessionProperty(ctx, session, "log_forwards")
	if err != nil {
		t.Fatal(err)
	}
	if fw, _ := v.Value().([]dbus.ObjectPath); len(fw) == 1 {
		o.logp = fw[0]
	} else {
		t.Fatalf("log_forwards %v", v)
	}
	o.stranger = dialUID(t, st, strangerUID)
	other := dialUID(t, st, otherUID)
	var helperPID uint32
	if err := st.Conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.GetConnectionUnixProcessID", 0, api.ServiceSessions).Store(&helperPID); err != nil {
		t.Fatal(err)
	}
	// Wrong types and unknown objects: GDBus's errors, or for an
	// ordinary user the bus policy's refusal before the service sees it.
	std := func(name string) func(error) bool {
		return func(err error) bool {
			return api.IsErrorName(err, name) || ownerUID != 0 && api.IsErrorName(err, "org.freedesktop.DBus.Error.AccessDenied")
		}
	}

	objects := []abuseObject{
		{"configuration manager", api.ServiceConfiguration, api.PathConfiguration},
		{"configuration", api.ServiceConfiguration, o.config},
		{"sessions manager", api.ServiceSessions, api.PathSessions},
		{"session", api.ServiceSessions, session},
		{"log manager", api.ServiceLog, api.PathLog},
		{"log proxy", api.ServiceLog, o.logp},
		{"netcfg manager", api.ServiceNetCfg, api.PathNetCfg},
		{"netcfg device", api.ServiceNetCfg, o.device},
		{"backend", o.backend, api.PathBackendSession},
	}
	// alive: another user is served and the helper runs.
	alive := func(after string) {
		t.Helper()
		cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
		defer ccancel()
		var paths []dbus.ObjectPath
		if err := other.Object(api.ServiceSessions, api.PathSessions).CallWithContext(cctx, api.InterfaceSessions+".FetchAvailableSessions", 0).Store(&paths); err != nil {
			t.Fatalf("after %s another user's FetchAvailableSessions: %v", after, err)
		}
		if err := syscall.Kill(int(helperPID), 0); err != nil {
			t.Fatalf("after %s the helper (pid %d) is gone: %v", after, helperPID, err)
		}
	}
	call := func(conn *dbus.Conn, obj abuseObject, path dbus.ObjectPath, method string, args ...any) error {
		cctx, ccancel := context.WithTimeout(ctx, 60*time.Second)
		defer ccancel()
		err := conn.Object(obj.dest, path).CallWithContext(cctx, method, 0, args...).Err
		if cctx.Err() != nil {
			t.Fatalf("%s %s %s: no answer (hang)", obj.kind, path, method)
		}
		return err
	}
	short := func(a []any) string {
		s := fmt.Sprint(a)
		if len(s) > 80 {
			s = s[:80] + "…"
		}
		return s
	}
	seen := map[string]bool{}
	calls := 0
	for _, obj := range objects {
		var data string
		if err := st.Conn.Object(obj.dest, obj.path).CallWithContext(ctx, "org.freedesktop.DBus.Introspectable.Introspect", 0).Store(&data); err != nil {
			t.Fatalf("introspect %s %s: %v", obj.kind, obj.path, err)
		}
		var node introspect.Node
		if err := xml.Unmarshal([]byte(data), &node); err != nil {
			t.Fatalf("introspect %s: %v", obj.kind, err)
		}
		for _, iface := range node.Interfaces {
			for _, m := range iface.Methods {
				key := obj.kind + " " + iface.Name + "." + m.Name
				seen[key] = true
				c, ok := abuseCases[key]
				if !ok {
					c, ok = standardCase(obj, &node, iface.Name, m.Name)
				}
				if !ok {
					t.Errorf("no abuse case for %s (in %s): add one to abuseCases", key, inSig(m))
					continue
				}
				method := iface.Name + "." + m.Name
				var in []string
				for _, a := range m.Args {
					if a.Direction == "in" {
						in = append(in, a.Type)
					}
				}
				valid := []any{}
				if c.args != nil {
					valid = c.args(o)
				}
				if len(valid) != len(in) {
					t.Fatalf("%s: the case has %d arguments, the method %d", key, len(valid), len(in))
				}
				check := func(what string, err error, wantErr func(error) bool, wantText string) {
					t.Helper()
					calls++
					if f := wellFormed(err); f != nil {
						t.Errorf("%s %s: %v", key, what, f)
					} else if wantErr != nil && !wantErr(err) {
						t.Errorf("%s %s: got %v, want %s", key, what, err, wantText)
					}
					alive(key + " " + what)
				}
				// Wrong argument types: none, one too many, each one
				// of another type.
				if len(in) > 0 {
					check("without arguments", call(o.owner, obj, obj.path, method), std("org.freedesktop.DBus.Error.InvalidArgs"), "InvalidArgs")
				}
				// (org.freedesktop.DBus.Peer is answered by godbus itself,
				// which ignores arguments.)
				if iface.Name != "org.freedesktop.DBus.Peer" {
					check("with an extra argument", call(o.owner, obj, obj.path, method, append(append([]any{}, valid...), int64(7))...),
						std("org.freedesktop.DBus.Error.InvalidArgs"), "InvalidArgs")
				}
				for i := range in {
					bad := append([]any{}, valid...)
					if in[i] == "x" {
						bad[i] = "x"
					} else {
						bad[i] = int64(7)
					}
					check(fmt.Sprintf("with argument %d of the wrong type", i), call(o.owner, obj, obj.path, method, bad...),
						std("org.freedesktop.DBus.Error.InvalidArgs"), "InvalidArgs")
				}
				// Nonexistent and foreign object paths as the target.
				if !strings.HasPrefix(iface.Name, "org.freedesktop.DBus.") {
					for _, p := range []dbus.ObjectPath{obj.path + "_nonexistent", foreignPath(obj, o)} {
						check("on "+string(p), call(o.owner, obj, p, method, valid...), std("org.freedesktop.DBus.Error.UnknownMethod"), "UnknownMethod (no such object)")
					}
				}
				// The owner's bad values, one argument at a time.
				for i, sig := range in {
					for _, bv := range abuseValues(sig, o) {
						bad := append([]any{}, valid...)
						bad[i] = bv
						err := call(o.owner, obj, obj.path, method, bad...)
						var want func(error) bool
						if i >= len(c.anyArgs) || c.anyArgs[i] != '*' {
							want = func(err error) bool { return err != nil }
						}
						check(fmt.Sprintf("by the owner with argument %d = %s", i, short([]any{bv})), err, want, "an error")
						if err == nil && c.restore != nil {
							c.restore(t, o)
						}
					}
				}
				// A stranger with the owner's arguments.
				err := call(o.stranger, obj, obj.path, method, valid...)
				if c.open {
					check("by a stranger", err, nil, "")
				} else {
					check("by a stranger", err, abuseRefused, "refused")
				}
			}
		}
	}
	for key := range abuseCases {
		if !seen[key] {
			t.Errorf("abuse case %q matches no introspected method", key)
		}
	}
	t.Logf("%d hostile calls", calls)
	// The owner's session survived all of it.
	if s := sessionStatus(t, st, session); s.Minor != api.StatusMinorConnConnected {
		t.Errorf("session after the matrix: %s", s)
	}
	if err := testbed.Ping(ctx, st.Pair.ClientNS, testbed.LANHost4, 3); err != nil {
		t.Errorf("ping after the matrix: %v", err)
	}
	if err := o.owner.Object(api.ServiceSessions, session).CallWithContext(ctx, api.InterfaceSessions+".Disconnect", 0).Err; err != nil {
		t.Fatal(err)
	}
	waitSignal(t, w, 30*time.Second, "SESS_DESTROYED", isSessionEvent(session, api.SessionEventDestroyed))
	waitClean(t, st.Pair, 10*time.Second)
}

// abuseRefused: refused for who the caller is (the bus policy, a
// service's authorization, or the profile's access check).
func abuseRefused(err error) bool {
	_, text, _ := api.ParseError(err)
	return refused(err) || api.IsDomain(err, api.DomainGDBusPP) && strings.Contains(text, "denied")
}

func isName(name string) func(error) bool {
	return func(err error) bool { return api.IsErrorName(err, name) }
}

func inSig(m introspect.Method) string {
	var b strings.Builder
	for _, a := range m.Args {
		if a.Direction == "in" {
			b.WriteString(a.Type)
		}
	}
	return "(" + b.String() + ")"
}

// foreignPath is an object of another service, called on obj's service.
func foreignPath(obj abuseObject, o *abuseObjects) dbus.ObjectPath {
	if obj.dest == api.ServiceSessions {
		return o.config
	}
	return o.session
}

// standardCase covers the standard interfaces every object has. A
// stranger may read the managers' properties but not those of the owner's
// objects; GetAll leaves out what the caller may not read (spec §2.0) and
// Set of an unknown property is refused as such, so they answer anyone.
func standardCase(obj abuseObject, node *introspect.Node, iface, method string) (abuseCase, bool) {
	// a property that is not everyone's (spec §5: owner is)
	main, firstProp := "", "version"
	for _, i := range node.Interfaces {
		if strings.HasPrefix(i.Name, "net.openvpn.v3.") {
			main = i.Name
			for _, p := range i.Properties {
				if p.Name != "owner" {
					firstProp = p.Name
					break
				}
			}
		}
	}
	switch iface + "." + method {
	case "org.freedesktop.DBus.Properties.Get":
		return abuseCase{open: strings.HasSuffix(obj.kind, " manager"), args: func(*abuseObjects) []any { return []any{main, firstProp} }}, true
	case "org.freedesktop.DBus.Properties.GetAll":
		return abuseCase{open: true, args: func(*abuseObjects) []any { return []any{main} }}, true
	case "org.freedesktop.DBus.Properties.Set":
		return abuseCase{open: true, args: func(*abuseObjects) []any {
			return []any{main, "no_such_property", dbus.MakeVariant("x")}
		}}, true
	case "org.freedesktop.DBus.Introspectable.Introspect", "org.freedesktop.DBus.Peer.Ping", "org.freedesktop.DBus.Peer.GetMachineId":
		return abuseCase{open: true}, true
	}
	return abuseCase{}, false
}

// Shorthands for the table.
func noArgs(*abuseObjects) []any { return nil }

func fixed(args ...any) func(*abuseObjects) []any {
	return func(*abuseObjects) []any { return args }
}

// abuseCases: one entry per method of the services' own interfaces, keyed
// "<object kind> <interface>.<method>".
var abuseCases = map[string]abuseCase{
	// configuration manager (anyone may import and list their own)
	// any text is imported (Validate judges it later); 1 MiB of junk is refused
	"configuration manager net.openvpn.v3.configuration.Import": {open: true, anyArgs: "****",
		args: func(o *abuseObjects) []any { return []any{"e2e-abuse-import", o.profile, false, false} }},
	"configuration manager net.openvpn.v3.configuration.FetchAvailableConfigs": {open: true},
	"configuration manager net.openvpn.v3.configuration.LookupConfigName":      {open: true, anyArgs: "*", args: fixed("e2e-abuse")},
	"configuration manager net.openvpn.v3.configuration.SearchByTag":           {open: true, anyArgs: "*", args: fixed("abuse")},
	"configuration manager net.openvpn.v3.configuration.SearchByOwner":         {open: true, anyArgs: "*", args: fixed("root")},
	// spec §2.1: an unknown or inaccessible path silently does nothing
	"configuration manager net.openvpn.v3.configuration.TransferOwnership": {anyArgs: "**",
		args: func(o *abuseObjects) []any { return []any{o.config, uint32(0)} },
		restore: func(t *testing.T, o *abuseObjects) {
			o.ownerCall(t, api.ServiceConfiguration, api.PathConfiguration, "TransferOwnership", o.config, uint32(0))
		}},
	// the owner's profile
	"configuration net.openvpn.v3.configuration.Validate":  {args: noArgs},
	"configuration net.openvpn.v3.configuration.FetchJSON": {args: noArgs},
	"configuration net.openvpn.v3.configuration.Fetch":     {args: noArgs},
	// ovpn3go's own, the profile's backend only
	"configuration net.openvpn.v3.configuration.FetchForBackend": {args: noArgs},
	// spec §2.2: a no-op
	"configuration net.openvpn.v3.configuration.SetOption":     {anyArgs: "**", args: fixed("verb", "3")},
	"configuration net.openvpn.v3.configuration.SetOverride":   {args: fixed("log-level", dbus.MakeVariant(uint32(4)))},
	"configuration net.openvpn.v3.configuration.UnsetOverride": {args: fixed("log-level")},
	"configuration net.openvpn.v3.configuration.AddTag":        {args: fixed("abuse")},
	"configuration net.openvpn.v3.configuration.RemoveTag":     {args: fixed("abuse")},
	"configuration net.openvpn.v3.configuration.AccessGrant": {anyArgs: "*", args: fixed(uint32(1)),
		restore: func(t *testing.T, o *abuseObjects) {
			for _, u := range []uint32{0xffffffff, 0x7fffffff} {
				o.owner.Object(api.ServiceConfiguration, o.config).Call(api.InterfaceConfiguration+".AccessRevoke", 0, u)
			}
		}},
	"configuration net.openvpn.v3.configuration.AccessRevoke": {args: fixed(uint32(1))},
	"configuration net.openvpn.v3.configuration.Seal":         {args: noArgs},
	"configuration net.openvpn.v3.configuration.Remove":       {args: noArgs},
	// session manager
	"sessions manager net.openvpn.v3.sessions.NewTunnel":              {args: func(o *abuseObjects) []any { return []any{o.config} }},
	"sessions manager net.openvpn.v3.sessions.FetchAvailableSessions": {open: true},
	"sessions manager net.openvpn.v3.sessions.FetchManagedInterfaces": {open: true},
	"sessions manager net.openvpn.v3.sessions.LookupConfigName":       {open: true, anyArgs: "*", args: fixed("e2e-abuse")},
	"sessions manager net.openvpn.v3.sessions.LookupInterface":        {open: true, anyArgs: "*", args: fixed("ovpn0")},
	// the owner's session
	"session net.openvpn.v3.sessions.Connect":    {args: noArgs},
	"session net.openvpn.v3.sessions.Resume":     {args: noArgs},
	"session net.openvpn.v3.sessions.Restart":    {args: noArgs},
	"session net.openvpn.v3.sessions.Disconnect": {args: noArgs},
	"session net.openvpn.v3.sessions.Ready":      {args: noArgs},
	"session net.openvpn.v3.sessions.Pause": {anyArgs: "*", args: fixed("abuse"),
		restore: func(t *testing.T, o *abuseObjects) {
			o.ownerCall(t, api.ServiceSessions, o.session, "Resume")
			waitConnected(t, o.st, o.session, "Resume after a Pause")
		}},
	"session net.openvpn.v3.sessions.AccessGrant": {anyArgs: "*", args: fixed(uint32(1)),
		restore: func(t *testing.T, o *abuseObjects) {
			for _, u := range []uint32{0xffffffff, 0x7fffffff} {
				o.owner.Object(api.ServiceSessions, o.session).Call(api.InterfaceSessions+".AccessRevoke", 0, u)
			}
		}},
	"session net.openvpn.v3.sessions.AccessRevoke":               {args: fixed(uint32(1))},
	"session net.openvpn.v3.sessions.LogForward":                 {args: fixed(true)},
	"session net.openvpn.v3.sessions.UserInputQueueGetTypeGroup": {args: noArgs},
	"session net.openvpn.v3.sessions.UserInputQueueFetch":        {args: fixed(uint32(1), uint32(1), uint32(0))},
	// no such queue: no indexes
	"session net.openvpn.v3.sessions.UserInputQueueCheck": {anyArgs: "**", args: fixed(uint32(1), uint32(1))},
	"session net.openvpn.v3.sessions.UserInputProvide":    {args: fixed(uint32(1), uint32(1), uint32(0), "x")},
	// log service
	"log manager net.openvpn.v3.log.Attach": {open: true, anyArgs: "*", args: fixed(api.InterfaceBackends),
		restore: func(t *testing.T, o *abuseObjects) {
			for _, v := range abuseValues("s", o) {
				o.owner.Object(api.ServiceLog, api.PathLog).Call(api.InterfaceLog+".Detach", 0, v)
			}
		}},
	"log manager net.openvpn.v3.log.AssignSession":     {args: func(o *abuseObjects) []any { return []any{o.session, api.InterfaceBackends} }},
	"log manager net.openvpn.v3.log.Detach":            {open: true, args: fixed(api.InterfaceBackends)},
	"log manager net.openvpn.v3.log.GetSubscriberList": {open: true},
	"log manager net.openvpn.v3.log.ProxyLogEvents": {args: func(o *abuseObjects) []any {
		return []any{o.owner.Names()[0], o.session}
	}},
	"log proxy net.openvpn.v3.log.Remove": {args: noArgs},
	// netcfg
	"netcfg manager net.openvpn.v3.netcfg.CreateVirtualInterface":  {args: fixed("abuse")},
	"netcfg manager net.openvpn.v3.netcfg.PrepareVirtualInterface": {args: fixed("abuseprep", false)},
	"netcfg manager net.openvpn.v3.netcfg.FetchInterfaceList":      {args: noArgs},
	// a compatibility no-op here (no caller; the server bypass is netcfg's own): arguments unused
	"netcfg manager net.openvpn.v3.netcfg.ProtectSocket": {anyArgs: "***", args: func(o *abuseObjects) []any {
		return []any{testbed.ServerIP4, false, o.device}
	}},
	"netcfg manager net.openvpn.v3.netcfg.DcoAvailable": {args: noArgs},
	"netcfg manager net.openvpn.v3.netcfg.Cleanup":      {args: noArgs},
	"netcfg manager net.openvpn.v3.netcfg.NotificationSubscribe": {anyArgs: "*", args: fixed(uint32(0xffff)),
		restore: func(t *testing.T, o *abuseObjects) {
			o.ownerCall(t, api.ServiceNetCfg, api.PathNetCfg, "NotificationUnsubscribe", "")
		}},
	"netcfg manager net.openvpn.v3.netcfg.NotificationUnsubscribe":    {args: fixed(":1.999999")},
	"netcfg manager net.openvpn.v3.netcfg.NotificationSubscriberList": {args: noArgs},
	// "" is no gateway
	"netcfg device net.openvpn.v3.netcfg.AddIPAddress":     {anyArgs: "..*.", args: fixed("198.19.77.2", uint32(24), "", false)},
	"netcfg device net.openvpn.v3.netcfg.SetRemoteAddress": {args: fixed(testbed.ServerIP4, false)},
	"netcfg device net.openvpn.v3.netcfg.AddNetworks":      {args: fixed([]abuseNet{{"198.19.99.0", 24, -1, false, false}})},
	"netcfg device net.openvpn.v3.netcfg.AddNetworksVia":   {args: fixed([]abuseNetVia{{"198.19.99.0", 24, -1, false, false, "198.19.0.1"}})},
	// [] adds nothing
	"netcfg device net.openvpn.v3.netcfg.AddDNS": {anyArgs: "*", args: fixed([]string{"192.0.2.99"})},
	// [] adds nothing
	"netcfg device net.openvpn.v3.netcfg.AddDNSSearch":    {anyArgs: "*", args: fixed([]string{"abuse.example"})},
	"netcfg device net.openvpn.v3.netcfg.SetDNSSEC":       {args: fixed("no")},
	"netcfg device net.openvpn.v3.netcfg.SetDNSTransport": {args: fixed("plain")},
	"netcfg device net.openvpn.v3.netcfg.EnableDCO":       {args: fixed("abusedco")},
	"netcfg device net.openvpn.v3.netcfg.Prepare":         {args: fixed(false)},
	"netcfg device net.openvpn.v3.netcfg.Describe": {args: fixed([]abuseSetting{
		{"mtu", []dbus.Variant{dbus.MakeVariant(uint16(1400))}}, {"AddDNS", []dbus.Variant{dbus.MakeVariant([]string{"192.0.2.99"})}}})},
	"netcfg device net.openvpn.v3.netcfg.Establish": {args: noArgs},
	"netcfg device net.openvpn.v3.netcfg.EstablishWith": {args: fixed([]abuseSetting{
		{"mtu", []dbus.Variant{dbus.MakeVariant(uint16(1400))}}, {"AddDNS", []dbus.Variant{dbus.MakeVariant([]string{"192.0.2.99"})}}})},
	"netcfg device net.openvpn.v3.netcfg.Disable": {args: noArgs},
	"netcfg device net.openvpn.v3.netcfg.Destroy": {args: noArgs},
	// the session's backend: only the session manager may call it
	"backend net.openvpn.v3.backends.RegistrationConfirmation": {args: func(o *abuseObjects) []any {
		return []any{"token", o.session, o.config}
	}},
	"backend net.openvpn.v3.backends.Ping":                       {args: noArgs},
	"backend net.openvpn.v3.backends.Ready":                      {args: noArgs},
	"backend net.openvpn.v3.backends.Connect":                    {args: noArgs},
	"backend net.openvpn.v3.backends.Pause":                      {args: fixed("abuse")},
	"backend net.openvpn.v3.backends.Resume":                     {args: noArgs},
	"backend net.openvpn.v3.backends.Restart":                    {args: noArgs},
	"backend net.openvpn.v3.backends.Disconnect":                 {args: noArgs},
	"backend net.openvpn.v3.backends.ForceShutdown":              {args: noArgs},
	"backend net.openvpn.v3.backends.UserInputQueueGetTypeGroup": {args: noArgs},
	"backend net.openvpn.v3.backends.UserInputQueueFetch":        {args: fixed(uint32(1), uint32(1), uint32(0))},
	"backend net.openvpn.v3.backends.UserInputQueueCheck":        {args: fixed(uint32(1), uint32(1))},
	"backend net.openvpn.v3.backends.UserInputProvide":           {args: fixed(uint32(1), uint32(1), uint32(0), "x")},
}

// abuseNet and abuseNetVia are AddNetworks' and AddNetworksVia's
// (suibb) and (suibbs) elements.
// abuseSetting is one element of netcfg's Describe (a(sav)).
type abuseSetting struct {
	Name string
	Args []dbus.Variant
}

type abuseNet struct {
	Addr         string
	Prefix       uint32
	Metric       int32
	IPv6, Exclud bool
}

type abuseNetVia struct {
	Addr         string
	Prefix       uint32
	Metric       int32
	IPv6, Exclud bool
	Gateway      string
}

// ownerCall calls method of the service's own interface as root and fails
// the test on an error.
func (o *abuseObjects) ownerCall(t *testing.T, dest string, path dbus.ObjectPath, method string, args ...any) {
	t.Helper()
	iface := map[string]string{api.ServiceConfiguration: api.InterfaceConfiguration, api.ServiceSessions: api.InterfaceSessions,
		api.ServiceNetCfg: api.InterfaceNetCfg, api.ServiceLog: api.InterfaceLog}[dest]
	if err := o.owner.Object(dest, path).Call(iface+"."+method, 0, args...).Err; err != nil {
		t.Errorf("restoring with %s: %v", method, err)
	}
}
