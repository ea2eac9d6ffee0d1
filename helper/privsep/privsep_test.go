package privsep_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ovpn3go/ovpn3go/helper/privsep"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

const (
	childEnv  = "PRIVSEP_TEST_CHILD"
	startsEnv = "PRIVSEP_TEST_STARTS" // set: the child writes one line per start of its image to fd 3
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		if os.Getenv(startsEnv) != "" {
			// Not closed: a re-executed image writes to it again.
			if _, err := fmt.Fprintf(os.NewFile(3, "starts"), "start as uid %d\n", os.Getuid()); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		}
		if err := privsep.Enter(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		b, err := os.ReadFile("/proc/self/status")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		dumpable, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("%sPGID: %d\nSID: %d\nENV: %s\nDumpable: %d\n", b, syscall.Getpgrp(), mustSid(), os.Getenv(childEnv), dumpable)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func mustSid() int {
	sid, _, _ := syscall.RawSyscall(syscall.SYS_GETSID, 0, 0, 0)
	return int(sid)
}

// StatusFields parses /proc/PID/status text into key → value.
func statusFields(s string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok {
			out[k] = strings.TrimSpace(v)
		}
	}
	return out
}

// A process started as root with Env ends up as the backend user with
// every capability set empty, no-new-privileges and not dumpable, under
// the PID it was started with.
func TestEnterDropsEverything(t *testing.T) {
	u, cmd, starts := backendChild(t)
	cmd.Env = append(cmd.Env, u.Env())
	checkDropped(t, u, cmd)
	if n := countLines(t, starts); n != 2 {
		t.Errorf("the child's image started %d times, want 2 (as root, then re-executed as the user)", n)
	}
}

// Start gives the same result with one execve: the program starts once,
// already as the user (the second start cost a Go runtime start-up on the
// session's connect path).
func TestStartDropsEverythingInOneExec(t *testing.T) {
	u, cmd, starts := backendChild(t)
	checkDropped(t, u, cmd)
	if n := countLines(t, starts); n != 1 {
		t.Errorf("the child's image started %d times, want 1", n)
	}
	b, _ := os.ReadFile(starts)
	if want := fmt.Sprintf("start as uid %d\n", u.UID); string(b) != want {
		t.Errorf("child started as %q, want %q", b, want)
	}
	if d, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0); err != nil || d != 1 {
		t.Errorf("the launcher's dumpable flag is %d (%v) after Start, want 1 as before", d, err)
	}
	if err := privsep.Start(exec.Command("/bin/true"), privsep.User{Name: "root"}); err == nil {
		t.Error("Start as uid 0 accepted")
	}
}

// backendChild is the test binary as a child in its own session, as the
// backend user (created if missing), and the file where it records its
// starts (through an inherited descriptor).
func backendChild(t *testing.T) (privsep.User, *exec.Cmd, string) {
	t.Helper()
	uid, gid := testenv.EnsureBackendUser(t)
	u, err := privsep.LookupUser(testenv.BackendUser)
	if err != nil {
		t.Fatal(err)
	}
	if u.UID != uid || u.GID != gid {
		t.Fatalf("LookupUser = %+v, want %d:%d", u, uid, gid)
	}
	starts := filepath.Join(t.TempDir(), "starts")
	f, err := os.Create(starts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	exe, _ := os.Executable()
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=yes", startsEnv+"=fd3")
	cmd.ExtraFiles = []*os.File{f}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	return u, cmd, starts
}

// checkDropped runs cmd (privsep.Start when its environment does not ask
// for the drop itself) and checks what the child reports about itself.
func checkDropped(t *testing.T, u privsep.User, cmd *exec.Cmd) {
	t.Helper()
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	var err error
	if strings.Contains(strings.Join(cmd.Env, "\n"), u.Env()) {
		err = cmd.Start()
	} else {
		err = privsep.Start(cmd, u)
	}
	if err == nil {
		err = cmd.Wait()
	}
	if err != nil {
		t.Fatalf("child: %v: %s", err, stderr.String())
	}
	uid, gid := u.UID, u.GID
	f := statusFields(stdout.String())
	want := map[string]string{
		"Uid":    fmt.Sprintf("%d\t%d\t%d\t%d", uid, uid, uid, uid),
		"Gid":    fmt.Sprintf("%d\t%d\t%d\t%d", gid, gid, gid, gid),
		"Groups": "", "NoNewPrivs": "1",
		"CapInh": "0000000000000000", "CapPrm": "0000000000000000", "CapEff": "0000000000000000",
		"CapBnd": "0000000000000000", "CapAmb": "0000000000000000",
		"ENV": "yes", "Dumpable": "0",
		"Pid": fmt.Sprint(cmd.Process.Pid), "PGID": fmt.Sprint(cmd.Process.Pid), "SID": fmt.Sprint(cmd.Process.Pid),
	}
	for k, v := range want {
		if f[k] != v {
			t.Errorf("%s: %q, want %q", k, f[k], v)
		}
	}
	if strings.Contains(stdout.String(), "OVPN3GO_PRIVSEP") {
		t.Error("privsep variables left in the environment")
	}
}

func countLines(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

func TestLookupUserRefusesRoot(t *testing.T) {
	if _, err := privsep.LookupUser("root"); err == nil {
		t.Error("LookupUser(root) accepted")
	}
	if _, err := privsep.LookupUser("no-such-user-ovpn3go"); err == nil {
		t.Error("LookupUser of a missing user accepted")
	}
}
