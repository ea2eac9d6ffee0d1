// Package testenv holds the checks that tests share about the machine they
// run on: whether they may use root, network namespaces and TUN devices.
package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
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
