// Package token is how a backend process receives its session token from
// the daemon that started it: on an inherited descriptor, never on its
// command line (which every user can read in /proc). The daemon's side is
// sessionmgr.ExecLauncher; a backend links only this package of it.
package token

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"
)

// FD is the descriptor on which a backend started by the daemon
// (sessionmgr.ExecLauncher) reads its session token, then EOF.
const FD = 3

// maxLen bounds what Read accepts.
const maxLen = 256

// ErrNone is Read's error when the descriptor ended without a
// token: the daemon closed it (a spare backend it no longer needs, or a
// daemon that exited).
var ErrNone = errors.New("no session token: the daemon closed the descriptor")

// Read reads the session token a backend was started with from fd (FD
// when the daemon started it) and closes fd. It waits until the
// token and EOF arrive, which for a spare backend is when a session claims
// it, or until ctx ends.
func Read(ctx context.Context, fd int) (string, error) {
	if fd < 3 {
		return "", fmt.Errorf("session token descriptor %d: not an inherited descriptor", fd)
	}
	// Non-blocking, so os.NewFile returns a pollable file whose read ctx
	// can end (a read deadline) instead of a thread stuck in read(2).
	if err := syscall.SetNonblock(fd, true); err != nil {
		return "", fmt.Errorf("session token descriptor %d: %w", fd, err)
	}
	f := os.NewFile(uintptr(fd), "session token")
	if f == nil {
		return "", fmt.Errorf("no session token descriptor %d", fd)
	}
	defer f.Close()
	stop := context.AfterFunc(ctx, func() { _ = f.SetReadDeadline(time.Now()) })
	defer stop()
	b, err := io.ReadAll(io.LimitReader(f, maxLen+1))
	if err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("waiting for the session token: %w", ctx.Err())
		}
		return "", fmt.Errorf("read session token from fd %d: %w", fd, err)
	}
	if len(b) == 0 {
		return "", ErrNone
	}
	if len(b) > maxLen {
		return "", fmt.Errorf("session token on fd %d: %d bytes", fd, len(b))
	}
	return string(b), nil
}
