package sessionmgr

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Process is one running backend as the session manager sees it: its PID,
// a channel closed once it has exited and been reaped, and a way to kill it.
type Process interface {
	Pid() int
	// Done is closed after the process has exited and was reaped.
	Done() <-chan struct{}
	// ExitReason describes how the process ended; valid after Done.
	ExitReason() string
	// Kill sends SIGKILL; harmless after exit.
	Kill()
}

// Launcher starts one backend process for a session token.
type Launcher interface {
	Launch(token string) (Process, error)
}

// ExecLauncher starts backends as child processes: Path with Args followed
// by the token, in a new session (setsid) so terminal signals sent to the
// helper's process group do not reach them, with stdout and stderr copied
// line by line into Logger.
type ExecLauncher struct {
	Path   string   // default: /proc/self/exe (re-exec of the running helper)
	Args   []string // default: ["backend"]
	Env    []string // extra environment entries appended to the helper's own
	Logger *slog.Logger
}

// Launch starts the backend and a goroutine that reaps it; the goroutine
// ends when the process does.
func (l *ExecLauncher) Launch(token string) (Process, error) {
	path := l.Path
	if path == "" {
		path = "/proc/self/exe"
	}
	args := l.Args
	if args == nil {
		args = []string{"backend"}
	}
	logger := l.Logger
	if logger == nil {
		logger = slog.Default()
	}
	cmd := exec.Command(path, append(append([]string(nil), args...), token)...)
	cmd.Env = append(os.Environ(), l.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	out := &lineLogger{logger: logger}
	cmd.Stdout = out
	cmd.Stderr = out
	// A grandchild keeping the pipe open must not keep Wait (and so the
	// exit notification) hanging.
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start backend %s: %w", path, err)
	}
	p := &execProcess{cmd: cmd, done: make(chan struct{})}
	out.setPid(cmd.Process.Pid)
	go p.reap(out)
	return p, nil
}

type execProcess struct {
	cmd    *exec.Cmd
	done   chan struct{}
	reason string
}

func (p *execProcess) Pid() int              { return p.cmd.Process.Pid }
func (p *execProcess) Done() <-chan struct{} { return p.done }
func (p *execProcess) ExitReason() string    { <-p.done; return p.reason }

func (p *execProcess) Kill() {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Kill()
	}
}

func (p *execProcess) reap(out *lineLogger) {
	err := p.cmd.Wait()
	out.flush()
	p.reason = describeExit(p.cmd.ProcessState, err)
	close(p.done)
}

func describeExit(st *os.ProcessState, err error) string {
	if st == nil {
		return fmt.Sprintf("wait failed: %v", err)
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return "killed by signal " + ws.Signal().String()
	}
	if err != nil && !errors.As(err, new(*exec.ExitError)) {
		return fmt.Sprintf("exit status %d (%v)", st.ExitCode(), err)
	}
	return fmt.Sprintf("exit status %d", st.ExitCode())
}

// lineLogger turns the backend's output into one log record per line.
type lineLogger struct {
	mu     sync.Mutex
	logger *slog.Logger
	pid    int
	buf    []byte
}

const maxLogLine = 4096

func (l *lineLogger) setPid(pid int) {
	l.mu.Lock()
	l.pid = pid
	l.mu.Unlock()
}

func (l *lineLogger) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, b...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.emit(l.buf[:i])
		l.buf = l.buf[i+1:]
	}
	if len(l.buf) > maxLogLine {
		l.emit(l.buf)
		l.buf = l.buf[:0]
	}
	return len(b), nil
}

func (l *lineLogger) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		l.emit(l.buf)
		l.buf = nil
	}
}

func (l *lineLogger) emit(line []byte) {
	line = bytes.TrimRight(line, "\r")
	if len(line) == 0 {
		return
	}
	l.logger.LogAttrs(context.Background(), slog.LevelInfo, "backend", slog.Int("pid", l.pid), slog.String("line", string(line)))
}

var _ io.Writer = (*lineLogger)(nil)
