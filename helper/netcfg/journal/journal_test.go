package journal

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

func TestAddDropRemove(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "j"))
	if err != nil {
		t.Fatal(err)
	}
	j, err := s.Create("dev-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create("dev-1"); err == nil {
		t.Fatal("second Create of an open journal succeeded")
	}
	if err := j.Add("a", "k", map[string]string{"x": "1"}); err != nil {
		t.Fatal(err)
	}
	if err := j.Add("b", "k", 2); err != nil {
		t.Fatal(err)
	}
	if err := j.Add("a", "k", map[string]string{"x": "3"}); err != nil { // replace in place
		t.Fatal(err)
	}
	got := j.Entries()
	if len(got) != 2 || got[0].ID != "a" || string(got[0].Data) != `{"x":"3"}` || got[1].ID != "b" {
		t.Fatalf("entries = %+v", got)
	}
	if err := j.Drop("b"); err != nil {
		t.Fatal(err)
	}
	// What is on disk matches, and nothing temporary is left.
	data, err := os.ReadFile(filepath.Join(s.Dir(), "dev-1.journal"))
	if err != nil {
		t.Fatal(err)
	}
	var f file
	if err := json.Unmarshal(data, &f); err != nil || len(f.Entries) != 1 || f.Entries[0].ID != "a" {
		t.Fatalf("on disk: %s (%v)", data, err)
	}
	if err := j.Remove(); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(s.Dir())
	if len(ents) != 1 || ents[0].Name() != bootFile {
		t.Fatalf("directory after Remove: %v, want the boot note only", ents)
	}
	if err := j.Add("c", "k", 1); err == nil {
		t.Fatal("Add after Remove succeeded")
	}
	if _, err := s.Create("dev-1"); err != nil {
		t.Fatalf("Create after Remove: %v", err)
	}
}

func TestInvalidNames(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"", "../x", "a/b", ".hidden", strings.Repeat("x", 201)} {
		if _, err := s.Create(n); err == nil {
			t.Errorf("Create(%q) succeeded", n)
		}
	}
}

// A journal left by a "crashed" run is undone newest entry first by the
// next run; entries whose undo fails or whose kind is unknown stay.
func TestRecover(t *testing.T) {
	dir := t.TempDir()
	s1, _ := Open(dir)
	j, _ := s1.Create("dev-7")
	for _, id := range []string{"link", "addr", "route1", "route2"} {
		if err := j.Add(id, "tun."+id[:4], id); err != nil {
			t.Fatal(err)
		}
	}
	o, _ := s1.Create("other")
	_ = o.Add("x", "dns.unknown", 1)
	_ = o.Add("y", "fails", 1)
	// The process dies here: nothing removed.

	s2, _ := Open(dir)
	if _, err := s2.Create("dev-7"); err == nil {
		t.Fatal("Create over a leftover journal succeeded")
	}
	var order []string
	var u Undoers
	rec := func(_ context.Context, e Entry) error {
		var id string
		_ = json.Unmarshal(e.Data, &id)
		order = append(order, id)
		return nil
	}
	for _, k := range []string{"tun.link", "tun.addr", "tun.rout"} {
		u.Register(k, rec)
	}
	u.Register("fails", func(context.Context, Entry) error { return errors.New("boom") })
	err := s2.Recover(context.Background(), &u)
	if err == nil || !strings.Contains(err.Error(), `no undo for kind "dns.unknown"`) || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("Recover error = %v", err)
	}
	if want := []string{"route2", "route1", "addr", "link"}; !slices.Equal(order, want) {
		t.Fatalf("undo order %v, want %v", order, want)
	}
	left, err := s2.Pending()
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 1 || left[0].Name != "other" || len(left[0].Entries) != 2 || left[0].Entries[0].ID != "x" {
		t.Fatalf("left after recovery: %+v", left)
	}
	// Once the missing undo exists and the failing one works, all is gone.
	u.Register("dns.unknown", rec)
	u.Register("fails", rec)
	if err := s2.Recover(context.Background(), &u); err != nil {
		t.Fatal(err)
	}
	if left, _ := s2.Pending(); len(left) != 0 {
		t.Fatalf("left: %+v", left)
	}
}

func TestPendingReportsGarbage(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bad.journal"), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, _ := Open(dir)
	if _, err := s.Pending(); err == nil || !strings.Contains(err.Error(), "journal bad: decode") {
		t.Fatalf("Pending error = %v", err)
	}
	if err := s.Recover(context.Background(), &Undoers{}); err == nil {
		t.Fatal("Recover hid an unreadable journal")
	}
	if _, err := os.Stat(filepath.Join(dir, "bad.journal")); err != nil {
		t.Fatal("unreadable journal was deleted")
	}
}

// countSyncs makes syncFile count its calls for the test.
func countSyncs(t *testing.T) *int {
	t.Helper()
	n := new(int)
	orig := syncFile
	syncFile = func(f *os.File) error { *n++; return orig(f) }
	t.Cleanup(func() { syncFile = orig })
	return n
}

// Journal changes record kernel state and are never synced to disk (two
// fsyncs each were a large part of Establish, on the connect path); only
// the boot note is, once per boot.
func TestChangesAreNotSynced(t *testing.T) {
	syncs := countSyncs(t)
	dir := filepath.Join(t.TempDir(), "j")
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if *syncs != 2 {
		t.Errorf("Open of a new store synced %d times, want 2 (the boot note and its directory)", *syncs)
	}
	*syncs = 0
	j, err := s.Create("dev-1")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b", "c"} {
		if err := j.Add(id, "k", id); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Drop("b"); err != nil {
		t.Fatal(err)
	}
	if err := j.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); err != nil { // the same boot: nothing to note
		t.Fatal(err)
	}
	if *syncs != 0 {
		t.Errorf("journal changes and a second Open in the same boot synced %d times, want 0", *syncs)
	}
}

// The journals of an earlier boot (possibly torn: they were not synced)
// describe kernel state that ended with that boot: Open deletes them.
func TestEarlierBootDiscarded(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		bootFile:                 "0b5a1e7e-0000-4000-8000-000000000000\n",
		"bad.journal":            "",
		"dev-1.journal":          `{"version":1,"entries":[{"id":"a","kind":"net.link","data":{}}]}`,
		".dev-1.journal.tmp4242": "{",
		"not-a-journal.json":     "{}",
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	left, err := s.Pending()
	if err != nil || len(left) != 0 {
		t.Errorf("Pending after a reboot = %v, %v; want nothing", left, err)
	}
	for _, gone := range []string{"bad.journal", "dev-1.journal", ".dev-1.journal.tmp4242"} {
		if _, err := os.Stat(filepath.Join(dir, gone)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s of the earlier boot is still there (%v)", gone, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "not-a-journal.json")); err != nil {
		t.Errorf("a file that is no journal was touched: %v", err)
	}
	boot, _ := os.ReadFile(bootIDPath)
	if noted, _ := os.ReadFile(filepath.Join(dir, bootFile)); string(noted) != strings.TrimSpace(string(boot))+"\n" {
		t.Errorf("boot note %q, want the running boot %q", noted, boot)
	}
}

// A directory without a boot note is an older helper's, whose journal
// writes were synced: its journals stay for Recover.
func TestNoBootNoteKeepsJournals(t *testing.T) {
	dir := t.TempDir()
	data := `{"version":1,"entries":[{"id":"a","kind":"net.link","data":{}}]}`
	if err := os.WriteFile(filepath.Join(dir, "dev-1.journal"), []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	left, err := s.Pending()
	if err != nil || len(left) != 1 || left[0].Name != "dev-1" {
		t.Errorf("Pending = %v, %v; want the older helper's dev-1", left, err)
	}
}

// TestAddAll: several entries with one write, an existing id replaced in
// place, new ones appended in order.
func TestAddAll(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "j"))
	if err != nil {
		t.Fatal(err)
	}
	j, err := s.Create("dev-1")
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Add("a", "k", 1); err != nil {
		t.Fatal(err)
	}
	if err := j.AddAll([]Planned{{ID: "b", Kind: "k", Data: 2}, {ID: "a", Kind: "k", Data: 3}, {ID: "c", Kind: "k", Data: 4}}); err != nil {
		t.Fatal(err)
	}
	got := j.Entries()
	if len(got) != 3 || got[0].ID != "a" || string(got[0].Data) != "3" || got[1].ID != "b" || got[2].ID != "c" {
		t.Fatalf("entries = %+v", got)
	}
}

// A journal of up to one page is rewritten in place (the same file, no
// rename), padded with spaces when it shrinks, and reads back as what it
// holds; one that outgrows the page is replaced by rename (and so is its
// next, shorter version).
func TestWrittenInPlace(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	j, err := s.Create("dev-1")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "dev-1"+suffix)
	inode := func() uint64 {
		t.Helper()
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t).Ino
	}
	// What a new helper would find, read as Recover reads it.
	onDisk := func() []string {
		t.Helper()
		s2 := &Store{dir: dir, open: map[string]bool{}}
		left, err := s2.Pending()
		if err != nil || len(left) != 1 {
			t.Fatalf("pending %v, %v", left, err)
		}
		var ids []string
		for _, e := range left[0].Entries {
			ids = append(ids, e.ID)
		}
		return ids
	}
	first := inode()
	if err := j.AddAll([]Planned{{ID: "a", Kind: "k", Data: strings.Repeat("x", 300)}, {ID: "b", Kind: "k", Data: "b"}}); err != nil {
		t.Fatal(err)
	}
	if err := j.Drop("a"); err != nil { // shrinks: padded
		t.Fatal(err)
	}
	if got := onDisk(); !slices.Equal(got, []string{"b"}) {
		t.Errorf("after the shrink the journal reads %v, want [b]", got)
	}
	if inode() != first {
		t.Error("a journal under one page was replaced instead of written in place")
	}
	if err := j.Add("big", "k", strings.Repeat("y", inPlaceMax)); err != nil {
		t.Fatal(err)
	}
	second := inode()
	if second == first {
		t.Error("a journal over one page was written in place")
	}
	if err := j.Drop("big"); err != nil {
		t.Fatal(err)
	}
	if got := onDisk(); !slices.Equal(got, []string{"b"}) {
		t.Errorf("journal reads %v, want [b]", got)
	}
	if err := j.Remove(); err != nil {
		t.Fatal(err)
	}
}
