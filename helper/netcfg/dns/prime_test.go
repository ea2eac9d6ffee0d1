package dns

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// primedScene is a resolv.conf holding original, a manager over it whose
// journal was written ahead (Choose), and how to start a new helper on the
// same state (recovery).
func primedScene(t *testing.T) (path string, m *Manager, restart func()) {
	path, state := originalFile(t)
	m = NewManager(NewResolvConf(path, state, testLogger(t)), testLogger(t))
	m.Choose(context.Background())
	if _, err := os.Stat(filepath.Join(state, JournalDir, "resolvconf.json")); err != nil {
		t.Fatalf("Choose wrote no journal: %v", err)
	}
	return path, m, func() {
		t.Helper()
		if _, err := New(context.Background(), Options{StateDir: state, ResolvConf: path, Logger: testLogger(t)}); err != nil {
			t.Fatal(err)
		}
		wantPrimed(t, path, state)
	}
}

// TestPrimedRecovery: whatever a crash leaves after the journal was written
// ahead, the next helper puts back the original or leaves a file someone
// else wrote, and removes the journal. A power loss can leave our file
// renamed into place without its data (its write and rename are not
// synced): an empty or zeroed file is restored too.
func TestPrimedRecovery(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		crash  func(t *testing.T, path string, m *Manager) // what the crash left
		theirs string                                      // "": the original comes back
	}{
		{"never applied", func(*testing.T, string, *Manager) {}, ""},
		{"applied", func(t *testing.T, _ string, m *Manager) {
			if _, err := m.Apply(ctx, fullLink); err != nil {
				t.Fatal(err)
			}
		}, ""},
		{"applied, data lost", func(t *testing.T, path string, m *Manager) {
			if _, err := m.Apply(ctx, fullLink); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}, ""},
		{"applied, zeroes", func(t *testing.T, path string, m *Manager) {
			if _, err := m.Apply(ctx, fullLink); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, make([]byte, 200), 0o644); err != nil {
				t.Fatal(err)
			}
		}, ""},
		{"rewritten before the Apply", func(t *testing.T, path string, m *Manager) {
			if err := os.WriteFile(path, []byte("nameserver 192.0.2.77\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "nameserver 192.0.2.77\n"},
		{"ours edited since", func(t *testing.T, path string, m *Manager) {
			if _, err := m.Apply(ctx, fullLink); err != nil {
				t.Fatal(err)
			}
			edited := strings.Replace(readFile(t, path), "10.8.0.1", "10.8.0.9", 1)
			if err := os.WriteFile(path, []byte(edited), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "edited"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, m, restart := primedScene(t)
			tc.crash(t, path, m)
			before := readFile(t, path)
			restart()
			got := readFile(t, path)
			switch tc.theirs {
			case "":
				if got != original {
					t.Errorf("after recovery %q, want the original", got)
				}
			default:
				if got != before {
					t.Errorf("after recovery %q, want theirs kept: %q", got, before)
				}
			}
		})
	}
}

// TestPrimedRewrittenMeanwhile: a file rewritten between the journal
// written ahead and the Apply is the one that comes back at disconnect,
// not the one recorded ahead; so is one appended to after our Apply.
func TestPrimedRewrittenMeanwhile(t *testing.T) {
	ctx := context.Background()
	path, m, _ := primedScene(t)
	const theirs = "# NetworkManager's\nnameserver 192.0.2.77\n"
	if err := os.WriteFile(path, []byte(theirs), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Apply(ctx, fullLink); err != nil {
		t.Fatal(err)
	}
	if got := nameservers(readFile(t, path)); len(got) != 2 || got[0] != "10.8.0.1" {
		t.Errorf("nameservers %v", got)
	}
	if _, err := m.Revert(ctx, fullLink.Key); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, path); got != theirs {
		t.Errorf("after disconnect %q, want %q", got, theirs)
	}

	m.Choose(ctx)
	if _, err := m.Apply(ctx, fullLink); err != nil {
		t.Fatal(err)
	}
	appended := readFile(t, path) + "nameserver 192.0.2.88\n"
	if err := os.WriteFile(path, []byte(appended), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Revert(ctx, fullLink.Key); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, path); got != appended {
		t.Errorf("their addition was lost: %q", got)
	}
}

// TestNewRecordsAhead: a helper that starts with the resolv.conf backend
// writes the journal then, so neither the first tunnel's Choose nor its
// Apply syncs anything.
func TestNewRecordsAhead(t *testing.T) {
	path, state := originalFile(t)
	synced := countSyncs(t)
	ctx := context.Background()
	m, err := New(ctx, Options{StateDir: state, ResolvConf: path, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if got := synced(); len(got) != 2 {
		t.Errorf("New synced %q: want the journal and its directory", got)
	}
	wantPrimed(t, path, state)
	m.Choose(ctx)
	if _, err := m.Apply(ctx, fullLink); err != nil {
		t.Fatal(err)
	}
	if got := synced(); len(got) != 0 {
		t.Errorf("the first tunnel's Choose and Apply synced %q: want nothing", got)
	}
	if _, err := m.Revert(ctx, fullLink.Key); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, path); got != original {
		t.Errorf("not restored: %q", got)
	}
}

// An existing resolv.conf is replaced by exchange (no flush of the new
// file's data first, see exchange), with no temporary file left next to
// it; a missing one is created by rename. A crash between the exchange and
// the removal of the old file leaves it under a temporary name: the next
// helper removes it.
func TestReplacedByExchange(t *testing.T) {
	path, state := originalFile(t)
	exchanges := 0
	real := exchange
	exchange = func(r *ResolvConf, tmp string) error { exchanges++; return real(r, tmp) }
	t.Cleanup(func() { exchange = real })
	ctx := context.Background()
	m := NewManager(NewResolvConf(path, state, testLogger(t)), testLogger(t))
	entries := func() int {
		t.Helper()
		ents, err := os.ReadDir(filepath.Dir(path))
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	if _, err := m.Apply(ctx, fullLink); err != nil {
		t.Fatal(err)
	}
	m.b.(*ResolvConf).settle() // the old file's removal runs on
	if exchanges != 1 || entries() != 1 {
		t.Errorf("Apply over the file: %d exchanges, %d files in its directory; want 1 and 1", exchanges, entries())
	}
	if got := nameservers(readFile(t, path)); len(got) == 0 || got[0] != "10.8.0.1" {
		t.Errorf("nameservers %v", got)
	}
	if _, err := m.Revert(ctx, fullLink.Key); err != nil {
		t.Fatal(err)
	}
	if readFile(t, path) != original || entries() != 1 {
		t.Errorf("not restored, or files left: %q, %d files", readFile(t, path), entries())
	}

	left := filepath.Join(filepath.Dir(path), tempPrefix(path)+"123")
	if err := os.WriteFile(left, []byte(original), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := New(ctx, Options{StateDir: state, ResolvConf: path, Logger: testLogger(t)}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(left); !os.IsNotExist(err) {
		t.Errorf("temporary file left by a crash still there: %v", err)
	}
	if readFile(t, path) != original {
		t.Error("resolv.conf changed by the recovery")
	}
}

// originalFile is a resolv.conf holding original in a directory of its
// own, and a state directory for the journal.
func originalFile(t *testing.T) (path, state string) {
	t.Helper()
	dir := t.TempDir()
	path = filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(path, []byte(original), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, t.TempDir()
}
