package ciscripts

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ovpn3go/ovpn3go/internal/testbed"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// plantedTarget crashes on any input longer than its 2-byte seed, which the
// mutator reaches within a few executions: a bug fuzzing must report.
const plantedTarget = `package planted

import "testing"

func FuzzPlanted(f *testing.F) {
	f.Add([]byte("ok"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 2 {
			panic("planted crash")
		}
	})
}
`

// soundTarget never fails.
const soundTarget = `package sound

import "testing"

func FuzzSound(f *testing.F) {
	f.Add([]byte("ok"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = len(b)
	})
}
`

// fuzzModule writes a module holding one package pkg with the test file
// src, plus a budget file giving its target budget executions.
func fuzzModule(t *testing.T, pkg, src, target, budget string) (root, budgets string) {
	t.Helper()
	root = t.TempDir()
	files := map[string]string{
		"go.mod":                        "module example.com/fuzzplant\n\ngo 1.26\n",
		filepath.Join(pkg, "x_test.go"): src,
		"budgets":                       "# test budgets\n" + pkg + " " + target + " " + budget + "\n",
	}
	for name, text := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root, filepath.Join(root, "budgets")
}

// runFuzzSmoke runs .ci/fuzz-smoke (as make test does: no --fuzztime)
// against the module in root with the given budget file.
func runFuzzSmoke(t *testing.T, root, budgets string) (string, error) {
	t.Helper()
	repo, err := testbed.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), filepath.Join(repo, ".ci", "fuzz-smoke"))
	cmd.Env = append(os.Environ(), "FUZZ_ROOT="+root, "FUZZ_BUDGETS="+budgets, "GOFLAGS=", "GOWORK=off")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestFuzzSmokeFailsOnPlantedCrash: a fuzz target with a crashing input
// that fuzzing reaches from its seed fails the fuzz step, which names the
// written input and how to replay it.
func TestFuzzSmokeFailsOnPlantedCrash(t *testing.T) {
	testenv.RequireCommand(t, "go")
	root, budgets := fuzzModule(t, "planted", plantedTarget, "FuzzPlanted", "200000")
	out, err := runFuzzSmoke(t, root, budgets)
	if err == nil {
		t.Fatalf("fuzz-smoke passed with a planted crash:\n%s", out)
	}
	if _, ok := err.(*exec.ExitError); !ok {
		t.Fatalf("fuzz-smoke did not run: %v\n%s", err, out)
	}
	if !strings.Contains(out, "fuzz ./planted FuzzPlanted (200000x): FAILED") {
		t.Errorf("fuzz-smoke did not use the target's execution budget:\n%s", out)
	}
	m := regexp.MustCompile(`found a crashing input, written to (planted/testdata/fuzz/FuzzPlanted/[0-9a-f]+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("fuzz-smoke did not name the written crashing input:\n%s", out)
	}
	b, err := os.ReadFile(filepath.Join(root, m[1]))
	if err != nil {
		t.Fatalf("the named crashing input: %v", err)
	}
	if !strings.HasPrefix(string(b), "go test fuzz v1\n") {
		t.Errorf("%s is not a fuzz corpus file:\n%s", m[1], b)
	}
	if !strings.Contains(out, "go test -run '^FuzzPlanted/") {
		t.Errorf("fuzz-smoke did not say how to replay the input:\n%s", out)
	}
}

// TestFuzzSmokePassesSoundTarget: a target without a bug passes, fuzzed
// for exactly the execution count its budget line names.
func TestFuzzSmokePassesSoundTarget(t *testing.T) {
	testenv.RequireCommand(t, "go")
	root, budgets := fuzzModule(t, "sound", soundTarget, "FuzzSound", "3000")
	out, err := runFuzzSmoke(t, root, budgets)
	if err != nil {
		t.Fatalf("fuzz-smoke failed on a sound target: %v\n%s", err, out)
	}
	if !strings.Contains(out, "fuzz ./sound FuzzSound (3000x): ok") {
		t.Errorf("fuzz-smoke did not fuzz FuzzSound for its 3000 executions:\n%s", out)
	}
	if !strings.Contains(out, "fuzz-smoke: 1 targets") {
		t.Errorf("fuzz-smoke summary missing:\n%s", out)
	}
	if entries, _ := os.ReadDir(filepath.Join(root, "sound", "testdata")); len(entries) != 0 {
		t.Errorf("a passing run wrote under testdata: %v", entries)
	}
}
