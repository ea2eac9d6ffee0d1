package e2e

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/netcfg"
	"github.com/ovpn3go/ovpn3go/helper/netcfg/dns"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// startHelper runs ovpn3-helper with stateDir on the bus at addr, in a
// network namespace of its own (it never needs the network here), and
// waits until it is ready.
func startHelper(t *testing.T, bin testbed.Binaries, addr, stateDir, logPath string) *testbed.Process {
	t.Helper()
	unshare := testenv.RequireCommand(t, "unshare")
	testenv.EnsureBackendUser(t) // the helper refuses to start without it
	// unshare execs the helper in place: the PID we hold is the helper's.
	cmd := exec.Command(unshare, "--net", bin.Helper, "--state-dir", stateDir)
	cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+addr)
	p, err := testbed.StartProcess("ovpn3-helper", logPath, cmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(5 * time.Second); err != nil {
			t.Errorf("stop helper: %v", err)
		}
	})
	if err := p.WaitForLog(context.Background(), "ovpn3-helper ready", 60*time.Second); err != nil {
		t.Fatal(err)
	}
	return p
}

// profileState is everything a client can see of a profile.
type profileState struct {
	Fetch, FetchJSON string
	Props            map[string]dbus.Variant
}

func readProfileState(t *testing.T, conn *dbus.Conn, p dbus.ObjectPath) profileState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	o := conn.Object(api.ServiceConfiguration, p)
	var st profileState
	if err := o.CallWithContext(ctx, api.InterfaceConfiguration+".Fetch", 0).Store(&st.Fetch); err != nil {
		t.Fatalf("Fetch %s: %v", p, err)
	}
	if err := o.CallWithContext(ctx, api.InterfaceConfiguration+".FetchJSON", 0).Store(&st.FetchJSON); err != nil {
		t.Fatalf("FetchJSON %s: %v", p, err)
	}
	if err := o.CallWithContext(ctx, api.InterfaceProperties+".GetAll", 0, api.InterfaceConfiguration).Store(&st.Props); err != nil {
		t.Fatalf("GetAll %s: %v", p, err)
	}
	return st
}

// TestConfigPersistsAcrossSIGKILL: a persistent profile imported through
// the CLI is, after the helper is killed with SIGKILL and started again,
// still there byte for byte: same path, text, JSON, properties and file.
func TestConfigPersistsAcrossSIGKILL(t *testing.T) {
	t.Parallel()
	bin := binaries(t)
	bus := testbed.BusDaemonFor(t)
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "state")
	if err := os.Mkdir(stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	helper := startHelper(t, bin, bus.Address, stateDir, filepath.Join(dir, "helper-1.log"))

	cli := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin.CLI, args...)
		cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+bus.Address)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("ovpn3 %s: %v\n%s\nhelper log:\n%s", strings.Join(args, " "), err, out, helper.LogTail(20))
		}
		return string(out)
	}
	profileFile := filepath.Join(dir, "kept.ovpn")
	profileText := "# a comment that Render drops\r\nclient\r\ndev tun\r\nremote 198.18.0.1 1194 udp\r\nremote 198.18.0.2 443 tcp\r\n" +
		"auth-user-pass\r\npersist-tun\r\nverb 3\r\n<ca>\r\n-----BEGIN CERTIFICATE-----\r\nMIIB\r\n-----END CERTIFICATE-----\r\n</ca>\r\n"
	if err := os.WriteFile(profileFile, []byte(profileText), 0o600); err != nil {
		t.Fatal(err)
	}
	path := dbus.ObjectPath(strings.TrimSpace(cli("config-import", "--config", profileFile, "--name", "kept", "--persistent", "--tag", "keep")))
	if !api.IsChildPath(api.PathConfiguration, path) {
		t.Fatalf("config-import printed %q", path)
	}
	cli("config-manage", "--path", string(path), "--dco", "true", "--dns-scope", "tunnel", "--proxy-port", "3128")
	cli("config-acl", "--path", string(path), "--grant", "65534", "--lock-down", "true", "--transfer-owner-session", "true")
	// a non-persistent profile must not come back
	gone := dbus.ObjectPath(strings.TrimSpace(cli("config-import", "--config", profileFile, "--name", "volatile")))

	conn, err := dbus.Connect(bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	before := readProfileState(t, conn, path)
	dumpBefore := cli("config-dump", "--path", string(path))
	file := filepath.Join(stateDir, api.PathID(path)+".json")
	fileBefore, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("state file: %v", err)
	}
	if ts := before.Props["used_count"].Value(); ts != uint32(0) {
		t.Errorf("used_count %v", ts)
	}

	// SIGKILL: no chance to flush anything
	if err := helper.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-helper.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("helper did not die")
	}
	helper = startHelper(t, bin, bus.Address, stateDir, filepath.Join(dir, "helper-2.log"))

	var paths []dbus.ObjectPath
	if err := conn.Object(api.ServiceConfiguration, api.PathConfiguration).Call(api.InterfaceConfiguration+".FetchAvailableConfigs", 0).Store(&paths); err != nil {
		t.Fatal(err)
	}
	if len(paths) != 1 || paths[0] != path {
		t.Fatalf("profiles after the restart: %v, want only %s (not %s)", paths, path, gone)
	}
	after := readProfileState(t, conn, path)
	if after.Fetch != before.Fetch {
		t.Errorf("Fetch changed:\nbefore %q\nafter  %q", before.Fetch, after.Fetch)
	}
	if after.FetchJSON != before.FetchJSON {
		t.Errorf("FetchJSON changed:\nbefore %s\nafter  %s", before.FetchJSON, after.FetchJSON)
	}
	if !reflect.DeepEqual(after.Props, before.Props) {
		t.Errorf("properties changed:\nbefore %v\nafter  %v", before.Props, after.Props)
	}
	for k, want := range map[string]any{"name": "kept", "owner": uint32(0), "persistent": true, "dco": true, "locked_down": true,
		"transfer_owner_session": true, "acl": []uint32{65534}, "tags": []string{"keep"}, "valid": true} {
		if got := after.Props[k].Value(); !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %v, want %v", k, got, want)
		}
	}
	ov, _ := after.Props["overrides"].Value().(map[string]dbus.Variant)
	if len(ov) != 3 || ov["persist-tun"].Value() != true || ov["dns-scope"].Value() != "tunnel" || ov["proxy-port"].Value() != "3128" {
		t.Errorf("overrides %v", ov)
	}
	if dump := cli("config-dump", "--path", string(path)); dump != dumpBefore {
		t.Errorf("config-dump changed:\nbefore %q\nafter  %q", dumpBefore, dump)
	}
	fileAfter, err := os.ReadFile(file)
	if err != nil || string(fileAfter) != string(fileBefore) {
		t.Errorf("state file changed by the restart (%v)", err)
	}
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Errorf("state file mode %v uid %d, want 0600 root", fi.Mode().Perm(), fi.Sys().(*syscall.Stat_t).Uid)
	}
	// no temp files left behind by the atomic writes (the network
	// configuration's journals have folders of their own there)
	entries, err := os.ReadDir(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() && (e.Name() == netcfg.JournalDirName || e.Name() == dns.JournalDir) {
			continue
		}
		if e.Name() != filepath.Base(file) {
			t.Errorf("unexpected file in the state dir: %s", e.Name())
		}
	}
	// and it can still be changed and removed after the restart
	cli("config-manage", "--path", string(path), "--rename", "renamed")
	cli("config-remove", "--force", "--path", string(path))
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state file after config-remove: %v", err)
	}
	if t.Failed() {
		t.Logf("helper log:\n%s", helper.LogTail(30))
	}
}

// TestConfigCLIAsOtherUsers runs the real ovpn3 binary as other users
// against the real helper: what the ACL allows works, what it refuses
// fails with one line naming the reason and exit status 1.
func TestConfigCLIAsOtherUsers(t *testing.T) {
	t.Parallel()
	bin := binaries(t)
	setpriv := testenv.RequireCommand(t, "setpriv")
	// Everything other users need (bus socket, CLI, profile) lives in a
	// directory they can enter.
	pub, err := os.MkdirTemp("", "ovpn3cli")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(pub) })
	if err := os.Chmod(pub, 0o755); err != nil {
		t.Fatal(err)
	}
	busDir := filepath.Join(pub, "bus")
	if err := os.Mkdir(busDir, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	bus, err := testbed.StartBus(ctx, busDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bus.Stop(5 * time.Second) })
	dir := t.TempDir()
	startHelper(t, bin, bus.Address, filepath.Join(dir, "state"), filepath.Join(dir, "helper.log"))
	// users that exist (dbus-daemon refuses UIDs without a passwd entry),
	// by name and numeric ids
	type account struct{ name, uid, gid string }
	var users []account
	for _, name := range []string{"nobody", "daemon", "bin", "sys"} {
		uid, err1 := exec.Command("id", "-u", name).Output()
		gid, err2 := exec.Command("id", "-g", name).Output()
		if err1 == nil && err2 == nil {
			users = append(users, account{name, strings.TrimSpace(string(uid)), strings.TrimSpace(string(gid))})
		}
	}
	if len(users) < 2 {
		t.Skip("need two non-root users")
	}
	granted, stranger := users[0].name, users[1].name
	ids := map[string]account{}
	for _, u := range users {
		ids[u.name] = u
	}
	b, err := os.ReadFile(bin.CLI)
	if err != nil {
		t.Fatal(err)
	}
	cliPath := filepath.Join(pub, "ovpn3")
	if err := os.WriteFile(cliPath, b, 0o755); err != nil {
		t.Fatal(err)
	}
	profileFile := filepath.Join(pub, "shared.ovpn")
	if err := os.WriteFile(profileFile, []byte("client\ndev tun\nremote 198.18.0.1\nauth-user-pass\n<ca>\n-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n</ca>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	as := func(user string, args ...string) (string, int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var cmd *exec.Cmd
		if user == "root" {
			cmd = exec.CommandContext(ctx, cliPath, args...)
		} else {
			a := ids[user]
			cmd = exec.CommandContext(ctx, setpriv, append([]string{"--reuid=" + a.uid, "--regid=" + a.gid, "--clear-groups", cliPath}, args...)...)
		}
		cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+bus.Address)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("%s: %v", strings.Join(args, " "), err)
		}
		return string(out), cmd.ProcessState.ExitCode()
	}
	out, code := as("root", "config-import", "-c", profileFile, "-n", "shared")
	if code != 0 {
		t.Fatalf("import: %s", out)
	}
	path := strings.TrimSpace(out)
	if out, code := as("root", "config-acl", "-o", path, "--grant", granted); code != 0 {
		t.Fatalf("grant: %s", out)
	}
	tests := []struct {
		user     string
		args     []string
		wantCode int
		want     string // substring of the output
	}{
		{granted, []string{"configs-list"}, 0, path},
		{granted, []string{"config-dump", "-c", "shared"}, 0, "remote 198.18.0.1"},
		{granted, []string{"config-manage", "-c", "shared", "--dco", "true"}, 0, "Configuration updated."},
		{granted, []string{"config-manage", "-c", "shared", "--rename", "mine"}, 1,
			"ovpn3 config-manage: rename: Configuration can only be modified by the profile owner\n"},
		{granted, []string{"config-acl", "-o", path, "--grant", stranger}, 1,
			"ovpn3 config-acl: grant " + stranger + ": Access to the configuration profile is denied.\n"},
		{granted, []string{"config-remove", "--force", "-o", path}, 1,
			"ovpn3 config-remove: remove " + path + ": Access to the configuration profile is denied.\n"},
		{stranger, []string{"configs-list", "--count"}, 0, "0\n"},
		{stranger, []string{"config-dump", "-c", "shared"}, 1, "ovpn3 config-dump: no configuration profile named \"shared\"\n"},
		{stranger, []string{"config-dump", "-o", path}, 1,
			"ovpn3 config-dump: fetch " + path + ": Access to the configuration profile is denied.\n"},
		{stranger, []string{"config-manage", "-o", path, "--show"}, 0, "Name:       -"},
		{"root", []string{"config-acl", "-o", path, "--lock-down", "true"}, 0, "locked_down set to true"},
		{granted, []string{"config-dump", "-o", path}, 1,
			"ovpn3 config-dump: fetch " + path + ": Access to the configuration profile is denied.\n"},
	}
	for _, tt := range tests {
		out, code := as(tt.user, tt.args...)
		if code != tt.wantCode || !strings.Contains(out, tt.want) {
			t.Errorf("%s as %s: exit %d, output %q; want exit %d and %q", strings.Join(tt.args, " "), tt.user, code, out, tt.wantCode, tt.want)
		}
		if tt.wantCode != 0 && strings.Count(out, "\n") != 1 {
			t.Errorf("%s as %s: error is not one line: %q", strings.Join(tt.args, " "), tt.user, out)
		}
	}
}
