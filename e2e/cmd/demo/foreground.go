package main

import (
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// takeForeground moves the demo into a process group of its own and makes
// that the terminal's foreground group, so a Ctrl-C reaches the demo alone
// and not the program that started it (make demo: make would otherwise
// get the SIGINT too and exit "Interrupt" after the demo ended cleanly).
// The returned func gives the terminal back to the original group. Without
// a terminal in the foreground (tests, scripts, nohup) it does nothing.
func takeForeground() (restore func()) {
	fd := int(os.Stdin.Fd())
	orig, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP)
	if err != nil || orig != syscall.Getpgrp() {
		return func() {}
	}
	// Changing the foreground group from what becomes a background group
	// raises SIGTTOU; ignore it for this and for the way back.
	signal.Ignore(syscall.SIGTTOU)
	if err := syscall.Setpgid(0, 0); err != nil {
		signal.Reset(syscall.SIGTTOU)
		return func() {}
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPGRP, syscall.Getpgrp()); err != nil {
		_ = syscall.Setpgid(0, orig) // back into the group we came from
		signal.Reset(syscall.SIGTTOU)
		return func() {}
	}
	return func() {
		_ = unix.IoctlSetPointerInt(fd, unix.TIOCSPGRP, orig)
		signal.Reset(syscall.SIGTTOU)
	}
}
