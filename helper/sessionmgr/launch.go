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

	"github.com/ovpn3go/ovpn3go/helper/privsep"
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

// TokenFD is the descriptor on which a backend started by ExecLauncher
// reads its session token (then EOF): not on its command line, which every
// user can read in /proc.
const TokenFD = 3

// maxTokenLen bounds what ReadToken accepts.
const maxTokenLen = 256

// ReadToken reads the session token a backend was started with from fd
// (TokenFD when ExecLauncher started it) and closes fd.
func ReadToken(fd int) (string, error) {
	if fd < 3 {
		return "", fmt.Errorf("session token descriptor %d: not an inherited descriptor", fd)
	}
	f := os.NewFile(uintptr(fd), "session token")
	if f == nil {
		return "", fmt.Errorf("no session token descriptor %d", fd)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTokenLen+1))
	if err != nil {
		return "", fmt.Errorf("read session token from fd %d: %w", fd, err)
	}
	if len(b) == 0 || len(b) > maxTokenLen {
		return "", fmt.Errorf("session token on fd %d: %d bytes", fd, len(b))
	}
	return string(b), nil
}

// ExecLauncher starts backends as child processes: Path with Args, the
// token on TokenFD, in a new session and process group (setsid) so
// terminal signals sent to the helper's process group do not reach them,
// with stdout and stderr copied line by line into Logger. With User the
// program runs as that user without any privilege (privsep.Start; it must
// call privsep.Enter first thing).
type ExecLauncher struct {
	Path   string   // default: /proc/self/exe (re-exec of the running helper)
	Args   []string // default: ["backend"]
	Env    []string // extra environment entries appended to the helper's own
	User   *privsep.User
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
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), l.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	// The token fits in the pipe buffer: written and closed before the
	// child runs, so the child reads it and EOF.
	tokR, tokW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("token pipe: %w", err)
	}
	defer tokR.Close()
	_, err = io.WriteString(tokW, token)
	if cerr := tokW.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("token pipe: %w", err)
	}
	cmd.ExtraFiles = []*os.File{tokR} // fd 3 = TokenFD
	out := &lineLogger{logger: logger}
	cmd.Stdout = out
	cmd.Stderr = out
	// A grandchild keeping the pipe open must not keep Wait (and so the
	// exit notification) hanging.
	cmd.WaitDelay = time.Second
	start := cmd.Start
	if l.User != nil {
		// Dropped before the one execve (not by re-executing as the
		// user: a second Go start-up on every connect).
		start = func() error { return privsep.Start(cmd, *l.User) }
	}
	if err := start(); err != nil {
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
