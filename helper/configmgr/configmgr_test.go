package configmgr_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/busobj"
	"github.com/ovpn3go/ovpn3go/helper/busobj/busobjtest"
	"github.com/ovpn3go/ovpn3go/helper/configmgr"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
	"github.com/ovpn3go/ovpn3go/internal/version"
)

var quiet = slog.New(slog.DiscardHandler)

const goodProfile = `client
dev tun
remote 192.0.2.1 1194 udp
auth-user-pass
<ca>
-----BEGIN CERTIFICATE-----
MIIB
-----END CERTIFICATE-----
</ca>
`

type env struct {
	addr   string
	dir    string
	svc    *configmgr.Service
	srv    *busobj.Server
	client *dbus.Conn
	events chan *dbus.Signal
}

func start(t *testing.T, addr, dir string) (*configmgr.Service, *busobj.Server) {
	t.Helper()
	srv, err := busobj.Connect(context.Background(), addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	svc := configmgr.New(dir, quiet)
	// Unless a test says otherwise, any owner of be<its PID> is the
	// backend of every profile's session (the session manager would say
	// for which one).
	svc.SetBackends(func(c *busobj.Call, _ dbus.ObjectPath) bool {
		return c.OwnsName(api.BackendBusName(c.PID))
	})
	if err := svc.Export(srv); err != nil {
		t.Fatal(err)
	}
	return svc, srv
}

func setup(t *testing.T) *env {
	t.Helper()
	testenv.RequireRoot(t)
	e := &env{addr: busobjtest.StartBus(t), dir: t.TempDir()}
	e.svc, e.srv = start(t, e.addr, e.dir)
	if err := e.srv.RequestName(api.ServiceConfiguration); err != nil {
		t.Fatal(err)
	}
	c, err := dbus.Connect(e.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	e.client = c
	if err := c.AddMatchSignal(dbus.WithMatchInterface(api.InterfaceConfiguration), dbus.WithMatchMember("ConfigurationManagerEvent")); err != nil {
		t.Fatal(err)
	}
	e.events = make(chan *dbus.Signal, 16)
	c.Signal(e.events)
	return e
}

func (e *env) obj(p dbus.ObjectPath) dbus.BusObject {
	return e.client.Object(api.ServiceConfiguration, p)
}

func (e *env) importProfile(t *testing.T, name, text string, single, persistent bool) dbus.ObjectPath {
	t.Helper()
	var p dbus.ObjectPath
	if err := e.obj(api.PathConfiguration).Call(api.InterfaceConfiguration+".Import", 0, name, text, single, persistent).Store(&p); err != nil {
		t.Fatalf("Import: %v", err)
	}
	return p
}

func (e *env) waitEvent(t *testing.T) (dbus.ObjectPath, api.ConfigEventType, uint32) {
	t.Helper()
	select {
	case s := <-e.events:
		return s.Body[0].(dbus.ObjectPath), api.ConfigEventType(s.Body[1].(uint16)), s.Body[2].(uint32)
	case <-time.After(20 * time.Second): // a lost signal, not a speed check
		t.Fatal("no ConfigurationManagerEvent")
	}
	return "", 0, 0
}

func prop(t *testing.T, o dbus.BusObject, name string) any {
	t.Helper()
	v, err := o.GetProperty(api.InterfaceConfiguration + "." + name)
	if err != nil {
		t.Fatalf("Get %s: %v", name, err)
	}
	return v.Value()
}

// asNobody runs busctl as UID 65534 against the test bus.
func (e *env) asNobody(t *testing.T, args ...string) (string, error) {
	t.Helper()
	busctl := testenv.RequireCommand(t, "busctl")
	all := append([]string{"--system"}, args...)
	cmd := busobjtest.AsUser(t, 65534, e.addr, busctl, all...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd = exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...)
	cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+e.addr)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func TestImportFetchRemove(t *testing.T) {
	e := setup(t)
	p := e.importProfile(t, "my vpn\n", goodProfile, false, false)
	if !api.IsChildPath(api.PathConfiguration, p) {
		t.Fatalf("path %s", p)
	}
	if gp, typ, owner := e.waitEvent(t); gp != p || typ != api.ConfigEventCreated || owner != 0 {
		t.Errorf("event %s %v %d", gp, typ, owner)
	}
	o := e.obj(p)
	var text string
	if err := o.Call(api.InterfaceConfiguration+".Fetch", 0).Store(&text); err != nil || text != goodProfile {
		t.Errorf("Fetch = %q, %v", text, err)
	}
	if prop(t, o, "name") != "my vpn" || prop(t, o, "owner") != uint32(0) || prop(t, o, "valid") != true ||
		prop(t, o, "persistent") != false || prop(t, o, "used_count") != uint32(0) {
		t.Error("properties after import")
	}
	if ts := prop(t, o, "import_timestamp").(uint64); time.Since(time.Unix(int64(ts), 0)) > time.Hour {
		t.Errorf("import_timestamp %d", ts)
	}
	var paths []dbus.ObjectPath
	if err := e.obj(api.PathConfiguration).Call(api.InterfaceConfiguration+".LookupConfigName", 0, "my vpn").Store(&paths); err != nil || len(paths) != 1 || paths[0] != p {
		t.Errorf("LookupConfigName = %v %v", paths, err)
	}
	info, ok := e.svc.Profile(p)
	if !ok || info.Name != "my vpn" || !info.CanUse(0) || info.CanUse(1000) {
		t.Errorf("Profile = %+v %v", info, ok)
	}
	if err := o.Call(api.InterfaceConfiguration+".Remove", 0).Err; err != nil {
		t.Fatal(err)
	}
	if gp, typ, _ := e.waitEvent(t); gp != p || typ != api.ConfigEventDestroyed {
		t.Errorf("event %s %v", gp, typ)
	}
	err := o.Call(api.InterfaceConfiguration+".Fetch", 0).Err
	if !api.IsErrorName(err, api.ErrNameUnknownMethod) {
		t.Errorf("Fetch after Remove: %v", err)
	}
	if _, ok := e.svc.Profile(p); ok {
		t.Error("Profile after Remove")
	}
}

func TestImportRefusesBadProfile(t *testing.T) {
	e := setup(t)
	err := e.obj(api.PathConfiguration).Call(api.InterfaceConfiguration+".Import", 0, "bad", "client\n<ca>\nxx\n", false, false).Err
	d, text, _ := api.ParseError(err)
	if d != api.DomainRequest || !strings.HasPrefix(text, "Invalid configuration profile: line 2") {
		t.Errorf("error %q %q", d, text)
	}
	err = e.obj(api.PathConfiguration).Call(api.InterfaceConfiguration+".Import", 0, "file", "client\ndev tun\nca /etc/ca.pem\n", false, false).Err
	if _, text, _ := api.ParseError(err); !strings.HasPrefix(text, "Invalid configuration profile: line 3: option 'ca' refers to file") {
		t.Errorf("file reference: %q", text)
	}
	// incomplete but parseable: imported with valid=false; Validate names what is missing
	p := e.importProfile(t, "incomplete", "client\nremote 192.0.2.1\n", false, false)
	if prop(t, e.obj(p), "valid") != false {
		t.Error("valid")
	}
	err = e.obj(p).Call(api.InterfaceConfiguration+".Validate", 0).Err
	if _, text, _ := api.ParseError(err); text != "Configuration profile is missing required options: --ca, --dev; "+
		"Configuration profile is invalid: profile: no way to authenticate: add <cert> and <key> (or <pkcs12>), or auth-user-pass" {
		t.Errorf("Validate: %v", err)
	}
	if err := e.obj(p).Call(api.InterfaceConfiguration+".Seal", 0).Err; api.ErrorText(err) != "Configuration is not currently valid" {
		t.Errorf("Seal: %v", err)
	}
}

func TestAccessRules(t *testing.T) {
	e := setup(t)
	p := e.importProfile(t, "root's", goodProfile, false, false)
	o := e.obj(p)
	// nobody sees neither the profile in listings nor its content
	out, err := e.asNobody(t, "call", api.ServiceConfiguration, string(api.PathConfiguration), api.InterfaceConfiguration, "FetchAvailableConfigs")
	if err != nil || out != "ao 0" {
		t.Errorf("FetchAvailableConfigs as nobody: %q %v", out, err)
	}
	out, err = e.asNobody(t, "call", api.ServiceConfiguration, string(p), api.InterfaceConfiguration, "Fetch")
	if err == nil || !strings.Contains(out, "Access to the configuration profile is denied.") {
		t.Errorf("Fetch as nobody: %q %v", out, err)
	}
	out, err = e.asNobody(t, "get-property", api.ServiceConfiguration, string(p), api.InterfaceConfiguration, "owner")
	if err != nil || out != "u 0" {
		t.Errorf("owner as nobody: %q %v", out, err)
	}
	out, err = e.asNobody(t, "get-property", api.ServiceConfiguration, string(p), api.InterfaceConfiguration, "name")
	// busctl prints AccessDenied as strerror(EACCES)
	if err == nil || !strings.Contains(out, "Access denied") {
		t.Errorf("name as nobody: %q %v", out, err)
	}
	// public access: listing and properties, but still no Fetch
	if err := o.SetProperty(api.InterfaceConfiguration+".public_access", dbus.MakeVariant(true)); err != nil {
		t.Fatal(err)
	}
	out, err = e.asNobody(t, "call", api.ServiceConfiguration, string(api.PathConfiguration), api.InterfaceConfiguration, "FetchAvailableConfigs")
	if err != nil || out != `ao 1 "`+string(p)+`"` {
		t.Errorf("FetchAvailableConfigs as nobody (public): %q %v", out, err)
	}
	out, err = e.asNobody(t, "call", api.ServiceConfiguration, string(p), api.InterfaceConfiguration, "Fetch")
	if err == nil {
		t.Errorf("Fetch as nobody (public): %q", out)
	}
	out, err = e.asNobody(t, "set-property", api.ServiceConfiguration, string(p), api.InterfaceConfiguration, "name", "s", "mine")
	if err == nil || !strings.Contains(out, "Access denied") {
		t.Errorf("rename as nobody: %q %v", out, err)
	}
	out, err = e.asNobody(t, "call", api.ServiceConfiguration, string(p), api.InterfaceConfiguration, "Remove")
	if err == nil || !strings.Contains(out, "Access to the configuration profile is denied.") {
		t.Errorf("Remove as nobody: %q %v", out, err)
	}
	// ACL grants Fetch
	if err := o.Call(api.InterfaceConfiguration+".AccessGrant", 0, uint32(65534)).Err; err != nil {
		t.Fatal(err)
	}
	if err := o.Call(api.InterfaceConfiguration+".AccessGrant", 0, uint32(65534)).Err; api.ErrorText(err) != "UID already granted access" {
		t.Errorf("second AccessGrant: %v", err)
	}
	out, err = e.asNobody(t, "call", api.ServiceConfiguration, string(p), api.InterfaceConfiguration, "Fetch")
	if err != nil || !strings.Contains(out, "dev tun") {
		t.Errorf("Fetch as ACL member: %q %v", out, err)
	}
	if info, _ := e.svc.Profile(p); !info.CanUse(65534) || info.CanUse(1) != true {
		t.Errorf("CanUse with ACL and public: %+v", info)
	}
	// nobody's own import is owned by nobody
	out, err = e.asNobody(t, "call", api.ServiceConfiguration, string(api.PathConfiguration), api.InterfaceConfiguration, "Import", "ssbb", "mine", goodProfile, "false", "false")
	if err != nil || !strings.HasPrefix(out, "o ") {
		t.Fatalf("Import as nobody: %q %v", out, err)
	}
	mine := dbus.ObjectPath(strings.Trim(strings.TrimPrefix(out, "o "), `"`))
	if info, ok := e.svc.Profile(mine); !ok || info.Owner != 65534 {
		t.Errorf("owner of nobody's import: %+v", info)
	}
	// sealed: writes refused, owner may still remove
	if err := o.Call(api.InterfaceConfiguration+".Seal", 0).Err; err != nil {
		t.Fatal(err)
	}
	if err := o.Call(api.InterfaceConfiguration+".AddTag", 0, "x").Err; api.ErrorText(err) != "Configuration profile is sealed and read-only" {
		t.Errorf("AddTag on sealed: %v", err)
	}
	err = o.SetProperty(api.InterfaceConfiguration+".name", dbus.MakeVariant("x"))
	if !api.IsErrorName(err, api.ErrNameAccessDenied) || api.ErrorText(err) != "Configuration profile is sealed and read-only" {
		t.Errorf("rename sealed: %v", err)
	}
	if err := o.Call(api.InterfaceConfiguration+".Remove", 0).Err; err != nil {
		t.Errorf("Remove sealed: %v", err)
	}
}

func TestBackendFetchSingleUse(t *testing.T) {
	e := setup(t)
	p := e.importProfile(t, "once", goodProfile, true, false)
	e.waitEvent(t)
	// the owner's Fetch changes nothing
	if err := e.obj(p).Call(api.InterfaceConfiguration+".Fetch", 0).Err; err != nil {
		t.Fatal(err)
	}
	if _, ok := e.svc.Profile(p); !ok {
		t.Fatal("owner's Fetch removed a single-use profile")
	}
	// a backend: a process of the backend user owning
	// net.openvpn.v3.backends.be<its PID>
	bin := clientBinary(t)
	backendFetch := func(p dbus.ObjectPath) aclResult {
		t.Helper()
		res, err := runClient(t, e.addr, bin, backendCaller(t), []aclRequest{{Op: "fetch", Path: p}})
		if err != nil {
			t.Fatal(err)
		}
		return res[0]
	}
	if r := backendFetch(p); r.Err != "" || r.Value != goodProfile {
		t.Fatalf("backend Fetch: %+v", r)
	}
	if gp, typ, _ := e.waitEvent(t); gp != p || typ != api.ConfigEventDestroyed {
		t.Errorf("event %s %v", gp, typ)
	}
	if _, ok := e.svc.Profile(p); ok {
		t.Error("single-use profile survived a backend Fetch")
	}
	// FetchForBackend is a Fetch: it removes a single-use profile too,
	// after reading its properties
	once := e.importProfile(t, "once again", goodProfile, true, false)
	e.waitEvent(t)
	if err := e.obj(once).Call(api.InterfaceConfiguration+".SetOverride", 0, "ipv6", dbus.MakeVariant("no")).Err; err != nil {
		t.Fatal(err)
	}
	res, err := runClient(t, e.addr, bin, backendCaller(t), []aclRequest{{Op: "fetch for backend", Path: once}})
	if err != nil {
		t.Fatal(err)
	}
	if want := "once again|false|ipv6=no|" + goodProfile; res[0].Err != "" || res[0].Value != want {
		t.Fatalf("backend FetchForBackend of a single-use profile: %+v, want value %q", res[0], want)
	}
	if gp, typ, _ := e.waitEvent(t); gp != once || typ != api.ConfigEventDestroyed {
		t.Errorf("event %s %v", gp, typ)
	}
	if _, ok := e.svc.Profile(once); ok {
		t.Error("single-use profile survived a backend FetchForBackend")
	}
	// a persistent single-use profile takes its file with it
	ps := e.importProfile(t, "once, kept", goodProfile, true, true)
	file := filepath.Join(e.dir, api.PathID(ps)+".json")
	if _, err := os.Stat(file); err != nil {
		t.Fatal(err)
	}
	if r := backendFetch(ps); r.Err != "" {
		t.Fatalf("backend Fetch: %+v", r)
	}
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("file of a used single-use profile: %v", err)
	}
	// a multi-use profile counts the backend's uses
	q := e.importProfile(t, "many", goodProfile, false, false)
	if r := backendFetch(q); r.Err != "" {
		t.Fatalf("backend Fetch: %+v", r)
	}
	if prop(t, e.obj(q), "used_count") != uint32(1) || prop(t, e.obj(q), "last_used_timestamp").(uint64) == 0 {
		t.Error("backend use not counted")
	}
}

// A backend's use of a persistent profile is written to its file after
// the reply: held back, the FetchForBackend still answers with the text;
// released, the file counts the use.
func TestBackendUseWrittenAfterReply(t *testing.T) {
	e := setup(t)
	p := e.importProfile(t, "kept", goodProfile, false, true)
	held := make(chan struct{}, 1)
	release := e.svc.HoldUseWrites(held)
	guard := time.AfterFunc(30*time.Second, release) // a hang guard, not a speed check
	defer release()
	res, err := runClient(t, e.addr, clientBinary(t), backendCaller(t), []aclRequest{{Op: "fetch for backend", Path: p}})
	waited := !guard.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if waited {
		t.Fatal("the backend's FetchForBackend waited for its use to be written")
	}
	if want := "kept|false||" + goodProfile; res[0].Err != "" || res[0].Value != want {
		t.Fatalf("FetchForBackend: %+v", res[0])
	}
	<-held
	release()
	file := filepath.Join(e.dir, api.PathID(p)+".json")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) { // a hang guard
		var saved struct {
			UsedCount uint32 `json:"used_count"`
		}
		b, err := os.ReadFile(file)
		if err == nil && json.Unmarshal(b, &saved) == nil && saved.UsedCount == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the use never reached the file: %s (%v)", b, err)
		}
	}
}

func TestTagsOverridesProperties(t *testing.T) {
	e := setup(t)
	p := e.importProfile(t, "t", goodProfile, false, false)
	o := e.obj(p)
	ifc := api.InterfaceConfiguration
	for _, tc := range []struct {
		method string
		args   []any
		want   string
	}{
		{"AddTag", []any{"work"}, ""},
		{"AddTag", []any{"work"}, "Tag already exists"},
		{"AddTag", []any{""}, "Tag value cannot be empty"},
		{"AddTag", []any{strings.Repeat("x", 129)}, "Tag value too long"},
		{"RemoveTag", []any{"home"}, "Non-existing tag"},
		{"SetOverride", []any{"persist-tun", dbus.MakeVariant(true)}, ""},
		{"SetOverride", []any{"dns-scope", dbus.MakeVariant("tunnel")}, ""},
		{"SetOverride", []any{"bogus", dbus.MakeVariant(true)}, "Invalid override key 'bogus'"},
		{"SetOverride", []any{"persist-tun", dbus.MakeVariant("yes")}, "(SetOverride) Invalid override data type for 'persist-tun': s"},
		{"SetOverride", []any{"port-override", dbus.MakeVariant(uint32(1))}, "Unsupported override data type: u"},
		{"SetOverride", []any{"proxy-host", dbus.MakeVariant(strings.Repeat("h", 4097))}, "Override value for 'proxy-host' is too long"},
		{"UnsetOverride", []any{"ipv6"}, "Override 'ipv6' has not been set"},
		{"SetOption", []any{"a", "b"}, ""},
		{"AccessRevoke", []any{uint32(5)}, "UID not granted access"},
	} {
		err := o.Call(ifc+"."+tc.method, 0, tc.args...).Err
		if got := api.ErrorText(err); got != tc.want {
			t.Errorf("%s%v: %q, want %q", tc.method, tc.args, got, tc.want)
		}
		if err != nil && !api.IsDomain(err, api.DomainGDBusPP) {
			t.Errorf("%s: domain of %v", tc.method, err)
		}
	}
	if tags := prop(t, o, "tags").([]string); len(tags) != 1 || tags[0] != "work" {
		t.Errorf("tags %v", tags)
	}
	// a profile holds at most 64 tags
	for i := 1; i < 64; i++ {
		if err := o.Call(ifc+".AddTag", 0, fmt.Sprintf("t%d", i)).Err; err != nil {
			t.Fatal(err)
		}
	}
	if err := o.Call(ifc+".AddTag", 0, "one-too-many").Err; api.ErrorText(err) != "Too many tags" {
		t.Errorf("65th tag: %v", err)
	}
	ov := prop(t, o, "overrides").(map[string]dbus.Variant)
	if len(ov) != 2 || ov["persist-tun"].Value() != true || ov["dns-scope"].Value() != "tunnel" {
		t.Errorf("overrides %v", ov)
	}
	var paths []dbus.ObjectPath
	if err := e.obj(api.PathConfiguration).Call(ifc+".SearchByTag", 0, "work").Store(&paths); err != nil || len(paths) != 1 {
		t.Errorf("SearchByTag %v %v", paths, err)
	}
	var js string
	if err := o.Call(ifc+".FetchJSON", 0).Store(&js); err != nil {
		t.Fatal(err)
	}
	var parsed map[string]any
	if err := json.Unmarshal([]byte(js), &parsed); err != nil {
		t.Fatalf("FetchJSON: %v: %s", err, js)
	}
	if r, _ := parsed["remote"].([]any); len(r) != 1 || len(r[0].([]any)) != 3 || r[0].([]any)[0] != "192.0.2.1" {
		t.Errorf("FetchJSON remote: %v", parsed["remote"])
	}
	if ca, _ := parsed["ca"].([]any); len(ca) != 1 || !strings.Contains(ca[0].(string), "BEGIN CERTIFICATE") {
		t.Errorf("FetchJSON ca: %v", parsed["ca"])
	}
	if err := e.obj(api.PathConfiguration).Call(ifc+".SearchByOwner", 0, "root").Store(&paths); err != nil || len(paths) != 1 {
		t.Errorf("SearchByOwner %v %v", paths, err)
	}
	if err := e.obj(api.PathConfiguration).Call(ifc+".SearchByOwner", 0, "no-such-user-xyz").Err; err == nil {
		t.Error("SearchByOwner with an unknown user")
	}
	if err := o.SetProperty(ifc+".locked_down", dbus.MakeVariant("yes")); !api.IsErrorName(err, api.ErrNameInvalidArgs) {
		t.Errorf("Set with wrong type: %v", err)
	}
	var all map[string]dbus.Variant
	if err := o.Call("org.freedesktop.DBus.Properties.GetAll", 0, ifc).Store(&all); err != nil || len(all) != 16 {
		t.Errorf("GetAll: %d properties, %v", len(all), err)
	}
	ver, err := e.obj(api.PathConfiguration).GetProperty(ifc + ".version")
	if err != nil || ver.Value() != version.Service() {
		t.Errorf("version %v %v", ver, err)
	}
}

func TestPersistence(t *testing.T) {
	e := setup(t)
	p := e.importProfile(t, "kept", goodProfile, false, true)
	e.importProfile(t, "not kept", goodProfile, false, false)
	if err := e.obj(p).Call(api.InterfaceConfiguration+".AddTag", 0, "saved").Err; err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(e.dir, api.PathID(p)+".json")
	st, err := os.Stat(file)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("state file: %v %v", st, err)
	}
	var saved map[string]any
	b, _ := os.ReadFile(file)
	if err := json.Unmarshal(b, &saved); err != nil || saved["object_path"] != string(p) || saved["name"] != "kept" {
		t.Errorf("saved JSON %s: %v", b, err)
	}
	if entries, _ := os.ReadDir(e.dir); len(entries) != 1 {
		t.Errorf("state dir holds %d entries, want only the persistent profile", len(entries))
	}
	// a corrupt file next to it is skipped
	if err := os.WriteFile(filepath.Join(e.dir, "broken.json"), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	svc2 := configmgr.New(e.dir, quiet)
	srv2, err := busobj.Connect(context.Background(), e.addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv2.Close()
	if err := svc2.Export(srv2); err != nil {
		t.Fatal(err)
	}
	info, ok := svc2.Profile(p)
	if !ok || info.Name != "kept" || !info.Persistent || len(info.Tags) != 1 {
		t.Errorf("reloaded %+v %v", info, ok)
	}
	// Remove deletes the file
	if err := e.obj(p).Call(api.InterfaceConfiguration+".Remove", 0).Err; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state file after Remove: %v", err)
	}
}

// writeRecord writes a profile file as the service would, by hand.
func writeRecord(t *testing.T, dir string, rec map[string]any, mode os.FileMode) string {
	t.Helper()
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, api.PathID(dbus.ObjectPath(rec["object_path"].(string)))+".json")
	if err := os.WriteFile(file, b, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(file, mode); err != nil {
		t.Fatal(err)
	}
	return file
}

func TestLoadSkipsBadFilesKeepsOthers(t *testing.T) {
	testenv.RequireRoot(t)
	addr := busobjtest.StartBus(t)
	dir := t.TempDir()
	rec := func(text string) map[string]any {
		return map[string]any{"object_path": string(api.NewConfigPath()), "name": "n", "owner": 1000, "acl": []uint32{1001, 1001},
			"tags": []string{"a", "a", ""}, "overrides": map[string]any{"persist-tun": true, "ipv6": true, "bogus": "x"}, "config": text}
	}
	good := rec(goodProfile)
	writeRecord(t, dir, good, 0o600)
	// the parser refuses this text now: kept, not valid, reported
	stale := rec("client\nno-such-option-xyz 1\n")
	writeRecord(t, dir, stale, 0o600)
	// world-writable and foreign-owned files are not trusted
	writable := writeRecord(t, dir, rec(goodProfile), 0o666)
	foreign := writeRecord(t, dir, rec(goodProfile), 0o600)
	if err := os.Chown(foreign, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "broken.json"), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	// a write interrupted before its rename
	tmpFile := filepath.Join(dir, ".tmp-12345.json")
	if err := os.WriteFile(tmpFile, []byte(`{"object_path": "/net/op`), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))
	srv, err := busobj.Connect(context.Background(), addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	svc := configmgr.New(dir, logger)
	if err := svc.Export(srv); err != nil {
		t.Fatal(err)
	}
	info, ok := svc.Profile(dbus.ObjectPath(good["object_path"].(string)))
	if !ok || !info.Valid || info.Owner != 1000 || len(info.ACL) != 1 || len(info.Tags) != 1 ||
		len(info.Overrides) != 1 || info.Overrides["persist-tun"] != true {
		t.Errorf("good profile: %+v %v", info, ok)
	}
	if info, ok := svc.Profile(dbus.ObjectPath(stale["object_path"].(string))); !ok || info.Valid {
		t.Errorf("stale profile: %+v %v", info, ok)
	}
	mu.Lock()
	out := logs.String()
	mu.Unlock()
	for _, want := range []string{"file=broken.json", "file=" + filepath.Base(writable), "writable by others",
		"file=" + filepath.Base(foreign), "owned by uid 1000", "stored profile is not valid"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(tmpFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale temporary file left: %v", err)
	}
	for _, f := range []string{writable, foreign, filepath.Join(dir, "broken.json")} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("skipped file was touched: %v", err)
		}
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *strings.Builder
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// A backend may Fetch and read only the profile of its own session; a
// profile's secret overrides are shown to its owner and that backend, not
// to users it is shared with.
func TestBackendOnlyItsProfileAndSecrets(t *testing.T) {
	e := setup(t)
	mine := e.importProfile(t, "mine", goodProfile, false, false)
	other := e.importProfile(t, "other", goodProfile, false, false)
	e.svc.SetBackends(func(c *busobj.Call, p dbus.ObjectPath) bool {
		return c.OwnsName(api.BackendBusName(c.PID)) && p == mine
	})
	ifc := api.InterfaceConfiguration
	for _, p := range []dbus.ObjectPath{mine, other} {
		for _, call := range []struct {
			m    string
			args []any
		}{
			{"SetOverride", []any{"proxy-password", dbus.MakeVariant("s3cret")}},
			{"SetOverride", []any{"proxy-username", dbus.MakeVariant("alice")}},
			{"AccessGrant", []any{uint32(65534)}},
		} {
			if err := e.obj(p).Call(ifc+"."+call.m, 0, call.args...).Err; err != nil {
				t.Fatalf("%s: %v", call.m, err)
			}
		}
	}
	bin := clientBinary(t)
	res, err := runClient(t, e.addr, bin, backendCaller(t), []aclRequest{
		{Op: "fetch", Path: mine}, {Op: "fetch", Path: other},
		{Op: "get overrides", Path: mine}, {Op: "get name", Path: other},
		{Op: "fetch for backend", Path: mine}, {Op: "fetch for backend", Path: other},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != "" || res[0].Value != goodProfile {
		t.Errorf("backend Fetch of its own profile: %+v", res[0])
	}
	if res[1] != methodDenied {
		t.Errorf("backend Fetch of another session's profile: %+v, want %+v", res[1], methodDenied)
	}
	if res[2].Err != "" || !strings.Contains(res[2].Value, "s3cret") {
		t.Errorf("backend reading its profile's overrides: %+v", res[2])
	}
	if res[3] != getDenied {
		t.Errorf("backend reading another profile: %+v, want %+v", res[3], getDenied)
	}
	// FetchForBackend: the name, dco, every override (the secret too) and
	// the text in one answer, for its own profile only.
	if want := "mine|false|proxy-password=s3cret,proxy-username=alice|" + goodProfile; res[4].Err != "" || res[4].Value != want {
		t.Errorf("backend FetchForBackend of its own profile: %+v, want value %q", res[4], want)
	}
	if res[5].Err != methodDenied.Err || res[5].Message != methodDenied.Message {
		t.Errorf("backend FetchForBackend of another session's profile: %+v, want %+v", res[5], methodDenied)
	}
	overrides := func(c *dbus.Conn) map[string]dbus.Variant {
		t.Helper()
		var m map[string]dbus.Variant
		if err := c.Object(api.ServiceConfiguration, mine).Call(api.InterfaceProperties+".Get", 0, ifc, "overrides").Store(&m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	if m := overrides(e.client); m["proxy-password"].Value() != "s3cret" || m["proxy-username"].Value() != "alice" {
		t.Errorf("owner's overrides: %v", m)
	}
	granted := busobjtest.DialAs(t, e.addr, 65534, 65534)
	if m := overrides(granted); m["proxy-username"].Value() != "alice" || len(m) != 1 {
		t.Errorf("overrides shown to a granted user: %v, want proxy-username only", m)
	}
}
