package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"
	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/busobj"
	"github.com/ovpn3go/ovpn3go/helper/busobj/busobjtest"
	"github.com/ovpn3go/ovpn3go/helper/configmgr"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

const testCA = "<ca>\n-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n</ca>\n"

// configService runs the real configuration service on a private bus and
// points the CLI at it; it returns a root client connection.
func configService(t *testing.T) *dbus.Conn {
	t.Helper()
	testenv.RequireRoot(t)
	addr := busobjtest.StartBus(t)
	srv, err := busobj.Connect(context.Background(), addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	if err := configmgr.New(t.TempDir(), slog.New(slog.DiscardHandler)).Export(srv); err != nil {
		t.Fatal(err)
	}
	if err := srv.RequestName(api.ServiceConfiguration); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", addr)
	conn, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// writeProfile writes a profile file and returns its path.
func writeProfile(t *testing.T, name, text string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// importCmd imports text under name through the CLI and returns the path.
func importCmd(t *testing.T, name, text string, extra ...string) dbus.ObjectPath {
	t.Helper()
	out, err := runCmd(t, append([]string{"config-import", "--config", writeProfile(t, name+".ovpn", text), "--name", name}, extra...)...)
	if err != nil {
		t.Fatalf("config-import %s: %v", name, describeError(err))
	}
	return dbus.ObjectPath(strings.TrimSpace(out))
}

func cfgProp(t *testing.T, conn *dbus.Conn, p dbus.ObjectPath, name string) any {
	t.Helper()
	v, err := conn.Object(api.ServiceConfiguration, p).GetProperty(api.InterfaceConfiguration + "." + name)
	if err != nil {
		t.Fatalf("Get %s: %v", name, err)
	}
	return v.Value()
}

const goodText = "client\ndev tun\nremote 192.0.2.1 1194\nauth-user-pass\npersist-tun\n" + testCA

func TestConfigImportTagsOverrideValidate(t *testing.T) {
	conn := configService(t)
	p := importCmd(t, "tagged", goodText, "--tag", "work", "--tag", "eu")
	if tags := cfgProp(t, conn, p, "tags").([]string); strings.Join(tags, ",") != "work,eu" {
		t.Errorf("tags %v", tags)
	}
	ov := cfgProp(t, conn, p, "overrides").(map[string]dbus.Variant)
	if len(ov) != 1 || ov["persist-tun"].Value() != true {
		t.Errorf("persist-tun in the file did not become the override: %v", ov)
	}
	// an incomplete profile is imported, with a one-line warning
	var warn bytes.Buffer
	stderr = &warn
	defer func() { stderr = os.Stderr }()
	q := importCmd(t, "incomplete", "client\nremote 192.0.2.1\nauth-user-pass\n")
	if cfgProp(t, conn, q, "valid") != false {
		t.Error("incomplete profile valid")
	}
	if w := warn.String(); w != "ovpn3 config-import: warning: imported, but not usable yet: Configuration profile is missing required options: --ca, --dev\n" {
		t.Errorf("warning %q", w)
	}
	// reserved or bad tags are refused before anything is imported
	for _, tag := range []string{"system:x", strings.Repeat("t", 129)} {
		_, err := runCmd(t, "config-import", "--config", writeProfile(t, "x.ovpn", goodText), "--tag", tag)
		if !errors.Is(err, errUsage) {
			t.Errorf("--tag %.10s…: %v", tag, err)
		}
	}
	// An empty or option-less file is refused by the CLI, naming the
	// file; the D-Bus Import itself keeps openvpn3's semantics.
	for _, text := range []string{"", "\n\n", "# only a comment\n; and another\n  \n"} {
		file := writeProfile(t, "empty.ovpn", text)
		_, err := runCmd(t, "config-import", "--config", file)
		if err == nil || describeError(err) != "profile "+file+" has no options (empty, or only comments): is this an OpenVPN profile?" {
			t.Errorf("config-import of %q: %v", text, err)
		}
		// session-start's file fallback reads the file the same way
		if _, err := runCmd(t, "session-start", "--config", file); err == nil || !strings.Contains(describeError(err), "has no options") {
			t.Errorf("session-start of %q: %v", text, err)
		}
	}
	// session-start of a file that does not validate leaves no profile
	// behind (checked by the count below).
	invalid := writeProfile(t, "invalid.ovpn", "client\nremote 192.0.2.1\n")
	if _, err := runCmd(t, "session-start", "--config", invalid); err == nil || !strings.Contains(describeError(err), "missing required options") {
		t.Errorf("session-start of an invalid file: %v", err)
	}
	var empty dbus.ObjectPath
	if err := conn.Object(api.ServiceConfiguration, api.PathConfiguration).Call(api.InterfaceConfiguration+".Import", 0, "empty", "", false, false).Store(&empty); err != nil {
		t.Errorf("D-Bus Import of an empty profile: %v (openvpn3 accepts it)", err)
	} else if err := conn.Object(api.ServiceConfiguration, empty).Call(api.InterfaceConfiguration+".Remove", 0).Err; err != nil {
		t.Error(err)
	}
	var paths []dbus.ObjectPath
	if err := conn.Object(api.ServiceConfiguration, api.PathConfiguration).Call(api.InterfaceConfiguration+".FetchAvailableConfigs", 0).Store(&paths); err != nil || len(paths) != 2 {
		t.Errorf("profiles after the refused imports: %v %v", paths, err)
	}
	if code := run([]string{"config-import", "--config", "/nonexistent/x.ovpn"}); code != 1 {
		t.Errorf("missing file: exit %d", code)
	}
}

func TestConfigsListOptions(t *testing.T) {
	configService(t)
	a := importCmd(t, "office-a", goodText, "--tag", "work")
	b := importCmd(t, "office-b", goodText)
	c := importCmd(t, "home", goodText, "--tag", "work")
	tests := []struct {
		args       []string
		want, lack []dbus.ObjectPath
	}{
		{nil, []dbus.ObjectPath{a, b, c}, nil},
		{[]string{"--filter-config", "office"}, []dbus.ObjectPath{a, b}, []dbus.ObjectPath{c}},
		{[]string{"--filter-tag", "work"}, []dbus.ObjectPath{a, c}, []dbus.ObjectPath{b}},
		{[]string{"--filter-owner", "root"}, []dbus.ObjectPath{a, b, c}, nil},
		{[]string{"--filter-owner", "0", "--filter-config", "home", "-v"}, []dbus.ObjectPath{c}, []dbus.ObjectPath{a, b}},
	}
	for _, tt := range tests {
		out, err := runCmd(t, append([]string{"configs-list"}, tt.args...)...)
		if err != nil {
			t.Errorf("configs-list %v: %v", tt.args, err)
			continue
		}
		for _, p := range tt.want {
			if !strings.Contains(out, string(p)) {
				t.Errorf("configs-list %v lacks %s:\n%s", tt.args, p, out)
			}
		}
		for _, p := range tt.lack {
			if strings.Contains(out, string(p)) {
				t.Errorf("configs-list %v shows %s:\n%s", tt.args, p, out)
			}
		}
	}
	if out, err := runCmd(t, "configs-list", "--count", "--filter-tag", "work"); err != nil || out != "2\n" {
		t.Errorf("--count: %q %v", out, err)
	}
	out, err := runCmd(t, "configs-list", "--json", "--filter-config", "home")
	var entries []map[string]any
	if err != nil || json.Unmarshal([]byte(out), &entries) != nil || len(entries) != 1 {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	for _, k := range []string{"path", "name", "owner", "valid", "tags", "dco", "transfer_owner_session", "locked_down", "public_access", "acl", "used_count"} {
		if _, ok := entries[0][k]; !ok {
			t.Errorf("--json lacks %q: %v", k, entries[0])
		}
	}
	if out, _ := runCmd(t, "configs-list", "-v"); !strings.Contains(out, "Valid") || !strings.Contains(out, "work") {
		t.Errorf("--verbose:\n%s", out)
	}
	for _, bad := range [][]string{{"--json", "--count"}, {"--filter-tag", "a", "--filter-owner", "root"}, {"extra"}} {
		if _, err := runCmd(t, append([]string{"configs-list"}, bad...)...); !errors.Is(err, errUsage) {
			t.Errorf("configs-list %v: %v", bad, err)
		}
	}
	if _, err := runCmd(t, "configs-list", "--filter-owner", "no-such-user-xyz"); err == nil {
		t.Error("unknown owner accepted")
	}
}

func TestConfigDump(t *testing.T) {
	configService(t)
	p := importCmd(t, "dumped", goodText)
	text, err := runCmd(t, "config-dump", "--config", "dumped")
	if err != nil || !strings.Contains(text, "remote 192.0.2.1 1194\n") || !strings.Contains(text, "<ca>\n") {
		t.Errorf("config-dump: %v\n%s", err, text)
	}
	out, err := runCmd(t, "config-dump", "-o", string(p), "--json")
	var js map[string]any
	if err != nil || json.Unmarshal([]byte(out), &js) != nil {
		t.Fatalf("config-dump --json: %v\n%s", err, out)
	}
	if _, ok := js["remote"]; !ok || js["dev"].([]any)[0] != "tun" {
		t.Errorf("config-dump --json: %v", js)
	}
	if _, err := runCmd(t, "config-dump", "--config", "nope"); err == nil || describeError(err) != `no configuration profile named "nope"` {
		t.Errorf("unknown name: %v", err)
	}
}

func TestConfigManage(t *testing.T) {
	conn := configService(t)
	p := importCmd(t, "managed", goodText)
	ps := string(p)
	steps := []struct {
		args    []string
		wantErr string // describeError text; "usage" for argument errors
	}{
		{[]string{"--rename", "renamed"}, ""},
		{[]string{"--dco", "true", "--tag", "t1", "--tag", "t2", "--remove-tag", "t1"}, ""},
		{[]string{"--proto-override", "tcp", "--persist-tun", "false", "--proxy-host", "proxy.example", "--proxy-port", "3128",
			"--proxy-password", "s3cret", "--dns-setup-disabled", "yes", "--tls-version-min", "tls_1_2"}, ""},
		{[]string{"--unset-override", "proxy-host"}, ""},
		{[]string{"--unset-override", "ipv6"}, "--unset-override ipv6: Override 'ipv6' has not been set"},
		{[]string{"--proto-override", "sctp"}, "usage"},
		{[]string{"--port-override", "70000"}, "usage"},
		{[]string{"--persist-tun", "maybe"}, "usage"},
		{[]string{"--unset-override", "bogus"}, "usage"},
		{[]string{"--tag", "system:x"}, "usage"},
		{[]string{"--remove-tag", "never"}, `remove tag "never": Non-existing tag`},
		{[]string{"--quiet"}, "usage"},
		{nil, "usage"},
	}
	for _, s := range steps {
		_, err := runCmd(t, append([]string{"config-manage", "--path", ps}, s.args...)...)
		switch {
		case s.wantErr == "usage":
			if !errors.Is(err, errUsage) {
				t.Errorf("%v: %v, want a usage error", s.args, err)
			}
		case s.wantErr == "" && err != nil, s.wantErr != "" && (err == nil || describeError(err) != s.wantErr):
			t.Errorf("%v: %v, want %q", s.args, err, s.wantErr)
		}
	}
	if cfgProp(t, conn, p, "name") != "renamed" || cfgProp(t, conn, p, "dco") != true {
		t.Error("rename or dco not applied")
	}
	if tags := cfgProp(t, conn, p, "tags").([]string); len(tags) != 1 || tags[0] != "t2" {
		t.Errorf("tags %v", tags)
	}
	ov := cfgProp(t, conn, p, "overrides").(map[string]dbus.Variant)
	want := map[string]any{"proto-override": "tcp", "persist-tun": false, "proxy-port": "3128", "proxy-password": "s3cret",
		"dns-setup-disabled": true, "tls-version-min": "tls_1_2"}
	if len(ov) != len(want) {
		t.Errorf("overrides %v", ov)
	}
	for k, v := range want {
		if ov[k].Value() != v {
			t.Errorf("override %s = %v, want %v", k, ov[k], v)
		}
	}
	out, err := runCmd(t, "config-manage", "--config", "renamed", "--show")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"Name:", "renamed", "Tags:", "t2", "DCO:", "proto-override:", "tcp", "proxy-password:", "(set)"} {
		if !strings.Contains(out, w) {
			t.Errorf("--show lacks %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, "s3cret") {
		t.Errorf("--show prints the proxy password:\n%s", out)
	}
	// --exists
	if out, err := runCmd(t, "config-manage", "--config", "renamed", "--exists"); err != nil || out != "Configuration profile exists\n" {
		t.Errorf("--exists: %q %v", out, err)
	}
	if code := run([]string{"config-manage", "--config", "gone", "--exists", "--quiet"}); code != 1 {
		t.Errorf("--exists --quiet of a missing profile: exit %d", code)
	}
	if code := run([]string{"config-manage", "--path", ps + "x", "--exists", "--quiet"}); code != 1 {
		t.Errorf("--exists --quiet of a missing path: exit %d", code)
	}
	if code := run([]string{"config-manage", "--config", "renamed", "--exists", "--quiet"}); code != 0 {
		t.Errorf("--exists --quiet: exit %d", code)
	}
	if code := run([]string{"config-manage", "--path", ps, "--unset-override", "ipv6"}); code != 1 {
		t.Errorf("failing change: exit %d", code)
	}
}

func TestConfigACLAndRemove(t *testing.T) {
	conn := configService(t)
	p := importCmd(t, "shared", goodText)
	ps := string(p)
	if _, err := runCmd(t, "config-acl", "-o", ps, "--grant", "nobody", "--grant", "4242", "--public-access", "true",
		"--lock-down", "true", "-T", "true"); err != nil {
		t.Fatal(describeError(err))
	}
	if acl := cfgProp(t, conn, p, "acl").([]uint32); len(acl) != 2 || acl[0] != 65534 || acl[1] != 4242 {
		t.Errorf("acl %v", acl)
	}
	for _, k := range []string{"public_access", "locked_down", "transfer_owner_session"} {
		if cfgProp(t, conn, p, k) != true {
			t.Errorf("%s not set", k)
		}
	}
	if _, err := runCmd(t, "config-acl", "-o", ps, "--grant", "nobody"); err == nil || describeError(err) != "grant nobody: UID already granted access" {
		t.Errorf("second grant: %v", err)
	}
	if _, err := runCmd(t, "config-acl", "-o", ps, "--revoke", "4242", "--public-access", "false"); err != nil {
		t.Fatal(err)
	}
	out, err := runCmd(t, "config-acl", "--config", "shared", "--show")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"Owner:", "root", "Granted users:", "nobody", "Public access:", "no", "Locked down:", "yes", "Sealed:"} {
		if !strings.Contains(out, w) {
			t.Errorf("--show lacks %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, "4242") {
		t.Errorf("revoked UID still shown:\n%s", out)
	}
	for _, bad := range [][]string{{"--grant", "no-such-user-xyz"}, {"--public-access", "perhaps"}, {}} {
		if _, err := runCmd(t, append([]string{"config-acl", "-o", ps}, bad...)...); !errors.Is(err, errUsage) {
			t.Errorf("config-acl %v: %v", bad, err)
		}
	}
	// sealed: read-only for good, still removable by the owner
	if _, err := runCmd(t, "config-acl", "-o", ps, "--seal"); err != nil {
		t.Fatal(err)
	}
	if _, err := runCmd(t, "config-manage", "-o", ps, "--rename", "x"); err == nil || describeError(err) != "rename: Configuration profile is sealed and read-only" {
		t.Errorf("rename sealed: %v", err)
	}
	if _, err := runCmd(t, "config-acl", "-o", ps, "--grant", "4242"); err == nil || describeError(err) != "grant 4242: Configuration profile is sealed and read-only" {
		t.Errorf("grant on sealed: %v", err)
	}
	// config-remove asks for YES unless --force
	stdin = strings.NewReader("no\n")
	defer func() { stdin = os.Stdin }()
	var prompt bytes.Buffer
	stderr = &prompt
	defer func() { stderr = os.Stderr }()
	if _, err := runCmd(t, "config-remove", "-o", ps); err == nil || !strings.Contains(prompt.String(), "enter YES") {
		t.Errorf("config-remove answered no: %v", err)
	}
	stdin = strings.NewReader("YES\n")
	if out, err := runCmd(t, "config-remove", "-o", ps); err != nil || out != "Configuration removed.\n" {
		t.Errorf("config-remove answered YES: %q %v", out, err)
	}
	if code := run([]string{"config-remove", "--force", "-o", ps}); code != 1 {
		t.Errorf("removing a removed profile: exit %d", code)
	}
}
