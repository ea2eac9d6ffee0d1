// Package privsep starts a process with no privileges at all: the
// per-session backend parses everything the VPN server sends, so it runs as
// the unprivileged backend user with empty capability sets (effective,
// permitted, inheritable, ambient and bounding), no-new-privileges, not
// dumpable. What needs privilege (the TUN device) reaches it as a file
// descriptor from netcfg.
//
// Capabilities and credentials are per thread and a Go program has many,
// so the drop happens on one locked thread whose execve then keeps only
// that thread's credentials. Start does it in the launcher: a throw-away
// thread of the (root) launcher drops everything and forks the program from
// there, so the program's one execve already runs as the user. The older
// way, Env, costs a second start of the program (Go runtime and package
// initialisation twice, on the session's connect path): the launcher
// starts it as root with Env in its environment and Enter, called first in
// main, drops on one thread and re-executes. Either way Enter, in the
// program that finally runs, makes the process non-dumpable (execve resets
// that attribute) and checks that no root identity is left.
package privsep

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

const (
	envDrop    = "OVPN3GO_PRIVSEP_DROP" // "uid:gid": stage 1, drop to them
	envDropped = "OVPN3GO_PRIVSEP_DONE" // stage 2: finish in the new image
)

// User is the identity a backend runs as.
type User struct {
	Name     string
	UID, GID uint32
}

// LookupUser finds a system user and its primary group; a user with UID or
// GID 0 is refused (dropping to it would drop nothing).
func LookupUser(name string) (User, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return User{}, fmt.Errorf("backend user %q: %w", name, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return User{}, fmt.Errorf("backend user %q: non-numeric uid %q or gid %q", name, u.Uid, u.Gid)
	}
	if uid == 0 || gid == 0 {
		return User{}, fmt.Errorf("backend user %q has uid %d gid %d; it must not be root", name, uid, gid)
	}
	return User{Name: name, UID: uint32(uid), GID: uint32(gid)}, nil
}

// Env is the environment entry that makes Enter drop to u.
func (u User) Env() string { return fmt.Sprintf("%s=%d:%d", envDrop, u.UID, u.GID) }

// Start starts cmd as u, with every privilege dropped before its execve
// (see the package comment), so that cmd's Enter only has its final step
// to do. A program starting itself is started through /proc/self/exe,
// which reaches the binary even when its directory is closed to u (a test
// binary in a 0700 temporary directory).
func Start(cmd *exec.Cmd, u User) error {
	if u.UID == 0 || u.GID == 0 {
		return fmt.Errorf("privsep: refusing to start %s as uid %d gid %d", cmd.Path, u.UID, u.GID)
	}
	if self, err := os.Executable(); err == nil && cmd.Path == self {
		cmd.Path = "/proc/self/exe"
	}
	env := cmd.Environ()
	cmd.Env = []string{envDropped + "=1"}
	for _, kv := range env {
		if !strings.HasPrefix(kv, envDrop+"=") && !strings.HasPrefix(kv, envDropped+"=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	// Changing a thread's effective uid marks the whole process
	// non-dumpable; the launcher keeps what it had.
	dumpable, derr := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the runtime ends (or, the main thread, parks
		// for good) a locked thread whose goroutine returns, so the
		// dropped credentials serve this one fork only.
		runtime.LockOSThread()
		if err := dropThread(u.UID, u.GID); err != nil {
			errc <- err
			return
		}
		errc <- cmd.Start()
	}()
	err := <-errc
	if derr == nil && dumpable != 0 {
		_ = unix.Prctl(unix.PR_SET_DUMPABLE, uintptr(dumpable), 0, 0, 0)
	}
	if errors.Is(err, fs.ErrPermission) {
		// The execve already runs as u: every directory on the path must
		// be searchable by u and the file executable by u.
		return fmt.Errorf("privsep: start %s as uid %d (the file and its directories must be reachable by that user): %w", cmd.Path, u.UID, err)
	}
	if err != nil {
		return fmt.Errorf("privsep: start %s as uid %d: %w", cmd.Path, u.UID, err)
	}
	return nil
}

// Enter does this process's part of the drop and returns only when there
// is nothing (left) to do: without Env in the environment it returns nil at
// once; in stage 1 it does not return unless the drop failed (the process
// must then exit); in stage 2 it returns nil once the process is not
// dumpable and runs as the unprivileged user.
func Enter() error {
	if os.Getenv(envDropped) != "" {
		os.Unsetenv(envDropped)
		if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
			return fmt.Errorf("privsep: not dumpable: %w", err)
		}
		if os.Getuid() == 0 || os.Geteuid() == 0 || os.Getgid() == 0 || os.Getegid() == 0 {
			return errors.New("privsep: still root after the drop")
		}
		return nil
	}
	spec, ok := os.LookupEnv(envDrop)
	if !ok {
		return nil
	}
	uid, gid, err := parseSpec(spec)
	if err != nil {
		return err
	}
	env := []string{envDropped + "=1"}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envDrop+"=") && !strings.HasPrefix(kv, envDropped+"=") {
			env = append(env, kv)
		}
	}
	// Never unlocked: this thread's credentials differ from the others'
	// until execve replaces the whole process.
	runtime.LockOSThread()
	if err := dropThread(uid, gid); err != nil {
		return err
	}
	// /proc/self/exe reaches the binary even when its directory is closed
	// to the new user (a test binary in a 0700 temporary directory).
	err = syscall.Exec("/proc/self/exe", os.Args, env)
	return fmt.Errorf("privsep: re-execute as uid %d: %w", uid, err)
}

func parseSpec(spec string) (uid, gid uint32, err error) {
	u, g, ok := strings.Cut(spec, ":")
	uu, err1 := strconv.ParseUint(u, 10, 32)
	gg, err2 := strconv.ParseUint(g, 10, 32)
	if !ok || err1 != nil || err2 != nil || uu == 0 || gg == 0 {
		return 0, 0, fmt.Errorf("privsep: bad %s %q", envDrop, spec)
	}
	return uint32(uu), uint32(gg), nil
}

// dropThread changes the calling thread only (raw system calls, not the
// libc/runtime all-threads variants): groups, gid, bounding set,
// no-new-privileges, uid (which clears the permitted, effective and ambient
// sets) and finally the inheritable set.
func dropThread(uid, gid uint32) error {
	if os.Geteuid() != 0 {
		return errors.New("privsep: dropping privileges needs root")
	}
	if _, _, e := syscall.RawSyscall(syscall.SYS_SETGROUPS, 0, 0, 0); e != 0 {
		return fmt.Errorf("privsep: setgroups: %w", e)
	}
	if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESGID, uintptr(gid), uintptr(gid), uintptr(gid)); e != 0 {
		return fmt.Errorf("privsep: setresgid %d: %w", gid, e)
	}
	last, err := lastCap()
	if err != nil {
		return err
	}
	for c := 0; c <= last; c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
			return fmt.Errorf("privsep: drop capability %d from the bounding set: %w", c, err)
		}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("privsep: clear ambient capabilities: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("privsep: no-new-privileges: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("privsep: keep-caps off: %w", err)
	}
	if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESUID, uintptr(uid), uintptr(uid), uintptr(uid)); e != 0 {
		return fmt.Errorf("privsep: setresuid %d: %w", uid, e)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("privsep: clear capability sets: %w", err)
	}
	return nil
}

func lastCap() (int, error) {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 0, fmt.Errorf("privsep: %w", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("privsep: cap_last_cap: %w", err)
	}
	return n, nil
}
