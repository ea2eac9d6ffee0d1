package packaging

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/internal/testbed"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// booted is a copy of the base root booted with systemd as its PID 1
// (systemd-nspawn --boot) in the client namespace of a test bed pair.
type booted struct {
	shell
	cmd    *exec.Cmd
	exited chan struct{} // closed when nspawn has ended
	log    syncBuffer
	init   int // the container's systemd, as the host sees it
}

// boot starts systemd in a copy of the base root. The container shares
// the client namespace (where the test bed's server is reachable), gets
// CAP_NET_ADMIN (which nspawn only grants with a private network) and
// /dev/net/tun. Its systemd gets the unified cgroup hierarchy, CAP_BPF and
// bpf() so that it can enforce a unit's DevicePolicy (a BPF program on the
// unit's cgroup; in the hybrid hierarchy it would need the v1 devices
// controller, which nspawn mounts read-only); otherwise it is nspawn's
// default container.
func boot(t *testing.T, netns string) *booted {
	t.Helper()
	base := baseRoot(t)
	dir := filepath.Join(t.TempDir(), "root")
	if out, err := exec.Command("cp", "-a", base, dir).CombinedOutput(); err != nil {
		t.Fatalf("copy root: %v\n%s", err, out)
	}
	b := &booted{exited: make(chan struct{})}
	b.shell = shell{t: t, dir: dir, command: b.enter}
	args := []string{"--quiet", "--directory", dir, "--boot", "--register=no",
		"--machine", testenv.UniqueName("ovboot"), "--network-namespace-path", "/run/netns/" + netns,
		"--capability=CAP_NET_ADMIN,CAP_BPF", "--system-call-filter=bpf", "--bind=/dev/net/tun", "--console=pipe"}
	// Without systemd on the host there is no manager to create a scope
	// for the container: it stays in the cgroup nspawn was started in.
	if _, err := os.Stat("/run/systemd/system"); err != nil {
		args = append(args, "--keep-unit")
	}
	b.cmd = exec.Command("systemd-nspawn", args...)
	b.cmd.Env = append(os.Environ(), "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1")
	b.cmd.Stdout, b.cmd.Stderr = &b.log, &b.log
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { b.cmd.Wait(); close(b.exited) }()
	t.Cleanup(b.poweroff)

	deadline := time.Now().Add(time.Minute)
	for {
		if b.init = childNamed(b.cmd.Process.Pid, "systemd"); b.init != 0 {
			break
		}
		if b.ended() || time.Now().After(deadline) {
			t.Fatalf("systemd-nspawn started no systemd:\n%s", b.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// systemctl talks to systemd over its private socket, there once the
	// manager runs; is-system-running --wait returns once start-up is over.
	for {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d/root/run/systemd/private", b.init)); err == nil {
			break
		}
		if b.ended() || time.Now().After(deadline) {
			t.Fatalf("systemd in the container did not start its manager:\n%s", b.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	state, _ := b.run("systemctl", "is-system-running", "--wait")
	if state = strings.TrimSpace(state); state != "running" {
		failed, _ := b.run("systemctl", "--failed", "--no-pager")
		t.Fatalf("the booted system is %q:\n%s\nconsole:\n%s", state, failed, b.log.String())
	}
	return b
}

// childNamed is the PID of a child of ppid whose command is comm, or 0.
func childNamed(ppid int, comm string) int {
	kids, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", ppid, ppid))
	for _, f := range strings.Fields(string(kids)) {
		pid, _ := strconv.Atoi(f)
		if c, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(c)) == comm {
			return pid
		}
	}
	return 0
}

// poweroff shuts the container down as a host does (nspawn turns SIGTERM
// into an orderly shutdown); if that does not end it, it is killed.
func (b *booted) poweroff() {
	if b.ended() {
		return
	}
	b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.exited:
	case <-time.After(90 * time.Second):
		b.t.Errorf("the container did not shut down on SIGTERM:\n%s", b.log.String())
		syscall.Kill(b.init, syscall.SIGKILL) // ends its PID namespace
		b.cmd.Process.Kill()
		<-b.exited
	}
}

func (b *booted) ended() bool {
	select {
	case <-b.exited:
		return true
	default:
		return false
	}
}

// enter runs args inside the container (all its namespaces).
func (b *booted) enter(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "nsenter", append([]string{"-t", strconv.Itoa(b.init), "-a", "--",
		"env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"}, args...)...)
}

// TestInstalledUnderSystemd boots the clean Debian root with systemd,
// installs the built packages into it and uses them: the system bus
// started by systemd activates the helper through the shipped unit
// (SystemdService=), which must then run with the unit's capability
// bounding set, no_new_privs and system call filter; an ordinary user
// connects a session to the test bed's server, its backend runs as
// _ovpn3go without capabilities, and a stranger is refused.
func TestInstalledUnderSystemd(t *testing.T) {
	testenv.RequireRoot(t)
	helperDeb, _ := debs(t)
	for _, c := range []string{"systemd-nspawn", "nsenter", "openvpn"} {
		testenv.RequireCommand(t, c)
	}
	pair := testbed.NetPair(t)
	srv := testbed.Server(t, pair, testbed.VariantA)
	sys := boot(t, pair.ClientNS)

	b, err := os.ReadFile(helperDeb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sys.dir, "root", filepath.Base(helperDeb)), b, 0o644); err != nil {
		t.Fatal(err)
	}
	sys.must("dpkg", "-i", "/root/"+filepath.Base(helperDeb))
	addUsers(t, &sys.shell)

	// An ordinary user's first call activates the helper, through systemd.
	if out, err := sys.as("tester", "ovpn3", "configs-list"); err != nil {
		journal, _ := sys.run("journalctl", "--no-pager", "-b", "-u", "dbus.service", "-u", "ovpn3-helper.service")
		t.Fatalf("configs-list as tester: %v\n%s\njournal:\n%s", err, out, journal)
	}
	show := map[string]string{}
	for line := range strings.Lines(sys.must("systemctl", "show", "ovpn3-helper.service",
		"-p", "ActiveState", "-p", "MainPID")) {
		k, v, _ := strings.Cut(strings.TrimSpace(line), "=")
		show[k] = v
	}
	if show["ActiveState"] != "active" || show["MainPID"] == "0" || show["MainPID"] == "" {
		t.Fatalf("ovpn3-helper.service after activation: %v", show)
	}
	helper := show["MainPID"]
	if cmd := sys.must("cat", "/proc/"+helper+"/cmdline"); strings.ReplaceAll(strings.TrimRight(cmd, "\x00"), "\x00", " ") != helperExec {
		t.Errorf("the unit's main process runs %q, want %q", cmd, helperExec)
	}
	st := sys.status(helper)
	want := boundingSet(t)
	if st["CapBnd"] != want || st["NoNewPrivs"] != "1" || st["Seccomp"] != "2" || !strings.HasPrefix(st["Uid"], "0 ") {
		t.Errorf("helper %s: Uid %s CapBnd %s NoNewPrivs %s Seccomp %s; want root, %s (the unit's CapabilityBoundingSet), 1, 2 (filter)",
			helper, st["Uid"], st["CapBnd"], st["NoNewPrivs"], st["Seccomp"], want)
	}
	t.Logf("helper %s under ovpn3-helper.service: Uid %s CapBnd %s CapEff %s NoNewPrivs %s Seccomp %s",
		helper, st["Uid"], st["CapBnd"], st["CapEff"], st["NoNewPrivs"], st["Seccomp"])
	// ProtectSystem=strict: /usr is read-only in the helper's mount
	// namespace (and its state directory is not).
	mounts := sys.must("cat", "/proc/"+helper+"/mountinfo")
	usr, ok := mountOptions(mounts, "/usr")
	if !ok {
		usr, _ = mountOptions(mounts, "/")
	}
	if state, _ := mountOptions(mounts, "/var/lib/ovpn3go"); !slices.Contains(usr, "ro") || !slices.Contains(state, "rw") {
		t.Errorf("helper %s: /usr mounted %v, /var/lib/ovpn3go %v; want ro, rw (ProtectSystem=strict, StateDirectory=)\n%s", helper, usr, state, mounts)
	}

	// DevicePolicy=closed with DeviceAllow=/dev/net/tun: a device node the
	// container may open (kmsg, 1:11) is refused to a process in the
	// unit's cgroup, the TUN clone device is not.
	cgroup := ""
	for line := range strings.Lines(sys.must("cat", "/proc/"+helper+"/cgroup")) {
		if p, ok := strings.CutPrefix(strings.TrimSpace(line), "0::"); ok {
			cgroup = "/sys/fs/cgroup" + p
		}
	}
	sys.must("mknod", "/dev/ovpn3go-test-kmsg", "c", "1", "11")
	if out, err := sys.run("sh", "-c", "exec 3</dev/ovpn3go-test-kmsg"); err != nil {
		t.Fatalf("the container itself cannot open 1:11: %v\n%s", err, out)
	}
	if out, err := sys.run("sh", "-c", `echo $$ >"$1/cgroup.procs" && exec 3</dev/ovpn3go-test-kmsg`, "sh", cgroup); err == nil {
		t.Errorf("a process in %s opened a device outside DeviceAllow (DevicePolicy=closed not applied)", cgroup)
	} else if !strings.Contains(out, "Operation not permitted") {
		t.Errorf("opening a device outside DeviceAllow from %s: %v\n%s; want EPERM from the device policy", cgroup, err, out)
	}
	if out, err := sys.run("sh", "-c", `echo $$ >"$1/cgroup.procs" && exec 3<>/dev/net/tun`, "sh", cgroup); err != nil {
		t.Errorf("a process in %s cannot open /dev/net/tun: %v\n%s", cgroup, err, out)
	}
	sys.must("rm", "/dev/ovpn3go-test-kmsg")

	// The session's backend (its PID as the container sees it) runs in the
	// unit's cgroup.
	path, backend := connect(t, &sys.shell, srv)
	if cg := sys.must("cat", "/proc/"+backend+"/cgroup"); !strings.Contains(cg, "/ovpn3-helper.service") {
		t.Errorf("backend %s is not in the unit's cgroup:\n%s", backend, cg)
	}
	refuseStranger(t, &sys.shell, path)

	// The unit stops cleanly (sessions end on SIGTERM).
	sys.must("systemctl", "stop", "ovpn3-helper.service")
	if out, _ := sys.run("systemctl", "is-failed", "ovpn3-helper.service"); strings.TrimSpace(out) == "failed" {
		journal, _ := sys.run("journalctl", "--no-pager", "-b", "-u", "ovpn3-helper.service")
		t.Errorf("ovpn3-helper.service failed on stop:\n%s", journal)
	}
}

// boundingSet is the CapBnd line a process under the unit has: the
// unit's CapabilityBoundingSet as a mask.
func boundingSet(t *testing.T) string {
	t.Helper()
	bits := map[string]uint{"CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8,
		"CAP_NET_BIND_SERVICE": 10, "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_SYS_ADMIN": 21}
	var mask uint64
	for _, c := range strings.Fields(iniFile(t, "systemd/ovpn3-helper.service")["Service"]["CapabilityBoundingSet"][0]) {
		bit, ok := bits[c]
		if !ok {
			t.Fatalf("boundingSet: add %s's bit number", c)
		}
		mask |= 1 << bit
	}
	return fmt.Sprintf("%016x", mask)
}

// mountOptions are the per-mount options of the mount on top at point in
// a /proc/<pid>/mountinfo text.
func mountOptions(mountinfo, point string) (opts []string, ok bool) {
	for line := range strings.Lines(mountinfo) {
		if f := strings.Fields(line); len(f) > 5 && f[4] == point {
			opts, ok = strings.Split(f[5], ","), true
		}
	}
	return opts, ok
}
