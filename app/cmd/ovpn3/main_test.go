package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ovpn3go/ovpn3go/internal/testbed"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// The version the Makefile links in is the one `ovpn3 version` prints.
func TestVersionFromLinkerFlag(t *testing.T) {
	testenv.RequireCommand(t, "go")
	testenv.RequireCommand(t, "make")
	root, err := testbed.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "ovpn3")
	build := exec.CommandContext(t.Context(), "go", "build", "-ldflags",
		"-X github.com/ovpn3go/ovpn3go/internal/version.Version=9.8.7-test", "-o", bin, "./app/cmd/ovpn3")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.CommandContext(t.Context(), bin, "version").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ovpn3 (ovpn3go) 9.8.7-test" {
		t.Fatalf("ovpn3 version: %v\n%s", err, out)
	}
	// The Makefile passes its VERSION the same way.
	mk, err := exec.CommandContext(t.Context(), "make", "-n", "-C", root, "build", "VERSION=5.5.5").CombinedOutput()
	if err != nil {
		t.Fatalf("make -n: %v\n%s", err, mk)
	}
	if !strings.Contains(string(mk), "internal/version.Version=5.5.5") || !strings.Contains(string(mk), "./app/cmd/ovpn3") {
		t.Errorf("make build does not link VERSION into the binaries:\n%s", mk)
	}
}
