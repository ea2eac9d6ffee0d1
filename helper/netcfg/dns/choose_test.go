package dns

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Choose picks the resolver backend ahead, while no link is active; the
// next Apply uses that choice instead of asking again (no bus round trip on
// the way to connected), once. A stale choice, or none, is made at Apply;
// with a link active neither picks.
func TestChooseAhead(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	path := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(path, []byte(original), 0o644); err != nil {
		t.Fatal(err)
	}
	rc := NewResolvConf(path, state, testLogger(t))
	m := NewManager(rc, testLogger(t))
	picks := 0
	m.pick = func(context.Context) Backend { picks++; return rc }
	now := time.Now()
	m.now = func() time.Time { return now }
	ctx := context.Background()
	step := func(what string, f func() error, want int) {
		t.Helper()
		if err := f(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if picks != want {
			t.Fatalf("after %s: %d picks, want %d", what, picks, want)
		}
	}
	apply := func(l Link) func() error { return func() error { _, err := m.Apply(ctx, l); return err } }
	revert := func(l Link) func() error { return func() error { _, err := m.Revert(ctx, l.Key); return err } }
	choose := func() error { m.Choose(ctx); return nil }

	step("Choose", choose, 1)
	step("the Apply after it", apply(fullLink), 1)
	step("Choose with a link active", choose, 1)
	step("a second link's Apply", apply(splitLink), 1)
	step("revert one", revert(splitLink), 1)
	step("revert the last", revert(fullLink), 1)
	step("an Apply without Choose", apply(fullLink), 2)
	step("revert", revert(fullLink), 2)
	step("Choose", choose, 3)
	now = now.Add(chooseFresh)
	step("an Apply after a stale Choose", apply(fullLink), 4)
	step("revert", revert(fullLink), 4)
}
