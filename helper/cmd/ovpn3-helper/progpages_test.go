package main

import (
	"os"
	"slices"
	"testing"
)

// Only private, read-only mappings of the program file without private
// pages are dropped: a mapping holding copy-on-write pages (relocated
// data, breakpoints), a writable or shared one, and other files' and
// anonymous mappings keep their pages.
func TestProgramMappings(t *testing.T) {
	smaps := `00400000-00862000 r-xp 00000000 fe:00 10027221                           /opt/my prog/ovpn3-helper
Size:               4488 kB
Rss:                4232 kB
Pss:                2276 kB
Anonymous:             0 kB
VmFlags: rd ex mr mw me
00862000-00cf8000 r--p 00462000 fe:00 10027221                           /opt/my prog/ovpn3-helper
Size:               4696 kB
Rss:                4440 kB
Anonymous:             8 kB
VmFlags: rd mr mw me
00cf8000-00d49000 rw-p 008f8000 fe:00 10027221                           /opt/my prog/ovpn3-helper
Size:                324 kB
Rss:                 292 kB
Anonymous:            64 kB
00d50000-00d60000 r--s 00000000 fe:00 10027221                           /opt/my prog/ovpn3-helper
Rss:                  64 kB
Anonymous:             0 kB
00d60000-00d70000 r--p 00900000 fe:00 10027221                           /opt/my prog/ovpn3-helper
Rss:                  12 kB
Anonymous:             0 kB
00d49000-02d8b000 rw-p 00000000 00:00 0 
Rss:                 168 kB
Anonymous:           168 kB
7f0000000000-7f0000010000 r-xp 00000000 fe:00 99                         /usr/lib/libc.so.6
Rss:                  64 kB
Anonymous:             0 kB
`
	got, err := programMappings([]byte(smaps), "/opt/my prog/ovpn3-helper")
	if err != nil {
		t.Fatal(err)
	}
	want := []fileMapping{{0x400000, 0x862000, 4232 << 10}, {0xd60000, 0xd70000, 12 << 10}}
	if !slices.Equal(got, want) {
		t.Errorf("programMappings = %x, want %x", got, want)
	}
	if _, err := programMappings([]byte("zz-00400000 r-xp 0 fe:00 1 /p\nAnonymous: 0 kB\n"), "/p"); err == nil {
		t.Error("a malformed mapping line was accepted")
	}
}

// dropProgramPages takes the program's pages out of this process's page
// tables (they were resident: the test binary started and ran), and the
// program runs on, mapping back what it uses.
func TestDropProgramPages(t *testing.T) {
	before := programRSS(t)
	if before == 0 {
		t.Fatal("no resident page of the program file before dropping")
	}
	n, err := dropProgramPages()
	if err != nil {
		t.Fatal(err)
	}
	after := programRSS(t)
	t.Logf("program file resident: %d KiB before, %d KiB dropped, %d KiB right after", before>>10, n>>10, after>>10)
	if n == 0 || after >= before {
		t.Errorf("program file resident: %d KiB before, %d KiB after dropping %d KiB; want fewer after", before>>10, after>>10, n>>10)
	}
	// Code and read-only data are still there: mapped back on use.
	if got := slogLevel(3).String(); got != "INFO" {
		t.Errorf("after dropping, slogLevel(3) = %q", got)
	}
}

// programRSS is the resident size of this process's droppable mappings
// of its program file.
func programRSS(t *testing.T) int64 {
	t.Helper()
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	ms, err := programMappings(smaps, exe)
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, m := range ms {
		sum += m.rss
	}
	return sum
}
