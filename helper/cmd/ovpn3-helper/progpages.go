package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// A Go program's code and read-only data (text, rodata, pclntab: 9 MB
// here) are mapped from its file. Package initialisation runs code from
// nearly every package, spread over the whole text, and the kernel maps
// up to 16 neighbouring pages of the page cache on every such fault
// (fault-around, whatever madvise advice the mapping has), so once a
// process has started almost the whole binary is in its page tables and
// its VmRSS, although a connected backend runs a small part of it (the
// data path, the runtime, the bus).
//
// dropProgramPages removes those page-table entries: madvise
// MADV_DONTNEED on this process's read-only private mappings of its own
// program file that hold no private (copy-on-write) page. This frees no
// memory by itself: the pages stay in the page cache (the daemon and
// every backend map the same file), and what the process still runs is
// mapped again from there on first touch (minor faults, once). What it
// changes is that VmRSS and PSS count what the process uses rather than
// what it ran once while starting, and that under memory pressure the
// kernel can reclaim the cold pages of the binary that no process maps.
// Mappings with private pages (a relocated read-only segment of a
// position-independent build, a debugger's breakpoints) are left alone:
// dropping those would lose their contents. It returns the bytes that
// were resident in the mappings it dropped.
func dropProgramPages() (int64, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0, fmt.Errorf("program pages: %w", err)
	}
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return 0, fmt.Errorf("program pages: %w", err)
	}
	ms, err := programMappings(smaps, exe)
	if err != nil {
		return 0, err
	}
	var dropped int64
	for _, m := range ms {
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, m.start, m.end-m.start, unix.MADV_DONTNEED); errno != 0 {
			return dropped, fmt.Errorf("program pages: madvise %x-%x: %w", m.start, m.end, errno)
		}
		dropped += m.rss
	}
	return dropped, nil
}

// fileMapping is one droppable mapping of the program file.
type fileMapping struct {
	start, end uintptr
	rss        int64 // bytes resident when smaps was read
}

// programMappings returns the mappings in smaps (/proc/PID/smaps text)
// of the file at path that are private, not writable and hold no
// private page.
func programMappings(smaps []byte, path string) ([]fileMapping, error) {
	var out []fileMapping
	var cur *fileMapping // the current mapping while it qualifies
	var rss int64
	flush := func(anon int64) {
		if cur != nil && anon == 0 {
			cur.rss = rss
			out = append(out, *cur)
		}
		cur = nil
	}
	sc := bufio.NewScanner(bytes.NewReader(smaps))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if !strings.HasSuffix(f[0], ":") {
			// A mapping: start-end perms offset dev inode [path].
			cur = nil
			if len(f) < 6 || strings.Join(f[5:], " ") != path || len(f[1]) != 4 || f[1][1] != '-' || f[1][3] != 'p' {
				continue
			}
			lo, hi, ok := strings.Cut(f[0], "-")
			start, err1 := strconv.ParseUint(lo, 16, 64)
			end, err2 := strconv.ParseUint(hi, 16, 64)
			if !ok || err1 != nil || err2 != nil || end <= start {
				return nil, fmt.Errorf("program pages: smaps line %q", sc.Text())
			}
			cur, rss = &fileMapping{start: uintptr(start), end: uintptr(end)}, 0
			continue
		}
		if cur == nil || len(f) < 2 {
			continue
		}
		kb, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue // a field that is not a size (VmFlags)
		}
		switch f[0] {
		case "Rss:":
			rss = kb << 10
		case "Anonymous:":
			// The last size field of a mapping that matters here:
			// decide now.
			flush(kb)
		}
	}
	return out, sc.Err()
}
