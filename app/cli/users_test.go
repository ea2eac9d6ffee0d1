package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeGetent puts a getent(1) in place that knows one user only NSS has
// (not in /etc/passwd), one answer for the wrong user and one garbled
// line; the names userName remembered are forgotten.
func fakeGetent(t *testing.T) {
	t.Helper()
	script := `#!/bin/sh
[ "$1" = passwd ] || exit 1
case "$2" in
ldapalice|70001) echo 'ldapalice:*:70001:70001:Alice:/home/ldapalice:/bin/sh' ;;
liar) echo 'mallory:*:70002:70002::/:/bin/sh' ;;
broken) echo 'garbage' ;;
*) exit 2 ;;
esac
`
	path := filepath.Join(t.TempDir(), "getent")
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	forgetNames := func() {
		namesMu.Lock()
		names = map[uint32]string{}
		namesMu.Unlock()
	}
	old := getentPath
	getentPath = path
	forgetNames()
	t.Cleanup(func() { getentPath = old; forgetNames() })
}

// TestUsersFromNSS: a user that only NSS knows (LDAP, sssd) resolves both
// ways through getent when the pure-Go lookup (/etc/passwd) finds nothing,
// as the cgo build's libc lookup did; wrong or garbled answers are errors.
func TestUsersFromNSS(t *testing.T) {
	fakeGetent(t)
	if uid, err := resolveUID("ldapalice"); err != nil || uid != 70001 {
		t.Errorf("resolveUID(ldapalice) = %d, %v; want 70001", uid, err)
	}
	if name := userName(70001); name != "ldapalice" {
		t.Errorf("userName(70001) = %q; want ldapalice", name)
	}
	if name := userName(70009); name != "70009" {
		t.Errorf("userName(70009) = %q; want the number", name)
	}
	for name, want := range map[string]string{
		"nobody-anywhere": `unknown user "nobody-anywhere"`,
		"-x":              `unknown user "-x"`,
		"liar":            `answered for "mallory"`,
		"broken":          "not a passwd line",
	} {
		if _, err := resolveUID(name); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("resolveUID(%q) = %v; want an error with %q", name, err, want)
		}
	}
}

// TestUsersFromPasswdFirst: names in /etc/passwd never need getent.
func TestUsersFromPasswdFirst(t *testing.T) {
	fakeGetent(t)
	getentPath = filepath.Join(t.TempDir(), "missing")
	if uid, err := resolveUID("root"); err != nil || uid != 0 {
		t.Errorf("resolveUID(root) = %d, %v; want 0", uid, err)
	}
	if name := userName(0); name != "root" {
		t.Errorf("userName(0) = %q; want root", name)
	}
}

// TestRealGetent: the system's getent answers are read right.
func TestRealGetent(t *testing.T) {
	e, err := getentPasswd("root")
	if err != nil || e.uid != 0 || e.name != "root" {
		t.Errorf("getentPasswd(root) = %+v, %v; want root, 0", e, err)
	}
	if e, err := getentPasswd("0"); err != nil || e.name != "root" {
		t.Errorf("getentPasswd(0) = %+v, %v; want root", e, err)
	}
	if _, err := getentPasswd("no-such-user-ovpn3go"); err != errNoSuchUser {
		t.Errorf("getentPasswd(no-such-user-ovpn3go) = %v; want errNoSuchUser", err)
	}
}
