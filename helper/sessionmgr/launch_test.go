package sessionmgr

import (
	"bytes"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
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
	p, err := l.Launch("tok1")
	if err != nil {
		t.Fatal(err)
	}
	waitDone(t, p, "sh")
	if got := p.ExitReason(); got != "exit status 3" {
		t.Errorf("ExitReason = %q, want exit status 3", got)
	}
	out := logs.String()
	// The token arrives on TokenFD, not on the command line.
	for _, want := range []string{`line="out tok1 argc=0"`, `line="err line"`, "line=partial"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
}

func TestExecLauncherNewSessionAndKill(t *testing.T) {
	l := &ExecLauncher{Path: "/bin/sleep", Args: []string{"60"}, Logger: slog.New(slog.DiscardHandler)}
	p, err := l.Launch("token")
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
	if _, err := l.Launch("x"); err == nil {
		t.Fatal("Launch of a missing binary succeeded")
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
