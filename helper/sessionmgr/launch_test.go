package sessionmgr

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func waitDone(t *testing.T, p Process, what string) {
	t.Helper()
	select {
	case <-p.Done():
	case <-time.After(20 * time.Second):
		p.Kill()
		t.Fatalf("%s: process did not end", what)
	}
}

func TestExecLauncherLogsOutputAndReaps(t *testing.T) {
	var logs syncBuffer
	l := &ExecLauncher{
		Path:   "/bin/sh",
		Args:   []string{"-c", `echo "out $(cat <&3) argc=$#"; echo "err line" >&2; printf partial; exit 3`, "sh"},
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	}
	p, err := l.Launch("tok1", nil)
	if err != nil {
		t.Fatal(err)
	}
	waitDone(t, p, "sh")
	if got := p.ExitReason(); got != "exit status 3" {
		t.Errorf("ExitReason = %q, want exit status 3", got)
	}
	out := logs.String()
	// The token arrives on token.FD, not on the command line.
	for _, want := range []string{`line="out tok1 argc=0"`, `line="err line"`, "line=partial"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
}

func TestExecLauncherNewSessionAndKill(t *testing.T) {
	l := &ExecLauncher{Path: "/bin/sleep", Args: []string{"60"}, Logger: slog.New(slog.DiscardHandler)}
	p, err := l.Launch("token", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	sid, err := os.ReadFile("/proc/" + itoa(p.Pid()) + "/stat")
	if err == nil {
		// field 6 of /proc/pid/stat is the session id; setsid makes it the pid.
		f := strings.Fields(string(sid[bytes.LastIndexByte(sid, ')')+2:]))
		// field 5 is the process group: its own as well.
		if len(f) > 3 && (f[3] != itoa(p.Pid()) || f[2] != itoa(p.Pid())) {
			t.Errorf("session id %s, process group %s, want %d (setsid)", f[3], f[2], p.Pid())
		}
	}
	p.Kill()
	waitDone(t, p, "sleep")
	if got := p.ExitReason(); got != "killed by signal killed" {
		t.Errorf("ExitReason = %q", got)
	}
	p.Kill() // after exit: no effect, no panic
}

func TestExecLauncherMissingBinary(t *testing.T) {
	l := &ExecLauncher{Path: "/nonexistent/ovpn3-helper"}
	if _, err := l.Launch("x", nil); err == nil {
		t.Fatal("Launch of a missing binary succeeded")
	}
}

// copyFile copies the program at from to a new executable file to.
func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// A backend runs the program file the daemon opened at its start, even
// after another file was renamed over its path (a package upgrade), and
// its argv[0] is that path.
func TestExecLauncherProgramHeldOpen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ovpn3-backend")
	copyFile(t, "/bin/sleep", path)
	prog, err := OpenProgram(path)
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	var opened syscall.Stat_t
	if err := syscall.Fstat(int(prog.Fd()), &opened); err != nil {
		t.Fatal(err)
	}
	copyFile(t, "/bin/true", path+".new")
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
	l := &ExecLauncher{Program: prog, Path: path, Args: []string{"60"}, Logger: slog.New(slog.DiscardHandler)}
	p, err := l.Launch("token", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Kill(); <-p.Done() })
	var running syscall.Stat_t
	if err := syscall.Stat("/proc/"+itoa(p.Pid())+"/exe", &running); err != nil {
		t.Fatal(err)
	}
	if running.Ino != opened.Ino {
		t.Errorf("backend runs inode %d, want the opened program's %d", running.Ino, opened.Ino)
	}
	// Start returns once the exec is past its point of no return, which
	// is before the kernel has laid out the new program's arguments:
	// until then /proc/PID/cmdline reads empty.
	var cmdline []byte
	for deadline := time.Now().Add(10 * time.Second); len(cmdline) == 0 && time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if cmdline, err = os.ReadFile("/proc/" + itoa(p.Pid()) + "/cmdline"); err != nil {
			t.Fatal(err)
		}
	}
	if got := string(cmdline); got != path+"\x0060\x00" {
		t.Errorf("backend command line %q, want %q", got, path+"\x0060\x00")
	}
	select {
	case <-p.Done():
		t.Errorf("backend exited: %s (ran the replaced file?)", p.ExitReason())
	default:
	}
}

// OpenProgram refuses what cannot be a backend, naming the path.
func TestOpenProgramRefuses(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{filepath.Join(dir, "missing"), dir, plain} {
		f, err := OpenProgram(path)
		if err == nil {
			f.Close()
			t.Errorf("OpenProgram(%s) succeeded", path)
		} else if !strings.Contains(err.Error(), path) {
			t.Errorf("OpenProgram(%s): %v, want the path named", path, err)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// spareScript stands in for a backend: it reads its token to EOF and says
// what it got (nothing when the launcher closed the descriptor unused).
const spareScript = `t=$(cat <&3); if [ -n "$t" ]; then echo "token $t pid $$"; else echo "no token pid $$"; fi`

func spareLauncher(logs *syncBuffer) *ExecLauncher {
	return &ExecLauncher{
		Path: "/bin/sh", Args: []string{"-c", spareScript},
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
		Spare:  true, SpareDelay: time.Millisecond,
	}
}

// waitSpare waits until l has a spare waiting and returns its PID.
func waitSpare(t *testing.T, l *ExecLauncher, not int) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if pid := l.SparePID(); pid != 0 && pid != not {
			return pid
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("no spare backend started")
	return 0
}

// A spare is started ahead, handed the token by the next Launch (after
// started saw it), serves that one session only and is replaced.
func TestExecLauncherSpareTakesOneToken(t *testing.T) {
	var logs syncBuffer
	l := spareLauncher(&logs)
	t.Cleanup(func() { l.Close() })
	l.StartSpare()
	first := waitSpare(t, l, 0)
	var seen Process
	p, err := l.Launch("tok1", func(p Process) { seen = p })
	if err != nil {
		t.Fatal(err)
	}
	if p.Pid() != first || seen != p {
		t.Fatalf("Launch gave pid %d (started saw %v), want the spare %d", p.Pid(), seen, first)
	}
	waitDone(t, p, "spare")
	if want := "token tok1 pid " + itoa(first); !strings.Contains(logs.String(), want) {
		t.Errorf("log lacks %q:\n%s", want, logs.String())
	}
	second := waitSpare(t, l, first)
	p2, err := l.Launch("tok2", nil)
	if err != nil {
		t.Fatal(err)
	}
	if p2.Pid() != second {
		t.Errorf("second Launch gave pid %d, want the new spare %d", p2.Pid(), second)
	}
	waitDone(t, p2, "second spare")
	if want := "token tok2 pid " + itoa(second); !strings.Contains(logs.String(), want) {
		t.Errorf("log lacks %q:\n%s", want, logs.String())
	}
}

// Close ends the waiting spare without a token and starts no other;
// a Launch after a spare died starts a fresh backend.
func TestExecLauncherSpareClosedAndDead(t *testing.T) {
	var logs syncBuffer
	l := spareLauncher(&logs)
	l.StartSpare()
	dead := waitSpare(t, l, 0)
	l.mu.Lock()
	deadProc := l.spare
	l.mu.Unlock()
	// Its process group: the shell and the cat reading the descriptor.
	if err := syscall.Kill(-dead, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitDone(t, deadProc, "killed spare")
	p, err := l.Launch("fresh", nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Pid() == dead {
		t.Fatal("Launch handed out the dead spare")
	}
	waitDone(t, p, "fresh backend")
	if want := "token fresh pid " + itoa(p.Pid()); !strings.Contains(logs.String(), want) {
		t.Errorf("log lacks %q:\n%s", want, logs.String())
	}
	spare := waitSpare(t, l, p.Pid())
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if want := "no token pid " + itoa(spare); !strings.Contains(logs.String(), want) {
		t.Errorf("the spare did not end on Close; log lacks %q:\n%s", want, logs.String())
	}
	if pid := l.SparePID(); pid != 0 {
		t.Errorf("spare %d after Close", pid)
	}
	l.StartSpare()
	time.Sleep(20 * time.Millisecond)
	if pid := l.SparePID(); pid != 0 {
		t.Errorf("Close did not stop spares: %d started", pid)
	}
}
