package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ovpn3go/ovpn3go/internal/testbed"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

var (
	bytesOut    = regexp.MustCompile(`Client connected .*BYTES_OUT=(\d+)`)
	demoReady   = regexp.MustCompile(`^namespaces (\S+) / (\S+), openvpn server \(variant a\) pid (\d+), private bus unix:path=([^,\s]+)\S* \(dbus-daemon pid (\d+)\), ovpn3-helper pid (\d+)`)
	demoSummary = regexp.MustCompile(`^demo: connected in (\d+) ms, moved (\d+) bytes \(in (\d+), out (\d+)\) in \S+; disconnected and torn down$`)
)

// buildDemo builds e2e/cmd/demo next to the other binaries.
func buildDemo(t *testing.T, bin testbed.Binaries) string {
	t.Helper()
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
	return demo
}

// lineReader collects a process's output lines and hands each to a channel.
type lineReader struct {
	mu    sync.Mutex
	all   bytes.Buffer
	lines chan string
}

func readLines(r *os.File) *lineReader {
	lr := &lineReader{lines: make(chan string, 1024)}
	go func() { // ends at EOF: when the demo (and all holding the pipe) exited
		defer close(lr.lines)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			line := strings.TrimRight(sc.Text(), "\r") // a terminal ends lines with \r\n
			lr.mu.Lock()
			lr.all.WriteString(line + "\n")
			lr.mu.Unlock()
			lr.lines <- line
		}
	}()
	return lr
}

func (lr *lineReader) String() string {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	return lr.all.String()
}

// TestDemoCtrlC runs `make demo`'s program as a terminal would run it, as
// a foreground job in a process group of its own, waits until its session
// is connected with BYTES_OUT rising from one status line to the next, then
// sends SIGINT to that whole group, as Ctrl-C does. The demo's children
// must not see it (they are in their own groups), so the demo disconnects,
// tears down in order and exits 0 with its one-line summary, leaving no
// namespace, bus, server, helper or backend behind.
func TestDemoCtrlC(t *testing.T) {
	bin := binaries(t)
	demo := buildDemo(t, bin)

	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	// Files, not pipes Wait copies from: Wait returns when the demo exits.
	errFile, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer errFile.Close()
	stderr := func() string { b, _ := os.ReadFile(errFile.Name()); return string(b) }
	cmd := exec.Command(demo, "--bin", filepath.Dir(bin.Helper))
	cmd.Stdout, cmd.Stderr = outW, errFile
	testbed.OwnProcessGroup(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	outW.Close()
	defer outR.Close()
	done := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(done) }()
	t.Cleanup(func() { // only when the test failed before the demo ended
		select {
		case <-done:
		default:
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	out := readLines(outR)
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf(format+"\ndemo stdout:\n%s\ndemo stderr:\n%s", append(args, out.String(), stderr())...)
	}

	ready, counts, ok := demoConnected(out)
	if !ok {
		<-done
		fail("demo ended before its session was connected with rising BYTES_OUT (counts %v): %v", counts, waitErr)
	}
	if ready == nil {
		fail("demo did not print its namespaces and pids")
	}
	serverNS, clientNS := ready[1], ready[2]
	busSocket := ready[4]
	pids := map[string]int{}
	for i, name := range map[int]string{3: "openvpn server", 5: "dbus-daemon", 6: "ovpn3-helper"} {
		pids[name], _ = strconv.Atoi(ready[i])
	}
	// Whatever else runs in the namespaces now (backend, ping) must go too.
	for _, ns := range []string{serverNS, clientNS} {
		nsOut, err := exec.Command("ip", "netns", "pids", ns).Output()
		if err != nil {
			fail("ip netns pids %s: %v", ns, err)
		}
		for _, f := range strings.Fields(string(nsOut)) {
			pid, _ := strconv.Atoi(f)
			pids["pid "+f+" in "+ns] = pid
		}
	}

	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		fail("demo did not exit within 2 minutes of SIGINT")
	}
	for range out.lines { // drain to EOF
	}
	if waitErr != nil {
		fail("demo after SIGINT: %v, want exit status 0", waitErr)
	}

	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	m := demoSummary.FindStringSubmatch(lines[len(lines)-1])
	if m == nil {
		fail("the last line is not the summary")
	}
	if ms, _ := strconv.Atoi(m[1]); ms <= 0 {
		t.Errorf("summary says connected in %d ms", ms)
	}
	if in, _ := strconv.ParseInt(m[3], 10, 64); in <= 0 {
		t.Errorf("summary: %d bytes in", in)
	}
	if o, _ := strconv.ParseInt(m[4], 10, 64); o < counts[len(counts)-1] {
		t.Errorf("summary: %d bytes out, fewer than the %d a status line showed", o, counts[len(counts)-1])
	}
	for _, want := range []string{"session disconnected", "torn down: namespaces, server, bus and helper are gone"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if e := stderr(); e != "" {
		t.Errorf("demo wrote to stderr:\n%s", e)
	}

	for _, ns := range []string{serverNS, clientNS} {
		if _, err := os.Stat(filepath.Join("/run/netns", ns)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("namespace %s left behind (%v)", ns, err)
		}
	}
	if _, err := os.Stat(busSocket); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("bus socket %s left behind (%v)", busSocket, err)
	}
	for name, pid := range pids {
		if alive(pid) {
			t.Errorf("%s (pid %d) still runs after the demo exited", name, pid)
		}
	}
	if t.Failed() {
		t.Logf("demo stdout:\n%s", out.String())
	}
}

// demoConnected reads the demo's output up to the second "Client
// connected" status line with BYTES_OUT higher than the first's. It
// returns the demo's "namespaces … pids" line (matched by demoReady) and
// the BYTES_OUT counts; ok is false when the output ended first or the
// demo was not there within 4 minutes (a bound on a hung demo, not a
// speed check).
func demoConnected(out *lineReader) (ready []string, counts []int64, ok bool) {
	limit := time.After(4 * time.Minute)
	for len(counts) < 2 || counts[len(counts)-1] <= counts[0] {
		select {
		case line, open := <-out.lines:
			if !open {
				return ready, counts, false
			}
			if m := demoReady.FindStringSubmatch(line); m != nil {
				ready = m
			}
			if m := bytesOut.FindStringSubmatch(line); m != nil {
				n, _ := strconv.ParseInt(m[1], 10, 64)
				counts = append(counts, n)
			}
		case <-limit:
			return ready, counts, false
		}
	}
	return ready, counts, true
}

// alive reports whether pid names a process that is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) state …: the state follows the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// TestDemoFailureReport: when a step fails (here the helper exits at
// once), the demo says what failed in a few lines, names the full log,
// keeps it, and exits 1.
func TestDemoFailureReport(t *testing.T) {
	bin := binaries(t)
	testenv.RequireCommand(t, "openvpn")
	demo := buildDemo(t, bin)
	fake := t.TempDir()
	if err := os.WriteFile(filepath.Join(fake, "ovpn3-helper"),
		[]byte("#!/bin/sh\necho 'fake helper: refusing to start' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"ovpn3": bin.CLI, "ovpn3-backend": bin.Backend} {
		if err := os.Symlink(target, filepath.Join(fake, name)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, demo, "--bin", fake)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("demo with a failing helper: %v, want exit status 1\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	report := stderr.String()
	m := regexp.MustCompile(`(?m)^full log: (\S+/demo\.log) `).FindStringSubmatch(report)
	if m == nil {
		t.Fatalf("the report names no full log:\n%s", report)
	}
	t.Cleanup(func() { os.RemoveAll(filepath.Dir(m[1])) })
	if !strings.HasPrefix(report, "demo failed: start namespaces, server, bus and helper: ") {
		t.Errorf("the report does not say which step failed:\n%s", report)
	}
	if n := strings.Count(report, "\n"); n > 7 {
		t.Errorf("the report has %d lines, want a few:\n%s", n, report)
	}
	full, err := os.ReadFile(m[1])
	if err != nil {
		t.Fatalf("the named full log: %v", err)
	}
	if !strings.Contains(string(full), "fake helper: refusing to start") {
		t.Errorf("the full log lacks the helper's own words:\n%s", full)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(m[1]), "helper.log")); err != nil {
		t.Errorf("helper.log not kept beside demo.log: %v", err)
	}
}

// openPTY opens a pseudo-terminal pair (master, slave).
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open /dev/ptmx: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pty number: %v", err)
	}
	slave, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open pty slave: %v", err)
	}
	return master, slave
}

// TestDemoMakeCtrlC runs the demo as `make demo` runs it from a terminal:
// make is the terminal's foreground job and the demo its child. Ctrl-C
// typed on the terminal must stop the demo cleanly, and make must not see
// it: the demo takes the terminal's foreground for its own process group,
// so make exits 0 rather than "Interrupt".
func TestDemoMakeCtrlC(t *testing.T) {
	bin := binaries(t)
	testenv.RequireCommand(t, "make")
	demo := buildDemo(t, bin)
	mk := filepath.Join(t.TempDir(), "Makefile")
	if err := os.WriteFile(mk, []byte("demo:\n\t"+demo+" --bin "+filepath.Dir(bin.Helper)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	master, slave := openPTY(t)
	cmd := exec.Command("make", "-s", "-f", mk, "demo")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	// A session of its own with the pty as controlling terminal: make is
	// its leader and the foreground job, as in a terminal window.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	done := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(done) }()
	ctrlC := func() {
		if _, err := master.Write([]byte{3}); err != nil {
			t.Errorf("type Ctrl-C: %v", err)
		}
	}
	t.Cleanup(func() { // only when the test failed before make ended
		select {
		case <-done:
			return
		default:
		}
		ctrlC()
		select {
		case <-done:
		case <-time.After(2 * time.Minute):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	out := readLines(master) // ends with EIO once make and the demo closed the terminal

	if _, counts, ok := demoConnected(out); !ok {
		t.Fatalf("demo under make not connected with rising BYTES_OUT (counts %v); terminal:\n%s", counts, out.String())
	}
	ctrlC()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("make demo did not end within 2 minutes of Ctrl-C; terminal:\n%s", out.String())
	}
	for range out.lines { // drain to the end of the output
	}
	if waitErr != nil {
		t.Fatalf("make demo after Ctrl-C: %v, want exit status 0; terminal:\n%s", waitErr, out.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if !demoSummary.MatchString(lines[len(lines)-1]) {
		t.Errorf("the last line on the terminal is not the demo's summary:\n%s", out.String())
	}
	if strings.Contains(out.String(), "Interrupt") {
		t.Errorf("make saw the interrupt:\n%s", out.String())
	}
}
