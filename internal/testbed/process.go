package testbed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Process is a child process the harness started and owns: its output goes
// to a log file, and it is stopped by its own PID, never by name.
type Process struct {
	Name    string    // for messages, e.g. "openvpn server (a)"
	Cmd     *exec.Cmd // already started
	LogPath string    // stdout and stderr of the process

	// Started is when the process was started (just before its fork).
	Started time.Time

	done    chan struct{} // closed once Wait returned
	waitErr error         // valid after done is closed
	mark    *markWriter   // StartProcessMarking's; nil for StartProcess
}

// StartProcess starts cmd with stdout and stderr appended to logPath and
// returns the owned process. A goroutine waits for the process so its exit
// is noticed; it ends when the process ends (Stop guarantees that).
func StartProcess(name, logPath string, cmd *exec.Cmd) (*Process, error) {
	return startProcess(name, logPath, cmd, "")
}

// StartProcessMarking is StartProcess with the process's output read
// through a pipe as it is written, so the moment a line containing mark is
// written is known exactly (MarkedAt) rather than when a poll of the log
// file finds it; WaitForLog(mark) then returns as soon as it is read. The
// process should flush its output per line (openvpn does).
func StartProcessMarking(name, logPath string, cmd *exec.Cmd, mark string) (*Process, error) {
	if mark == "" {
		return nil, fmt.Errorf("start %s: empty mark", name)
	}
	return startProcess(name, logPath, cmd, mark)
}

func startProcess(name, logPath string, cmd *exec.Cmd, mark string) (*Process, error) {
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("start %s: open log: %w", name, err)
	}
	p := &Process{Name: name, Cmd: cmd, LogPath: logPath, done: make(chan struct{})}
	if mark == "" {
		cmd.Stdout, cmd.Stderr = logFile, logFile
	} else {
		// One writer for both: exec gives them one pipe and one copying
		// goroutine, which Wait waits for.
		p.mark = newMarkWriter(logFile, mark)
		cmd.Stdout, cmd.Stderr = p.mark, p.mark
		// Should a child of it hold the pipe after it exited.
		cmd.WaitDelay = 2 * time.Second
	}
	p.Started = time.Now()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s (%s): %w", name, strings.Join(cmd.Args, " "), err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// OwnProcessGroup makes cmd start in a process group of its own, so that
// signals sent to the starting program's group (a terminal's Ctrl-C) do
// not reach it: the program stops it in its own order instead.
func OwnProcessGroup(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
}

// PID is the process id of the child.
func (p *Process) PID() int { return p.Cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// ExitErr is the result of Wait; only meaningful after Done is closed.
func (p *Process) ExitErr() error { return p.waitErr }

// Log returns the whole log written so far.
func (p *Process) Log() string {
	b, _ := os.ReadFile(p.LogPath)
	return string(b)
}

// LogTail returns the last n lines of the log, for error messages.
func (p *Process) LogTail(n int) string { return tail(p.Log(), n) }

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// WaitForLog polls the log until it contains want. It fails early when the
// process exits, when ctx ends, or when timeout passes; the error carries the
// log tail so a failing test shows why.
func (p *Process) WaitForLog(ctx context.Context, want string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var marked <-chan struct{}
	if p.mark != nil && want == string(p.mark.want) {
		marked = p.mark.seen // no need to poll: the pipe's reader says
	}
	for {
		if b, err := os.ReadFile(p.LogPath); err == nil && bytes.Contains(b, []byte(want)) {
			return nil
		}
		select {
		case <-marked:
			return nil
		case <-p.done:
			// One last look: the line may have been written just before exit.
			if strings.Contains(p.Log(), want) {
				return nil
			}
			return fmt.Errorf("%s exited (%v) before logging %q; log tail:\n%s", p.Name, p.waitErr, want, p.LogTail(25))
		case <-ctx.Done():
			return fmt.Errorf("%s did not log %q within %v: %w; log tail:\n%s", p.Name, want, timeout, ctx.Err(), p.LogTail(25))
		case <-tick.C:
		}
	}
}

// Stop sends SIGTERM to the process (by PID), waits up to grace, then sends
// SIGKILL. It returns nil when the process is gone, whatever its exit status.
func (p *Process) Stop(grace time.Duration) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop %s (pid %d): %w", p.Name, p.PID(), err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
	}
	if err := p.Cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill %s (pid %d): %w", p.Name, p.PID(), err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(5 * time.Second):
		return fmt.Errorf("%s (pid %d) did not exit after SIGKILL", p.Name, p.PID())
	}
}

// MarkedAt is when the process wrote the line containing its mark
// (StartProcessMarking), as read from its output pipe; false if it has not
// (yet) or the process was started without a mark.
func (p *Process) MarkedAt() (time.Time, bool) {
	if p.mark == nil {
		return time.Time{}, false
	}
	select {
	case <-p.mark.seen:
		return p.mark.at, true
	default:
		return time.Time{}, false
	}
}

// markWriter passes a process's output on to its log and notes the time
// of the first write that completes the mark. exec calls Write from one
// goroutine at a time as it reads the pipe, so at is written once, before
// seen is closed, and read only after.
type markWriter struct {
	log  io.Writer
	want []byte
	tail []byte // the last len(want)-1 bytes: a mark split across reads
	at   time.Time
	seen chan struct{}
}

func newMarkWriter(log io.Writer, mark string) *markWriter {
	return &markWriter{log: log, want: []byte(mark), seen: make(chan struct{})}
}

func (m *markWriter) Write(b []byte) (int, error) {
	if m.at.IsZero() {
		now := time.Now()
		buf := append(m.tail, b...)
		if bytes.Contains(buf, m.want) {
			// Into the log first: whoever the mark wakes may read it.
			n, err := m.log.Write(b)
			m.at, m.tail = now, nil
			close(m.seen)
			return n, err
		}
		m.tail = bytes.Clone(buf[len(buf)-min(len(buf), len(m.want)-1):])
	}
	return m.log.Write(b)
}
