package e2e

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/internal/testbed"
)

var bytesOut = regexp.MustCompile(`Client connected .*BYTES_OUT=(\d+)`)

// TestDemo runs what `make demo` runs, for a few seconds: the session must
// report itself connected with BYTES_OUT rising from line to line, and the
// demo must tear everything down on the way out.
func TestDemo(t *testing.T) {
	bin := binaries(t)
	root, err := testbed.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	demo := filepath.Join(filepath.Dir(bin.Helper), "ovpn3go-demo")
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", demo, "./e2e/cmd/demo")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build demo: %v\n%s", err, out)
	}

	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, demo, "--bin", filepath.Dir(bin.Helper), "--duration", "4s")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}

	var counts []int64
	for _, m := range bytesOut.FindAllStringSubmatch(out.String(), -1) {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		counts = append(counts, n)
	}
	if len(counts) < 2 {
		t.Fatalf("want at least two 'Client connected' status lines, got %d:\n%s", len(counts), out.String())
	}
	for i := 1; i < len(counts); i++ {
		if counts[i] <= counts[i-1] {
			t.Errorf("BYTES_OUT did not rise: %v\n%s", counts, out.String())
			break
		}
	}
	if !strings.Contains(out.String(), "torn down") {
		t.Errorf("demo did not report its teardown:\n%s", out.String())
	}
}
