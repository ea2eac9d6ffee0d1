// Command memprobe shows where a connected ovpn3go backend's memory goes
// (as root; docs/bench/memory.md): it brings up make bench's stack
// (variant a), starts one session and, 1 s after CONN_CONNECTED as make
// bench reads it, prints the backend's VmRSS, private and PSS memory,
// its anonymous mappings, and which pages of its program file are
// resident per ELF section (/proc/PID/pagemap); the same for the spare
// backend before the session and, afterwards, the OpenVPN 2.6 client
// against the same server.
//
//	go run ./e2e/cmd/memprobe
//	go run ./e2e/cmd/memprobe -helper-args "--runtime-stats 1s" -hold 20s
//
// With --runtime-stats among the helper's arguments it also prints the
// backend's last runtime stats line (the Go runtime's memory classes).
package main

import (
	"context"
	"debug/elf"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ovpn3go/ovpn3go/internal/bench"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
)

func main() {
	bin := flag.String("bin", "", "directory holding ovpn3-helper, ovpn3-backend and ovpn3 (default: build them)")
	hold := flag.Duration("hold", 0, "keep the session this long after the first reading, then read again")
	helperArgs := flag.String("helper-args", "", "extra ovpn3-helper arguments, space-separated")
	openvpn := flag.Bool("openvpn", true, "also read the OpenVPN 2.6 client's memory")
	flag.Parse()
	if err := run(*bin, *hold, strings.Fields(*helperArgs), *openvpn, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "memprobe:", err)
		os.Exit(1)
	}
}

func run(binDir string, hold time.Duration, helperArgs []string, openvpn bool, w io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dir, err := os.MkdirTemp("", "ovpn3go-memprobe-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := testbed.BinariesIn(binDir)
	if binDir == "" {
		bctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		bin, err = testbed.BuildBinaries(bctx, filepath.Join(dir, "bin"))
		cancel()
		if err != nil {
			return err
		}
	}
	st, err := testbed.StartStack(ctx, testbed.StackOptions{Bin: bin, Dir: filepath.Join(dir, "run"), Variant: testbed.VariantA, HelperArgs: helperArgs})
	if err != nil {
		return err
	}
	defer st.Close()
	profile, err := st.WriteProfile(testbed.VariantA)
	if err != nil {
		return err
	}
	if _, err := st.CLI(ctx, "config-import", "--config", profile, "--name", "memprobe"); err != nil {
		return err
	}
	// The spare backend starts once the daemon is ready: give it time to
	// register, as between two sessions.
	if err := sleep(ctx, 2*time.Second); err != nil {
		return err
	}
	if spare := children(st.Helper.PID()); len(spare) > 0 {
		if err := report(w, "spare backend", spare[0]); err != nil {
			return err
		}
	}
	_, path, err := bench.StartSession(ctx, st, "memprobe")
	if err != nil {
		return err
	}
	v, err := st.SessionProperty(ctx, path, "backend_pid")
	if err != nil {
		return err
	}
	pid32, _ := v.Value().(uint32)
	pid := int(pid32)
	if err := sleep(ctx, bench.Settle); err != nil {
		return err
	}
	if err := report(w, fmt.Sprintf("connected backend, %v after connecting", bench.Settle), pid); err != nil {
		return err
	}
	if err := report(w, "helper daemon with the session", st.Helper.PID()); err != nil {
		return err
	}
	if l := lastStats(st.Helper.Log(), pid); l != "" {
		fmt.Fprintf(w, "the backend's last runtime stats: %s\n\n", l)
	}
	if hold > 0 {
		if err := sleep(ctx, hold); err != nil {
			return err
		}
		if err := report(w, fmt.Sprintf("connected backend, %v later", hold), pid); err != nil {
			return err
		}
		if l := lastStats(st.Helper.Log(), pid); l != "" {
			fmt.Fprintf(w, "the backend's last runtime stats: %s\n\n", l)
		}
	}
	if err := bench.StopSession(ctx, st, path, pid); err != nil {
		return err
	}
	if !openvpn {
		return nil
	}
	rdir := filepath.Join(dir, "refclient")
	if err := os.MkdirAll(rdir, 0o755); err != nil {
		return err
	}
	cli, err := testbed.StartReferenceClient(ctx, st.Pair, st.Server, rdir, time.Minute)
	if err != nil {
		return err
	}
	defer cli.Stop(5 * time.Second)
	if err := sleep(ctx, bench.Settle); err != nil {
		return err
	}
	return report(w, "openvpn 2.6 client", cli.PID())
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// children lists a process's child processes.
func children(pid int) []int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if c, err := strconv.Atoi(f); err == nil {
			out = append(out, c)
		}
	}
	return out
}

// report prints one process's memory: the totals, its anonymous
// mappings and its program file's resident pages per ELF section.
func report(w io.Writer, title string, pid int) error {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return err
	}
	rollup, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "## %s (pid %d)\n\n", title, pid)
	for _, k := range []string{"VmRSS:", "RssAnon:", "RssFile:", "Threads:"} {
		fmt.Fprintf(w, "%-9s %s\n", k, field(string(status), k))
	}
	fmt.Fprintf(w, "%-9s %s\n\n", "Pss:", field(string(rollup), "Pss:"))
	maps, err := mappings(pid)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "mappings with resident pages (kB: Rss, Anonymous):\n")
	for _, m := range maps {
		if m.rss > 0 {
			fmt.Fprintf(w, "  %6d %6d  %x-%x %s %s\n", m.rss, m.anon, m.start, m.end, m.perms, m.path)
		}
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return err
	}
	resident, err := residentFilePages(pid, maps, exe)
	if err != nil {
		return err
	}
	rows, err := sectionRows(fmt.Sprintf("/proc/%d/exe", pid), resident)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\nprogram file %s, resident pages per section:\n  %-20s %8s %8s\n", exe, "section", "pages", "resident")
	for _, r := range rows {
		fmt.Fprintf(w, "  %-20s %8d %8d\n", r.name, r.pages, r.resident)
	}
	fmt.Fprintln(w)
	return nil
}

// lastStats is the last --runtime-stats line of process pid in the
// helper's log (the backends' lines are quoted in the daemon's), or "".
func lastStats(log string, pid int) string {
	var last string
	for _, l := range strings.Split(log, "\n") {
		if i := strings.Index(l, fmt.Sprintf("runtime stats\\\" pid=%d ", pid)); i >= 0 {
			last = strings.TrimSuffix(l[i:], "\"")
		}
	}
	return last
}

// field is the rest of the line of text starting with key.
func field(text, key string) string {
	for _, l := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(l, key); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

// mapping is one line of /proc/PID/smaps with its Rss and Anonymous (kB).
type mapping struct {
	start, end, offset uint64
	perms, path        string
	rss, anon          int64
}

func mappings(pid int) ([]mapping, error) {
	smaps, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return nil, err
	}
	var out []mapping
	for _, l := range strings.Split(string(smaps), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 5 && !strings.HasSuffix(f[0], ":"):
			lo, hi, _ := strings.Cut(f[0], "-")
			m := mapping{perms: f[1], path: strings.Join(f[5:], " ")}
			var err1, err2, err3 error
			m.start, err1 = strconv.ParseUint(lo, 16, 64)
			m.end, err2 = strconv.ParseUint(hi, 16, 64)
			m.offset, err3 = strconv.ParseUint(f[2], 16, 64)
			if err1 != nil || err2 != nil || err3 != nil {
				return nil, fmt.Errorf("/proc/%d/smaps: %q", pid, l)
			}
			out = append(out, m)
		case len(out) > 0 && len(f) >= 2 && (f[0] == "Rss:" || f[0] == "Anonymous:"):
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("/proc/%d/smaps: %q", pid, l)
			}
			if f[0] == "Rss:" {
				out[len(out)-1].rss = kb
			} else {
				out[len(out)-1].anon = kb
			}
		}
	}
	return out, nil
}

// residentFilePages returns the file offsets (page-aligned) of the pages
// of the file at path that are present in the process's page tables.
func residentFilePages(pid int, maps []mapping, path string) (map[uint64]bool, error) {
	pm, err := os.Open(fmt.Sprintf("/proc/%d/pagemap", pid))
	if err != nil {
		return nil, err
	}
	defer pm.Close()
	const page = 4096
	resident := map[uint64]bool{}
	for _, m := range maps {
		if m.path != path {
			continue
		}
		n := (m.end - m.start) / page
		buf := make([]byte, 8*n)
		if _, err := pm.ReadAt(buf, int64(m.start/page*8)); err != nil {
			return nil, fmt.Errorf("pagemap: %w", err)
		}
		for i := range n {
			if binary.LittleEndian.Uint64(buf[i*8:])&(1<<63) != 0 { // present
				resident[m.offset+i*page] = true
			}
		}
	}
	return resident, nil
}

// sectionRow is one allocated ELF section with file contents: its pages
// and how many of them are resident.
type sectionRow struct {
	name            string
	pages, resident int
}

// sectionRows counts the resident file pages of each section of the
// ELF file at path.
func sectionRows(path string, resident map[uint64]bool) ([]sectionRow, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var rows []sectionRow
	for _, s := range f.Sections {
		if s.Flags&elf.SHF_ALLOC == 0 || s.Type == elf.SHT_NOBITS || s.Size == 0 {
			continue
		}
		r := sectionRow{name: s.Name}
		for off := s.Offset &^ 4095; off < s.Offset+s.Size; off += 4096 {
			r.pages++
			if resident[off] {
				r.resident++
			}
		}
		rows = append(rows, r)
	}
	return rows, nil
}
