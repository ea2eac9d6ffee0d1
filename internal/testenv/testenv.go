// Package testenv holds the checks that tests share about the machine they
// run on: whether they may use root, network namespaces and TUN devices.
package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// InCI reports whether the tests run under CI, where nothing may be skipped
// for want of privileges: CI runs as root.
func InCI() bool { return os.Getenv("CI") != "" }

// RequireRoot skips the test when not running as root, except in CI, where a
// missing privilege is a failure rather than a silent skip.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if InCI() {
		t.Fatal("this test needs root, and CI runs as root")
	}
	t.Skip("needs root")
}

// RequireCommand skips (or in CI fails) when a program the test drives is
// not installed; `make test` installs all of them.
func RequireCommand(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if InCI() {
		t.Fatalf("%s is not installed; make test installs it", name)
	}
	t.Skipf("%s not installed", name)
	return ""
}

// UniqueName returns prefix plus a random suffix, short enough for an
// interface name (15 bytes) when prefix is at most 7 bytes.
func UniqueName(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// BackendUser is the system user the helper runs its backends as; the
// package creates it (sysusers.d), tests with EnsureBackendUser.
const BackendUser = "_ovpn3go"

// EnsureBackendUser creates the backend user and its group if missing
// (root only: RequireRoot first) and returns their ids.
func EnsureBackendUser(t testing.TB) (uid, gid uint32) {
	t.Helper()
	RequireRoot(t)
	uid, gid, err := CreateBackendUser()
	if err != nil {
		t.Fatal(err)
	}
	return uid, gid
}

// CreateBackendUser is EnsureBackendUser outside tests (make demo). Test
// packages run in parallel: a lock file serialises the check and useradd.
func CreateBackendUser() (uid, gid uint32, err error) {
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "ovpn3go-backend-user.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return 0, 0, fmt.Errorf("backend user lock: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return 0, 0, fmt.Errorf("backend user lock: %w", err)
	}
	if u, err := user.Lookup(BackendUser); err == nil {
		return ids(u)
	}
	out, err := exec.Command("useradd", "--system", "--user-group", "--no-create-home",
		"--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", BackendUser).CombinedOutput()
	if err != nil {
		return 0, 0, fmt.Errorf("useradd %s: %v: %s", BackendUser, err, out)
	}
	u, err := user.Lookup(BackendUser)
	if err != nil {
		return 0, 0, fmt.Errorf("backend user after useradd: %w", err)
	}
	return ids(u)
}

func ids(u *user.User) (uid, gid uint32, err error) {
	a, err1 := strconv.ParseUint(u.Uid, 10, 32)
	b, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("user %s: uid %q gid %q", u.Username, u.Uid, u.Gid)
	}
	return uint32(a), uint32(b), nil
}
