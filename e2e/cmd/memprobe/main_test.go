package main

import (
	"os"
	"testing"
)

// This test binary's own text is resident while it runs, and the per
// section count finds it; with no page resident every count is zero.
func TestSectionRows(t *testing.T) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	maps, err := mappings(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	resident, err := residentFilePages(os.Getpid(), maps, exe)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := sectionRows(exe, resident)
	if err != nil {
		t.Fatal(err)
	}
	none, err := sectionRows(exe, map[uint64]bool{})
	if err != nil {
		t.Fatal(err)
	}
	var text *sectionRow
	for i, r := range rows {
		if r.resident > r.pages || none[i].resident != 0 || none[i].pages != r.pages {
			t.Errorf("section %s: %d of %d pages resident, %d of %d with none", r.name, r.resident, r.pages, none[i].resident, none[i].pages)
		}
		if r.name == ".text" {
			text = &rows[i]
		}
	}
	if text == nil || text.pages == 0 || text.resident == 0 {
		t.Errorf(".text of the running test binary: %+v, want resident pages", text)
	}
}

// The backend's lines are quoted inside the daemon's log lines; the last
// one of the pid is found, others' are not.
func TestLastStats(t *testing.T) {
	log := `time=1 level=INFO msg=backend service=backend pid=7 line="time=1 level=INFO msg=\"runtime stats\" pid=7 goroutines=9 heap_inuse=1"
time=2 level=INFO msg=backend service=backend pid=8 line="time=2 level=INFO msg=\"runtime stats\" pid=8 goroutines=5 heap_inuse=2"
time=3 level=INFO msg=backend service=backend pid=7 line="time=3 level=INFO msg=\"runtime stats\" pid=7 goroutines=13 heap_inuse=3"
`
	if got, want := lastStats(log, 7), `runtime stats\" pid=7 goroutines=13 heap_inuse=3`; got != want {
		t.Errorf("lastStats(7) = %q, want %q", got, want)
	}
	if got := lastStats(log, 9); got != "" {
		t.Errorf("lastStats(9) = %q, want none", got)
	}
}
