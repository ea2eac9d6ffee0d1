package privsep_test

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ovpn3go/ovpn3go/helper/privsep"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

const childEnv = "PRIVSEP_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
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
	uid, gid := testenv.EnsureBackendUser(t)
	u, err := privsep.LookupUser(testenv.BackendUser)
	if err != nil {
		t.Fatal(err)
	}
	if u.UID != uid || u.GID != gid {
		t.Fatalf("LookupUser = %+v, want %d:%d", u, uid, gid)
	}
	exe, _ := os.Executable()
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=yes", u.Env())
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v: %s", err, stderr.String())
	}
	f := statusFields(string(out))
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
	if strings.Contains(string(out), "OVPN3GO_PRIVSEP") {
		t.Error("privsep variables left in the environment")
	}
}

func TestLookupUserRefusesRoot(t *testing.T) {
	if _, err := privsep.LookupUser("root"); err == nil {
		t.Error("LookupUser(root) accepted")
	}
	if _, err := privsep.LookupUser("no-such-user-ovpn3go"); err == nil {
		t.Error("LookupUser of a missing user accepted")
	}
}
