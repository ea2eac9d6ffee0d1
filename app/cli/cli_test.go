package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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

func TestDescribeError(t *testing.T) {
	err := fmt.Errorf("import x.ovpn: %w", api.Error(api.DomainRequest, "Invalid configuration profile: line 3: bad\nmore"))
	if got := describeError(err); got != "import x.ovpn: Invalid configuration profile: line 3: bad more" {
		t.Errorf("describeError = %q", got)
	}
	if got := describeError(errors.New("plain")); got != "plain" {
		t.Errorf("describeError = %q", got)
	}
	if got := describeError(fmt.Errorf("get: %w", *api.ErrAccessDenied("Access denied"))); got != "get: Access denied" {
		t.Errorf("describeError = %q", got)
	}
}

func TestEmbedFiles(t *testing.T) {
	files := map[string]string{"/cfg/ca.crt": "CA", "/abs/ta.key": "TA\n"}
	read := func(p string) (string, error) {
		if s, ok := files[p]; ok {
			return s, nil
		}
		return "", os.ErrNotExist
	}
	in := "client\nca ca.crt\ntls-auth /abs/ta.key 1\n<cert>\nca x\n</cert>\nkey [inline]\n"
	got, err := embedFiles(in, "/cfg", read)
	want := "client\n<ca>\nCA\n</ca>\n<tls-auth>\nTA\n</tls-auth>\nkey-direction 1\n<cert>\nca x\n</cert>\nkey [inline]\n"
	if err != nil || got != want {
		t.Errorf("embedFiles = %q, %v\nwant %q", got, err, want)
	}
	files["/cfg/c.p12"] = "\x00\x01binary"
	files["/cfg/proxy.txt"] = "user\npass"
	got, err = embedFiles("pkcs12 c.p12\nhttp-proxy p 8080 proxy.txt basic\nhttp-proxy q 8080 auto\n", "/cfg", read)
	want = "<pkcs12>\nAAFiaW5hcnk=\n</pkcs12>\nhttp-proxy p 8080 [inline] basic\n<http-proxy-user-pass>\nuser\npass\n</http-proxy-user-pass>\nhttp-proxy q 8080 auto\n"
	if err != nil || got != want {
		t.Errorf("embedFiles = %q, %v\nwant %q", got, err, want)
	}
	if _, err := embedFiles("client\n\ncert missing.crt\n", "/cfg", read); err == nil || !strings.Contains(err.Error(), "line 3: option 'cert'") {
		t.Errorf("missing file: %v", err)
	}
}

// runCmd runs a registered command with output captured.
func runCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var buf bytes.Buffer
	old := stdout
	stdout = &buf
	defer func() { stdout = old }()
	err := commands[args[0]].run(context.Background(), args[1:])
	return buf.String(), err
}

func TestConfigCommands(t *testing.T) {
	testenv.RequireRoot(t)
	addr := busobjtest.StartBus(t)
	srv, err := busobj.Connect(context.Background(), addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := configmgr.New(t.TempDir(), slog.New(slog.DiscardHandler)).Export(srv); err != nil {
		t.Fatal(err)
	}
	if err := srv.RequestName(api.ServiceConfiguration); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", addr)

	dir := t.TempDir()
	prof := filepath.Join(dir, "office.ovpn")
	os.WriteFile(filepath.Join(dir, "ca.pem"), []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"), 0o600)
	os.WriteFile(prof, []byte("client\ndev tun\nremote 192.0.2.1 1194\nauth-user-pass\nca ca.pem\n"), 0o600)

	out, err := runCmd(t, "config-import", "--config", prof)
	if err != nil {
		t.Fatalf("config-import: %v", err)
	}
	path := dbus.ObjectPath(strings.TrimSpace(out))
	if !api.IsChildPath(api.PathConfiguration, path) {
		t.Fatalf("config-import printed %q", out)
	}
	if _, err := runCmd(t, "config-import", "-c", prof, "-n", "second", "-p"); err != nil {
		t.Fatal(err)
	}
	out, err = runCmd(t, "configs-list")
	if err != nil || !strings.Contains(out, string(path)) || !strings.Contains(out, "office.ovpn") || !strings.Contains(out, "root") || !strings.Contains(out, "second") {
		t.Errorf("configs-list: %v\n%s", err, out)
	}
	out, err = runCmd(t, "configs-list", "--json")
	if err != nil || !strings.Contains(out, `"name": "office.ovpn"`) {
		t.Errorf("configs-list --json: %v\n%s", err, out)
	}
	// the CA file was embedded
	text, err := runCmd(t, "config-dump", "--path", string(path))
	if err != nil || !strings.Contains(text, "<ca>\n-----BEGIN CERTIFICATE-----") {
		t.Errorf("config-dump: %q %v", text, err)
	}

	os.WriteFile(prof, []byte("client\n<ca>\nunterminated\n"), 0o600)
	_, err = runCmd(t, "config-import", "--config", prof)
	if err == nil || !strings.HasPrefix(describeError(err), "import "+prof+": Invalid configuration profile: line 2") {
		t.Errorf("bad profile: %v", describeError(err))
	}

	if _, err := runCmd(t, "config-remove", "--force", "--config", "office.ovpn"); err != nil {
		t.Errorf("config-remove by name: %v", err)
	}
	if _, err := runCmd(t, "config-remove", "--force", "--config", "office.ovpn"); err == nil || !strings.Contains(err.Error(), "no configuration profile named") {
		t.Errorf("config-remove of a removed profile: %v", err)
	}
	if _, err := runCmd(t, "config-remove", "--force", "--path", string(path)); err == nil || describeError(err) != "remove "+string(path)+": Object does not exist at path “"+string(path)+"”" {
		t.Errorf("config-remove --path of a removed profile: %v", describeError(err))
	}
	if _, err := runCmd(t, "config-remove"); err == nil {
		t.Error("config-remove without arguments")
	}
}

func TestExitCodes(t *testing.T) {
	if code := run([]string{"no-such-command"}); code != 2 {
		t.Errorf("unknown command: exit %d", code)
	}
	if code := run([]string{"config-remove"}); code != 2 {
		t.Errorf("bad arguments: exit %d", code)
	}
	if code := run([]string{"version"}); code != 0 {
		t.Errorf("version: exit %d", code)
	}
}

// FuzzEmbedFiles: any profile text either embeds or fails cleanly, and only
// lines naming a file option ask for a file.
func FuzzEmbedFiles(f *testing.F) {
	f.Add("client\nca ca.crt\ntls-auth ta.key 1\n<cert>\nx\n</cert>\n")
	f.Add("<ca>\nunterminated\n")
	f.Add("secret \"s p.key\" 0\r\ncrl-verify dir dir\n")
	f.Fuzz(func(t *testing.T, text string) {
		out, err := embedFiles(text, "/d", func(p string) (string, error) { return "DATA", nil })
		if err == nil && !strings.HasSuffix(out, "\n") {
			t.Errorf("output without final newline: %q", out)
		}
	})
}

func TestCheckText(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"client\ndev tun\n", ""},
		{"client\nremote caf\xe9\n", "profile line 2: not UTF-8"},
		{"client\n\ndev\x00tun\n", "profile line 3: contains a NUL byte"},
	} {
		err := checkText(tc.text)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("checkText(%q) = %v, want %q", tc.text, err, tc.want)
		}
	}
}
