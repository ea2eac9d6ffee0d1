package journal

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
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
	if len(ents) != 0 {
		t.Fatalf("directory not empty after Remove: %v", ents)
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
