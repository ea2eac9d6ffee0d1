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
	"github.com/ovpn3go/ovpn3go/internal/testbed"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// startHelper runs ovpn3-helper with stateDir on the bus at addr, in a
// network namespace of its own (it never needs the network here), and
// waits until it is ready.
func startHelper(t *testing.T, bin testbed.Binaries, addr, stateDir, logPath string) *testbed.Process {
	t.Helper()
	unshare := testenv.RequireCommand(t, "unshare")
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
	// no temp files left behind by the atomic writes
	entries, err := os.ReadDir(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
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
