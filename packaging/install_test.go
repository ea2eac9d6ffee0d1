package packaging

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/internal/testbed"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// The clean Debian root the packages install into: debootstrap's minbase
// plus what the packages depend on (dbus, polkitd with logind, systemd for
// sysusers, the tray's GL/X11 libraries), so installing needs no network.
// It is built once and cached (a fresh machine builds it: several minutes);
// every test run installs into a copy, never into the cache.
const (
	rootCache   = "/var/cache/ovpn3go/deb-root-bookworm-1"
	rootInclude = "dbus,polkitd,libpam-systemd,systemd,libgl1,libx11-6,libxcursor1,libxrandr2,libxinerama1,libxi6,libxxf86vm1"
	rootMirror  = "http://deb.debian.org/debian"
)

// debs finds the packages `make deb` built (OVPN3GO_DEB_DIR, set by the
// Makefile's unit target).
func debs(t *testing.T) (helper, tray string) {
	t.Helper()
	dir := os.Getenv("OVPN3GO_DEB_DIR")
	if dir == "" {
		if testenv.InCI() {
			t.Fatal("OVPN3GO_DEB_DIR is not set: run through `make test` (its deb target builds the packages)")
		}
		t.Skip("OVPN3GO_DEB_DIR not set: run `make deb` and set it to its directory")
	}
	find := func(pkg string) string {
		m, _ := filepath.Glob(filepath.Join(dir, pkg+"_*.deb"))
		if len(m) != 1 {
			t.Fatalf("%s: want one %s_*.deb, found %v", dir, pkg, m)
		}
		return m[0]
	}
	return find("ovpn3go"), find("ovpn3go-tray")
}

// baseRoot returns the cached root, building it under a lock when missing.
func baseRoot(t *testing.T) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(rootCache), 0o755); err != nil {
		t.Fatal(err)
	}
	lock, err := os.OpenFile(rootCache+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(rootCache, "usr/bin/dbus-daemon")); err == nil {
		return rootCache
	}
	testenv.RequireCommand(t, "debootstrap")
	tmp := rootCache + ".tmp"
	os.RemoveAll(tmp)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "debootstrap", "--variant=minbase", "--include="+rootInclude,
		"bookworm", tmp, rootMirror).CombinedOutput()
	if err != nil {
		os.RemoveAll(tmp)
		t.Fatalf("debootstrap: %v\n%s", err, tail(out))
	}
	// the downloaded packages only make every copy slower
	archives, _ := filepath.Glob(filepath.Join(tmp, "var/cache/apt/archives/*.deb"))
	for _, a := range archives {
		os.Remove(a)
	}
	if err := os.Rename(tmp, rootCache); err != nil {
		t.Fatal(err)
	}
	return rootCache
}

func tail(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-30):], "\n")
}

// system is a copy of the base root with its own mount namespace (proc,
// sys, dev, a tmpfs /run and /tmp) inside the client namespace of a test
// bed pair, kept alive by an anchor process that commands enter.
type system struct {
	shell
	anchor *exec.Cmd
}

// shell runs commands inside an installed root: a chroot (system) or a
// booted container (booted).
type shell struct {
	t   *testing.T
	dir string // the root, as the host sees it
	// command runs args inside, as root unless wrapped in runuser.
	command func(ctx context.Context, args ...string) *exec.Cmd
}

func newSystem(t *testing.T, ns string) *system {
	t.Helper()
	base := baseRoot(t)
	dir := filepath.Join(t.TempDir(), "root")
	if out, err := exec.Command("cp", "-a", base, dir).CombinedOutput(); err != nil {
		t.Fatalf("copy root: %v\n%s", err, out)
	}
	s := &system{}
	s.shell = shell{t: t, dir: dir, command: s.enter}
	script := `set -e
r=$1
mount -t proc proc "$r/proc"
mount -t sysfs sysfs "$r/sys"
mount --rbind /dev "$r/dev"
mount -t tmpfs tmpfs "$r/run"
mount -t tmpfs tmpfs "$r/tmp"
mkdir -p "$r/run/dbus"
exec chroot "$r" sleep infinity`
	s.anchor = exec.Command("ip", "netns", "exec", ns, "unshare", "--mount", "--propagation", "private",
		"--", "sh", "-c", script, "sh", dir)
	s.anchor.Stderr = os.Stderr
	if err := s.anchor.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.close)
	// ready once the anchor runs sleep inside the root
	deadline := time.Now().Add(20 * time.Second)
	for {
		if link, _ := os.Readlink(fmt.Sprintf("/proc/%d/root", s.anchor.Process.Pid)); link == dir {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the root's anchor process did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return s
}

// pids lists the processes whose root is this system.
func (s *system) pids() []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if link, _ := os.Readlink(fmt.Sprintf("/proc/%d/root", pid)); link == s.dir {
			out = append(out, pid)
		}
	}
	return out
}

// close kills everything running in the root (the mount namespace goes
// with its last process), then the copy is removed by t.TempDir.
func (s *system) close() {
	for range 50 {
		pids := s.pids()
		if len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.anchor.Process.Kill()
	s.anchor.Wait()
}

// enter runs args inside the system's namespaces and root.
func (s *system) enter(ctx context.Context, args ...string) *exec.Cmd {
	pid := strconv.Itoa(s.anchor.Process.Pid)
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"-t", pid, "-m", "-n", "-r", "-w", "--",
		"env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"}, args...)...)
	return cmd
}

func (s *shell) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := s.command(ctx, args...).CombinedOutput()
	return string(out), err
}

func (s *shell) must(args ...string) string {
	s.t.Helper()
	out, err := s.run(args...)
	if err != nil {
		s.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (s *shell) as(user string, args ...string) (string, error) {
	return s.run(append([]string{"runuser", "-u", user, "--", "env", "HOME=/home/" + user}, args...)...)
}

// tree lists the files of the root (paths relative to it), without the
// mount points' contents.
func (s *system) tree() map[string]bool {
	s.t.Helper()
	out := map[string]bool{}
	err := filepath.WalkDir(s.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := "/" + strings.TrimPrefix(strings.TrimPrefix(path, s.dir), "/")
		switch rel {
		case "/proc", "/sys", "/dev", "/run", "/tmp":
			return filepath.SkipDir
		}
		out[rel] = true
		return nil
	})
	if err != nil {
		s.t.Fatal(err)
	}
	return out
}

// status reads /proc/<pid>/status inside the root (pid as the root's
// PID namespace sees it), split into its fields.
func (s *shell) status(pid string) map[string]string {
	s.t.Helper()
	out := map[string]string{}
	for line := range strings.Lines(s.must("cat", "/proc/"+pid+"/status")) {
		if k, v, ok := strings.Cut(line, ":"); ok {
			out[k] = strings.Join(strings.Fields(v), " ")
		}
	}
	return out
}

// addUsers creates two ordinary users, tester and stranger. No one is in
// an active local session here: a rule (test-only, not shipped) grants
// tester what the shipped allow_active grants a desktop user.
func addUsers(t *testing.T, sh *shell) {
	t.Helper()
	sh.must("useradd", "-m", "tester")
	sh.must("useradd", "-m", "stranger")
	rule := `polkit.addRule(function(action, subject) {
	if (action.id == "net.ovpn3go.session.control-own" && subject.user == "tester") return polkit.Result.YES;
});
`
	if err := os.WriteFile(filepath.Join(sh.dir, "etc/polkit-1/rules.d/50-ovpn3go-test.rules"), []byte(rule), 0o644); err != nil {
		t.Fatal(err)
	}
}

// connect imports the test bed server's profile as tester and connects a
// session without a password prompt. The session's backend must run as
// _ovpn3go throughout, with no capabilities and no_new_privs. It returns
// the session's path and the backend's PID (as the root sees it).
func connect(t *testing.T, sh *shell, srv *testbed.OpenVPNServer) (path, backend string) {
	t.Helper()
	profile := filepath.Join(sh.dir, "home/tester/vpn.ovpn")
	if err := os.WriteFile(profile, []byte(srv.Profile()), 0o600); err != nil {
		t.Fatal(err)
	}
	sh.must("chown", "tester:tester", "/home/tester/vpn.ovpn")
	if out, err := sh.as("tester", "ovpn3", "config-import", "--config", "/home/tester/vpn.ovpn", "--name", "pk"); err != nil {
		t.Fatalf("config-import: %v\n%s", err, out)
	}
	out, err := sh.as("tester", "ovpn3", "session-start", "--config", "pk")
	if err != nil || !strings.Contains(out, "Connected") {
		t.Fatalf("session-start as tester: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Session path: (\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no session path in:\n%s", out)
	}
	list, _ := sh.as("tester", "ovpn3", "sessions-list")
	pm := regexp.MustCompile(`PID: (\d+)`).FindStringSubmatch(list)
	if pm == nil {
		t.Fatalf("no backend PID in sessions-list:\n%s", list)
	}
	backend = pm[1]
	uid := strings.TrimSpace(sh.must("id", "-u", "_ovpn3go"))
	st := sh.status(backend)
	if u := strings.Fields(st["Uid"]); len(u) != 4 || slices.ContainsFunc(u, func(s string) bool { return s != uid }) {
		t.Errorf("backend %s runs with Uid %s, want _ovpn3go (%s) throughout", backend, st["Uid"], uid)
	}
	for _, c := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"} {
		if st[c] != "0000000000000000" {
			t.Errorf("backend %s: %s %s", backend, c, st[c])
		}
	}
	if st["NoNewPrivs"] != "1" {
		t.Errorf("backend %s: NoNewPrivs %s", backend, st["NoNewPrivs"])
	}
	return m[1], backend
}

// refuseStranger: the stranger neither sees nor controls tester's
// session (disconnecting someone else's is auth_admin,
// session.control-other, and nobody can answer a password prompt here);
// then tester disconnects it.
func refuseStranger(t *testing.T, sh *shell, path string) {
	t.Helper()
	if out, _ := sh.as("stranger", "ovpn3", "sessions-list"); strings.Contains(out, path) {
		t.Errorf("stranger sees tester's session:\n%s", out)
	}
	if out, err := sh.as("stranger", "ovpn3", "session-manage", "--path", path, "--disconnect"); err == nil {
		t.Errorf("stranger disconnected tester's session:\n%s", out)
	} else {
		t.Logf("stranger refused: %s", strings.TrimSpace(out))
	}
	if out, err := sh.as("tester", "ovpn3", "session-manage", "--path", path, "--disconnect"); err != nil {
		t.Errorf("tester's disconnect: %v\n%s", err, out)
	}
}

// TestInstallDeb installs the built packages into a clean Debian root and
// uses them as a user would: D-Bus activation of the helper by the shipped
// activation files and policy, a profile imported and a session connected
// to the test bed's server by an ordinary user without a password, a
// stranger refused, the backend without root or capabilities; then purge
// leaves the root as it was.
//
// No systemd runs in this root (as on a system without systemd), so
// dbus-daemon starts the helper through its launch helper (Exec=,
// User=root); TestInstalledUnderSystemd boots systemd and goes through the
// hardened unit.
func TestInstallDeb(t *testing.T) {
	testenv.RequireRoot(t)
	helperDeb, trayDeb := debs(t)
	for _, c := range []string{"nsenter", "unshare", "ip", "openvpn"} {
		testenv.RequireCommand(t, c)
	}
	pair := testbed.NetPair(t)
	srv := testbed.Server(t, pair, testbed.VariantA)
	sys := newSystem(t, pair.ClientNS)

	before := sys.tree()
	for _, deb := range []string{helperDeb, trayDeb} {
		b, err := os.ReadFile(deb)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(sys.dir, "root", filepath.Base(deb)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sys.must("dpkg", "-i", "/root/"+filepath.Base(helperDeb), "/root/"+filepath.Base(trayDeb))
	if out := sys.must("getent", "passwd", "_ovpn3go"); !strings.Contains(out, "/usr/sbin/nologin") {
		t.Errorf("backend user: %s", out)
	}
	for _, p := range []string{
		"/usr/share/dbus-1/system.d/net.openvpn.v3.conf",
		"/usr/share/dbus-1/system-services/net.openvpn.v3.sessions.service",
		"/usr/lib/systemd/system/ovpn3-helper.service",
		"/usr/libexec/ovpn3go/ovpn3-backend",
		"/usr/share/polkit-1/actions/net.ovpn3go.policy",
		"/usr/share/applications/net.ovpn3go.tray.desktop",
		"/usr/share/icons/hicolor/48x48/apps/net.ovpn3go.tray.png",
	} {
		if _, err := os.Stat(filepath.Join(sys.dir, p)); err != nil {
			t.Errorf("not installed: %v", err)
		}
	}

	confineActivation(t, sys)
	addUsers(t, &sys.shell)

	busCtx, stopBus := context.WithCancel(context.Background())
	sys.must("dbus-uuidgen", "--ensure")
	bus := sys.command(busCtx, "dbus-daemon", "--system", "--nofork", "--nopidfile", "--nosyslog")
	var busLog syncBuffer
	bus.Stdout, bus.Stderr = &busLog, &busLog
	if err := bus.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopBus(); bus.Wait() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := sys.run("test", "-S", "/run/dbus/system_bus_socket"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("system bus did not start:\n%s", busLog.String())
		}
		time.Sleep(100 * time.Millisecond)
	}

	// D-Bus activation by an ordinary user's first call.
	if out, err := sys.as("tester", "ovpn3", "configs-list"); err != nil {
		t.Fatalf("configs-list as tester: %v\n%s\nbus: %s", err, out, busLog.String())
	}
	// The CLI's own version and every service's version property carry
	// the Makefile's VERSION (internal/version.Service's spelling: every
	// character outside \w becomes "_").
	out := sys.must("ovpn3", "version", "--services")
	v := makeVersion(t)
	service := "_ovpn3go_" + regexp.MustCompile(`\W`).ReplaceAllString(v, "_")
	if !strings.Contains(out, "ovpn3 (ovpn3go) "+v+"\n") || strings.Count(out, service) < len(activatable) {
		t.Errorf("ovpn3 version --services: want %s and %d services with %s in\n%s", v, len(activatable), service, out)
	}

	path, _ := connect(t, &sys.shell, srv)
	helperConfined(t, sys)
	refuseStranger(t, &sys.shell, path)

	stopBus()
	bus.Wait()
	sys.close()
	sys = newSystemOn(t, sys, pair.ClientNS)

	sys.must("dpkg", "--purge", "ovpn3go-tray", "ovpn3go")
	if out, err := sys.run("getent", "passwd", "_ovpn3go"); err == nil {
		t.Errorf("purge left the backend user: %s", out)
	}
	if out, err := sys.run("getent", "group", "_ovpn3go"); err == nil {
		t.Errorf("purge left the backend group: %s", out)
	}
	after := sys.tree()
	for f := range after {
		if !before[f] && !expectedLeftover(f) {
			t.Errorf("purge left %s", f)
		}
	}
}

// newSystemOn starts a fresh anchor on the same root copy (the previous
// one was stopped with everything that ran in it).
func newSystemOn(t *testing.T, old *system, ns string) *system {
	t.Helper()
	s := &system{}
	s.shell = shell{t: t, dir: old.dir, command: s.enter}
	script := `set -e
r=$1
mount -t proc proc "$r/proc"
mount --rbind /dev "$r/dev"
mount -t tmpfs tmpfs "$r/run"
mount -t tmpfs tmpfs "$r/tmp"
exec chroot "$r" sleep infinity`
	s.anchor = exec.Command("ip", "netns", "exec", ns, "unshare", "--mount", "--propagation", "private",
		"--", "sh", "-c", script, "sh", s.dir)
	if err := s.anchor.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.close)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if link, _ := os.Readlink(fmt.Sprintf("/proc/%d/root", s.anchor.Process.Pid)); link == s.dir {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatal("the root's anchor process did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// expectedLeftover: what the test itself added (users, the polkit rule,
// the copied packages) and dpkg's and the system's own bookkeeping.
func expectedLeftover(f string) bool {
	for _, p := range []string{"/home", "/root/", "/var/lib/dpkg/", "/var/log/", "/var/cache/", "/var/mail", "/var/spool/mail",
		"/etc/polkit-1/rules.d/50-ovpn3go-test.rules", "/var/lib/dbus/", "/etc/machine-id", "/var/lib/polkit-1/"} {
		if strings.HasPrefix(f, p) {
			return true
		}
	}
	switch strings.TrimSuffix(f, "-") {
	case "/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow", "/etc/subuid", "/etc/subgid":
		return true
	}
	return false
}

// confineActivation makes dbus-daemon start the helper as systemd would
// under the shipped unit, as far as this root allows: the activation files
// stay the shipped ones except that Exec runs the same command line under
// the unit's CapabilityBoundingSet with no_new_privs (setpriv). The rest of
// the unit's sandbox (ProtectSystem, the system call filter, …) needs
// systemd and is not applied here.
func confineActivation(t *testing.T, sys *system) {
	t.Helper()
	unit := iniFile(t, "systemd/ovpn3-helper.service")["Service"]
	var caps []string
	for _, c := range strings.Fields(unit["CapabilityBoundingSet"][0]) {
		caps = append(caps, "+"+strings.ToLower(strings.TrimPrefix(c, "CAP_")))
	}
	if unit["NoNewPrivileges"][0] != "yes" {
		t.Fatal("the unit no longer sets NoNewPrivileges; adjust confineActivation")
	}
	wrap := "Exec=/usr/bin/setpriv --bounding-set=-all," + strings.Join(caps, ",") + " --inh-caps=-all --no-new-privs "
	for _, name := range activatable {
		path := filepath.Join(sys.dir, "usr/share/dbus-1/system-services", name+".service")
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		text := strings.Replace(string(b), "Exec="+helperExec, wrap+helperExec, 1)
		if text == string(b) {
			t.Fatalf("%s: no Exec=%s", path, helperExec)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// helperConfined checks the running daemon has the unit's bounding set and
// no_new_privs (so confineActivation took effect).
func helperConfined(t *testing.T, sys *system) {
	t.Helper()
	for _, pid := range sys.pids() {
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if !bytes.HasPrefix(cmd, []byte("/usr/libexec/ovpn3go/ovpn3-helper\x00--state-dir")) {
			continue
		}
		st := sys.status(strconv.Itoa(pid))
		want := boundingSet(t)
		if st["CapBnd"] != want || st["NoNewPrivs"] != "1" || !strings.HasPrefix(st["Uid"], "0 ") {
			t.Errorf("helper %d: Uid %s CapBnd %s NoNewPrivs %s, want root, %s, 1", pid, st["Uid"], st["CapBnd"], st["NoNewPrivs"], want)
		}
		return
	}
	t.Error("no ovpn3-helper daemon runs in the root")
}

// syncBuffer is the bus's output: written by exec's copying goroutine,
// read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
