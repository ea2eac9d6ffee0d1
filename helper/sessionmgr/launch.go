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
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

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
	// Launch starts a backend (or hands out one started ahead) and gives
	// it token. started, when not nil, is called with the process before
	// the token reaches it, so the caller knows the process before its
	// RegistrationRequest can arrive.
	Launch(token string, started func(Process)) (Process, error)
}

// ExecLauncher starts backends as child processes: Program (or Path) with
// Args, the token on token.FD, in a new session and process group (setsid) so
// terminal signals sent to the helper's process group do not reach them,
// with stdout and stderr copied line by line into Logger. With User the
// program runs as that user without any privilege (privsep.Start; it must
// call privsep.Enter first thing).
//
// With Spare it keeps one backend started ahead of need (StartSpare, and
// again SpareDelay after each one is taken): the program runs, drops its
// privileges, connects to the bus and waits on token.FD; the next Launch
// hands it the token instead of starting a process, which takes the
// program's start and its first bus round trips off the connect path. A
// spare is an ordinary backend that has not read its token yet: it serves
// one session and is never reused. Close ends the one waiting.
type ExecLauncher struct {
	// Program is the backend program opened by OpenProgram when the
	// daemon started. Backends are executed from this open file, not
	// from a path: a package upgrade replaces the file under a running
	// daemon, and a backend started from the path would be the new
	// release talking to this one. Path is then the backends' argv[0].
	Program *os.File
	Path    string // the program to run when Program is nil
	Args    []string
	Env     []string // extra environment entries appended to the helper's own
	User    *privsep.User
	Logger  *slog.Logger
	Spare   bool
	// SpareDelay is how long after a spare was taken the next one starts
	// (default 1 s): its start would otherwise compete for the CPU with the
	// session that just took the previous one.
	SpareDelay time.Duration

	mu      sync.Mutex
	spare   *execProcess // started, waiting for its token
	pending *time.Timer  // starts the next spare
	closed  bool
	wg      sync.WaitGroup // a spare being started
}

// DefaultSpareDelay is ExecLauncher.SpareDelay's default.
const DefaultSpareDelay = time.Second

// Launch hands token to the spare backend if one waits, or starts a
// backend; the reaping goroutine ends when the process does.
func (l *ExecLauncher) Launch(token string, started func(Process)) (Process, error) {
	p := l.takeSpare()
	if p == nil {
		var err error
		if p, err = l.start(); err != nil {
			return nil, err
		}
	}
	if started != nil {
		started(p)
	}
	if err := p.deliver(token); err != nil {
		p.Kill()
		return nil, fmt.Errorf("backend %d: %w", p.Pid(), err)
	}
	return p, nil
}

// StartSpare starts the spare backend (without Spare it does nothing);
// the daemon calls it once its services own their names, which the
// spare looks up.
func (l *ExecLauncher) StartSpare() { l.scheduleSpare(0) }

// SparePID is the PID of the spare backend waiting for a session, or 0.
func (l *ExecLauncher) SparePID() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.spare == nil {
		return 0
	}
	return l.spare.Pid()
}

// takeSpare returns the waiting spare, if it still runs, and schedules
// the next one.
func (l *ExecLauncher) takeSpare() *execProcess {
	if !l.Spare {
		return nil
	}
	l.mu.Lock()
	p := l.spare
	l.spare = nil
	l.mu.Unlock()
	delay := l.SpareDelay
	if delay <= 0 {
		delay = DefaultSpareDelay
	}
	l.scheduleSpare(delay)
	if p == nil {
		return nil
	}
	select {
	case <-p.Done():
		p.closeToken() // it died waiting (its exit is in the log)
		return nil
	default:
		return p
	}
}

// scheduleSpare starts a spare after d unless one waits or is on its way.
func (l *ExecLauncher) scheduleSpare(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.Spare || l.closed || l.spare != nil || l.pending != nil {
		return
	}
	l.wg.Add(1)
	l.pending = time.AfterFunc(d, l.startSpare)
}

func (l *ExecLauncher) startSpare() {
	defer l.wg.Done()
	l.mu.Lock()
	l.pending = nil
	skip := l.closed || l.spare != nil
	l.mu.Unlock()
	if skip {
		return
	}
	p, err := l.start()
	if err != nil {
		l.logger().Warn("spare backend not started", "err", err)
		return
	}
	l.mu.Lock()
	if l.closed || l.spare != nil {
		l.mu.Unlock()
		endSpare(p) // not needed after all; Close waits for this
		return
	}
	l.spare = p
	l.mu.Unlock()
}

// endSpare closes a spare's token descriptor, on which it exits, and
// waits until it was reaped (killed if it takes more than a few seconds).
func endSpare(p *execProcess) {
	p.closeToken()
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-p.Done():
	case <-t.C:
		p.Kill()
		<-p.Done()
	}
}

// Close ends the waiting spare (its token descriptor reaches EOF and it
// exits; killed if it does not within a few seconds) and starts no more.
// Backends that serve sessions are not touched.
func (l *ExecLauncher) Close() error {
	l.mu.Lock()
	l.closed = true
	if l.pending != nil && l.pending.Stop() {
		l.wg.Done()
	}
	l.pending = nil
	p := l.spare
	l.spare = nil
	l.mu.Unlock()
	l.wg.Wait()
	if p != nil {
		endSpare(p)
	}
	return nil
}

func (l *ExecLauncher) logger() *slog.Logger {
	if l.Logger == nil {
		return slog.Default()
	}
	return l.Logger
}

// start starts the program with token.FD's write end kept open for
// deliver, and a goroutine that reaps it.
func (l *ExecLauncher) start() (*execProcess, error) {
	path := l.Path
	if path == "" {
		return nil, errors.New("start backend: no program")
	}
	cmd := exec.Command(path, l.Args...)
	if l.Program != nil {
		cmd.Path = programPath(l.Program)
	}
	cmd.Env = append(os.Environ(), l.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	tokR, tokW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("token pipe: %w", err)
	}
	defer tokR.Close()
	cmd.ExtraFiles = []*os.File{tokR} // fd 3 = token.FD
	out := &lineLogger{logger: l.logger()}
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
		tokW.Close()
		return nil, fmt.Errorf("start backend %s: %w", path, err)
	}
	p := &execProcess{cmd: cmd, done: make(chan struct{}), tokW: tokW}
	out.setPid(cmd.Process.Pid)
	go p.reap(out)
	return p, nil
}

// minProgramFD is the lowest descriptor OpenProgram leaves the program
// on. The child of exec.Cmd renumbers the descriptors it passes (0, 1, 2,
// token.FD, and one spare above them while it does) before it executes
// /proc/self/fd/N: N must be none of those.
const minProgramFD = 16

// OpenProgram opens the backend program at path for ExecLauncher.Program:
// a regular, executable file, held open on a descriptor of its own (closed
// on exec) for as long as the daemon runs.
func OpenProgram(path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("backend program: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("backend program: %w", err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return nil, fmt.Errorf("backend program %s: not an executable file (%v)", path, fi.Mode())
	}
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, minProgramFD)
	if err != nil {
		return nil, fmt.Errorf("backend program %s: %w", path, err)
	}
	return os.NewFile(uintptr(fd), path), nil
}

// programPath is the path under which a child process executes the file
// f its parent holds open.
func programPath(f *os.File) string { return "/proc/self/fd/" + strconv.Itoa(int(f.Fd())) }

type execProcess struct {
	cmd    *exec.Cmd
	done   chan struct{}
	reason string

	tokMu sync.Mutex
	tokW  *os.File // token.FD's write end until the token went through it
}

// deliver writes the token and closes the descriptor: the backend reads
// the token and EOF. The token fits in the pipe buffer, so this never
// waits for the backend.
func (p *execProcess) deliver(token string) error {
	p.tokMu.Lock()
	defer p.tokMu.Unlock()
	if p.tokW == nil {
		return errors.New("session token descriptor already closed")
	}
	_, err := io.WriteString(p.tokW, token)
	if cerr := p.tokW.Close(); err == nil {
		err = cerr
	}
	p.tokW = nil
	if err != nil {
		return fmt.Errorf("hand over the session token: %w", err)
	}
	return nil
}

// closeToken closes the token descriptor without a token (token.ErrNone in
// the backend).
func (p *execProcess) closeToken() {
	p.tokMu.Lock()
	defer p.tokMu.Unlock()
	if p.tokW != nil {
		p.tokW.Close()
		p.tokW = nil
	}
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
	p.closeToken()
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
