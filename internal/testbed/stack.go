package testbed

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// Binaries are the paths of the built ovpn3go programs. The daemon finds
// the backend in its own directory (BinariesIn).
type Binaries struct {
	Helper  string // ovpn3-helper
	Backend string // ovpn3-backend
	CLI     string // ovpn3
}

// BinariesIn are the programs in dir, as BuildBinaries and `make build`
// leave them.
func BinariesIn(dir string) Binaries {
	return Binaries{Helper: filepath.Join(dir, "ovpn3-helper"), Backend: filepath.Join(dir, "ovpn3-backend"), CLI: filepath.Join(dir, "ovpn3")}
}

// ModuleRoot returns the directory holding the project's go.mod, searched
// upwards from the working directory (tests run in their package dir).
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/ovpn3go/ovpn3go\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod of github.com/ovpn3go/ovpn3go not found above the working directory")
		}
		dir = parent
	}
}

// BuildBinaries builds ovpn3-helper, ovpn3-backend and ovpn3 into outDir
// with the go command on PATH, as the Makefile's build target does: all
// three without cgo.
func BuildBinaries(ctx context.Context, outDir string) (Binaries, error) {
	bin := BinariesIn(outDir)
	for _, b := range []struct{ out, pkg string }{
		{bin.Helper, "./helper/cmd/ovpn3-helper"}, {bin.Backend, "./helper/cmd/ovpn3-backend"}, {bin.CLI, "./app/cmd/ovpn3"},
	} {
		if err := BuildProgram(ctx, b.out, b.pkg, false); err != nil {
			return Binaries{}, err
		}
	}
	return bin, nil
}

// ServiceGOEXPERIMENT is the Go toolchain setting the daemon and the
// backend are built with, here as by the Makefile's build target
// (SERVICE_GOEXPERIMENT): Go 1.26's previous garbage collector instead of
// its default Green Tea collector, whose span-at-a-time marking pays off
// on large heaps over many cores. These processes have a heap of one or
// two MB and collect rarely; with the old collector a connected backend
// has 0.3 MB less resident memory (0.15 MB of its program's pages, the
// rest the collector's metadata; docs/bench/memory.md). Go 1.26 is the
// last release with this setting.
const ServiceGOEXPERIMENT = "nogreenteagc"

// ServiceProgram tells whether the main package pkg is the daemon or the
// backend: the long-lived programs built with ServiceGOEXPERIMENT.
func ServiceProgram(pkg string) bool {
	return pkg == "./helper/cmd/ovpn3-helper" || pkg == "./helper/cmd/ovpn3-backend"
}

// BuildProgram builds the main package pkg (relative to the module root)
// into out with the go command on PATH; extra go build arguments (e.g.
// -ldflags) come before the package.
func BuildProgram(ctx context.Context, out, pkg string, cgo bool, extra ...string) error {
	root, err := ModuleRoot()
	if err != nil {
		return err
	}
	args := append(append([]string{"build"}, extra...), "-o", out, pkg)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Env = os.Environ()
	if !cgo {
		cmd.Env = append(cmd.Env, "CGO_ENABLED=0")
	}
	if ServiceProgram(pkg) {
		cmd.Env = append(cmd.Env, "GOEXPERIMENT="+ServiceGOEXPERIMENT)
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return nil
}

// StackOptions say what StartStack brings up.
type StackOptions struct {
	Bin        Binaries
	Dir        string        // scratch directory (state dir, logs, profiles)
	Variant    Variant       // server variant; "" starts no server (a profile still works: nobody answers)
	Server     ServerOptions // PKI, extra lines
	HelperArgs []string      // extra ovpn3-helper arguments, e.g. --log-level 6
	// OwnProcessGroups starts the server, the bus, the helper and every
	// CLI run in process groups of their own (OwnProcessGroup), so a
	// terminal's Ctrl-C reaches only the program driving the stack (the
	// demo), which then stops them in order through Close.
	OwnProcessGroups bool
	// Polkitd runs polkitd on the stack's bus, as on a system: the
	// session manager then asks it, as it does there. The helper's
	// actions must be installed first (InstallPolkitActions).
	Polkitd bool
	// CLIUser, when not 0, is the UID (and GID) every CLI run has: an
	// unprivileged user's commands instead of root's. Files it reads
	// (a profile to import) must be readable by that user.
	CLIUser uint32
}

// Stack is the whole ovpn3go system under test: a namespace pair, the
// openvpn server in the server namespace, a private bus, and ovpn3-helper
// running in the client namespace (so its backends and TUN devices live
// there too).
type Stack struct {
	Dir     string
	Bin     Binaries
	Pair    *Pair
	PKI     *PKIFiles
	Server  *OpenVPNServer // nil when no variant was asked for
	Bus     *BusDaemon
	Polkitd *Process // StackOptions.Polkitd; nil without
	Helper  *Process
	Conn    *dbus.Conn // a client connection to the private bus (root)

	ownGroups bool   // StackOptions.OwnProcessGroups
	cliUser   uint32 // StackOptions.CLIUser

	// ResolvConf is the resolv.conf the helper rewrites when no
	// systemd-resolved runs: a file of the stack's (holding
	// StackResolvConf at start), never the host's /etc/resolv.conf.
	ResolvConf string

	busDir string // the bus socket's directory, removed by Close
}

// StackResolvConf is what Stack.ResolvConf holds before any VPN changes it.
const StackResolvConf = "# the test stack's resolv.conf\nnameserver 192.0.2.53\nsearch lan.example\n"

// StartStack brings the stack up and waits until the helper owns the
// configuration and session manager names. On error everything already
// started is torn down again.
func StartStack(ctx context.Context, opts StackOptions) (s *Stack, err error) {
	s = &Stack{Dir: opts.Dir, Bin: opts.Bin, ownGroups: opts.OwnProcessGroups, cliUser: opts.CLIUser}
	var prepare []func(*exec.Cmd)
	if opts.OwnProcessGroups {
		prepare = append(prepare, OwnProcessGroup)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.Close())
			s = nil
		}
	}()
	if s.Pair, err = NewNetPair(ctx); err != nil {
		return s, err
	}
	s.PKI = opts.Server.PKI
	if s.PKI == nil {
		if s.PKI, err = WritePKI(ctx, filepath.Join(s.Dir, "pki")); err != nil {
			return s, err
		}
	}
	if opts.Variant != "" {
		srvOpts := opts.Server
		srvOpts.PKI = s.PKI
		if opts.OwnProcessGroups {
			srvOpts.Prepare = chainPrepare(srvOpts.Prepare, OwnProcessGroup)
		}
		if err := os.MkdirAll(filepath.Join(s.Dir, "server"), 0o700); err != nil {
			return s, err
		}
		if s.Server, err = StartServer(ctx, s.Pair, opts.Variant, filepath.Join(s.Dir, "server"), srvOpts); err != nil {
			return s, err
		}
	}
	// The backends run as the backend user (StartBus creates it): it must
	// reach the bus socket.
	busDir, err := PublicDir("ovpnbus")
	if err != nil {
		return s, err
	}
	s.busDir = busDir
	if s.Bus, err = StartBus(ctx, busDir, prepare...); err != nil {
		return s, err
	}
	if opts.Polkitd {
		if s.Polkitd, err = StartPolkitd(ctx, s.Bus.Address, filepath.Join(s.Dir, "polkitd.log")); err != nil {
			return s, err
		}
	}
	stateDir := filepath.Join(s.Dir, "state")
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return s, err
	}
	s.ResolvConf = filepath.Join(s.Dir, "resolv.conf")
	if err := os.WriteFile(s.ResolvConf, []byte(StackResolvConf), 0o644); err != nil {
		return s, err
	}
	args := append([]string{"--state-dir", stateDir, "--resolv-conf", s.ResolvConf}, opts.HelperArgs...)
	cmd := Command(context.Background(), s.Pair.ClientNS, s.Bin.Helper, args...)
	cmd.Env = s.Env()
	for _, f := range prepare {
		f(cmd)
	}
	if s.Helper, err = StartProcess("ovpn3-helper", filepath.Join(s.Dir, "helper.log"), cmd); err != nil {
		return s, err
	}
	if s.Conn, err = dbus.Connect(s.Bus.Address); err != nil {
		return s, fmt.Errorf("connect to the private bus: %w", err)
	}
	if err := s.waitForNames(ctx, 30*time.Second, api.ServiceConfiguration, api.ServiceSessions); err != nil {
		return s, err
	}
	return s, nil
}

// chainPrepare runs first (if set), then second.
func chainPrepare(first, second func(*exec.Cmd)) func(*exec.Cmd) {
	if first == nil {
		return second
	}
	return func(cmd *exec.Cmd) { first(cmd); second(cmd) }
}

func (s *Stack) waitForNames(ctx context.Context, timeout time.Duration, names ...string) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for _, name := range names {
		for {
			var has bool
			if err := s.Conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.NameHasOwner", 0, name).Store(&has); err != nil && ctx.Err() == nil {
				return fmt.Errorf("NameHasOwner %s: %w", name, err)
			}
			if has {
				break
			}
			select {
			case <-s.Helper.Done():
				return fmt.Errorf("ovpn3-helper exited (%v) before owning %s; log tail:\n%s", s.Helper.ExitErr(), name, s.Helper.LogTail(30))
			case <-ctx.Done():
				return fmt.Errorf("ovpn3-helper did not own %s within %v; log tail:\n%s", name, timeout, s.Helper.LogTail(30))
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return nil
}

// Env is the environment for programs that talk to the stack's bus.
func (s *Stack) Env() []string {
	return append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+s.Bus.Address)
}

// CLI runs the ovpn3 command against the stack's bus and returns its
// combined output; the error includes that output.
func (s *Stack) CLI(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, s.Bin.CLI, args...)
	cmd.Env = s.Env()
	cmd.WaitDelay = 5 * time.Second
	if s.ownGroups {
		OwnProcessGroup(cmd)
	}
	if s.cliUser != 0 {
		if cmd.SysProcAttr == nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{}
		}
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: s.cliUser, Gid: s.cliUser, Groups: []uint32{}}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ovpn3 %s: %w\n%s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// WriteProfile writes the client profile of variant v into the stack's
// directory and returns its path.
// When the stack's server runs variant v, the profile matches the server's
// options (its transport).
func (s *Stack) WriteProfile(v Variant) (string, error) {
	var text string
	var err error
	if s.Server != nil && s.Server.Variant == v {
		text = s.Server.Profile()
	} else if text, err = s.PKI.Profile(v); err != nil {
		return "", err
	}
	path := filepath.Join(s.Dir, string(v)+"-"+v.Name()+".ovpn")
	return path, os.WriteFile(path, []byte(text), 0o600)
}

// SessionByConfig returns the one session started from the profile named
// name (net.openvpn.v3.sessions.LookupConfigName).
func (s *Stack) SessionByConfig(ctx context.Context, name string) (dbus.ObjectPath, error) {
	var paths []dbus.ObjectPath
	err := s.Conn.Object(api.ServiceSessions, api.PathSessions).
		CallWithContext(ctx, api.InterfaceSessions+".LookupConfigName", 0, name).Store(&paths)
	if err != nil {
		return "", fmt.Errorf("LookupConfigName %q: %w", name, err)
	}
	if len(paths) != 1 {
		return "", fmt.Errorf("LookupConfigName %q: %d sessions %v, want 1", name, len(paths), paths)
	}
	return paths[0], nil
}

// SessionProperty reads one property of a session object.
func (s *Stack) SessionProperty(ctx context.Context, path dbus.ObjectPath, name string) (dbus.Variant, error) {
	var v dbus.Variant
	err := s.Conn.Object(api.ServiceSessions, path).
		CallWithContext(ctx, api.InterfaceProperties+".Get", 0, api.InterfaceSessions, name).Store(&v)
	if err != nil {
		return v, fmt.Errorf("%s property %s: %w", path, name, err)
	}
	return v, nil
}

// Statistics reads a session's statistics property (a{sx}).
func (s *Stack) Statistics(ctx context.Context, path dbus.ObjectPath) (map[string]int64, error) {
	v, err := s.SessionProperty(ctx, path, "statistics")
	if err != nil {
		return nil, err
	}
	stats, ok := v.Value().(map[string]int64)
	if !ok {
		return nil, fmt.Errorf("%s statistics has type %s, want a{sx}", path, v.Signature())
	}
	return stats, nil
}

// Close stops the helper (SIGTERM, so it can tear its sessions down), the
// server and the bus, then deletes the namespaces. Processes the helper
// left inside the client namespace (orphaned backends) are killed and
// reported as an error: the namespace is ours, so everything in it is.
func (s *Stack) Close() error {
	var errs []error
	if s.Conn != nil {
		s.Conn.Close()
	}
	if s.Helper != nil {
		if err := s.Helper.Stop(10 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	if s.Pair != nil {
		if pids := nsPIDs(s.Pair.ClientNS); len(pids) > 0 {
			for _, pid := range pids {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			errs = append(errs, fmt.Errorf("processes left in %s after the helper stopped (killed): %v", s.Pair.ClientNS, pids))
		}
	}
	if s.Server != nil {
		if err := s.Server.Stop(5 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	if s.Polkitd != nil {
		if err := s.Polkitd.Stop(5 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	if s.Bus != nil {
		if err := s.Bus.Stop(5 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	if s.busDir != "" {
		if err := os.RemoveAll(s.busDir); err != nil {
			errs = append(errs, err)
		}
	}
	if s.Pair != nil {
		if err := s.Pair.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// nsPIDs lists the processes in network namespace ns, never this one: a
// goroutine inside InNamespace may have moved the main thread there.
func nsPIDs(ns string) []int {
	out, err := exec.Command("ip", "netns", "pids", ns).Output()
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
			pids = append(pids, pid)
		}
	}
	return pids
}

// NewStack is StartStack for tests: it builds nothing (pass the binaries),
// uses a fresh temp dir, and tears the stack down in t.Cleanup. The helper
// log is attached to the test output when the test fails.
func NewStack(t testing.TB, bin Binaries, v Variant, opts ...func(*StackOptions)) *Stack {
	t.Helper()
	testenv.RequireRoot(t)
	for _, c := range []string{"ip", "openvpn", "dbus-daemon"} {
		testenv.RequireCommand(t, c)
	}
	o := StackOptions{Bin: bin, Dir: t.TempDir(), Variant: v}
	for _, f := range opts {
		f(&o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	s, err := StartStack(ctx, o)
	if err != nil {
		t.Fatalf("start stack: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("ovpn3-helper log tail:\n%s", s.Helper.LogTail(60))
			if s.Server != nil {
				t.Logf("openvpn server log tail:\n%s", s.Server.LogTail(20))
			}
		}
		if err := s.Close(); err != nil {
			t.Errorf("stack cleanup: %v", err)
		}
	})
	return s
}

// CPUProfileTag is the build tag of ovpn3-backend's profiling build: only
// it links runtime/pprof and honours the daemon's --backend-cpuprofile.
const CPUProfileTag = "cpuprofile"

// BuildProfilingBackend builds ovpn3-backend with its CPU profiler
// (CPUProfileTag) into out, for make bench's profile run; every other run
// uses the production build of BuildBinaries.
func BuildProfilingBackend(ctx context.Context, out string) error {
	return BuildProgram(ctx, out, "./helper/cmd/ovpn3-backend", false, "-tags", CPUProfileTag)
}
