// Command ovpn3-helper is the privileged side of ovpn3go. Without arguments
// it is the daemon: it connects to the system bus (DBUS_SYSTEM_BUS_ADDRESS
// is honoured) and serves net.openvpn.v3.configuration, .sessions, .netcfg
// and .log. "ovpn3-helper backend <token>" is the per-session backend
// process the daemon starts by re-executing itself.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/backend"
	"github.com/ovpn3go/ovpn3go/helper/busobj"
	"github.com/ovpn3go/ovpn3go/helper/configmgr"
	"github.com/ovpn3go/ovpn3go/helper/logsvc"
	"github.com/ovpn3go/ovpn3go/helper/netcfg"
	"github.com/ovpn3go/ovpn3go/helper/netcfg/dns"
	"github.com/ovpn3go/ovpn3go/helper/polkit"
	"github.com/ovpn3go/ovpn3go/helper/privsep"
	"github.com/ovpn3go/ovpn3go/helper/sessionmgr"
	"github.com/ovpn3go/ovpn3go/internal/version"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "backend" {
		os.Exit(backendMain())
	}
	os.Exit(runDaemon(os.Args[1:], os.Stderr))
}

// slogLevel maps the openvpn3 log levels (0..6) to slog levels.
func slogLevel(n int) slog.Level {
	switch {
	case n >= 5:
		return slog.LevelDebug
	case n >= 3:
		return slog.LevelInfo
	case n == 2:
		return slog.LevelWarn
	default:
		return slog.LevelError
	}
}

func parseLogLevel(fs *flag.FlagSet) *int {
	return fs.Int("log-level", 3, "log verbosity 0..6 (openvpn3 levels)")
}

func runDaemon(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("ovpn3-helper", flag.ContinueOnError)
	fs.SetOutput(stderr)
	stateDir := fs.String("state-dir", configmgr.DefaultStateDir, "directory for persistent profiles")
	backendUser := fs.String("backend-user", BackendUser, "unprivileged system user the per-session backends run as")
	logLevel := parseLogLevel(fs)
	var dnsOpts dnsFlags
	fs.StringVar(&dnsOpts.resolvConf, "resolv-conf", dns.DefaultResolvConf, "resolv.conf file to rewrite when systemd-resolved does not run")
	fs.StringVar(&dnsOpts.resolvedBus, "resolved-bus", "", "D-Bus address where systemd-resolved runs (default: the system bus)")
	// Only the administrator who starts the daemon can ask for profiles:
	// nothing a D-Bus caller sends reaches the backends' command line.
	cpuProfileDir := fs.String("backend-cpuprofile", "", "directory (writable by the backend user) where each backend writes a CPU profile, backend-<PID>.pprof, for its whole life (make bench); off by default")
	lim := limitFlags(fs)
	stats := statsFlag(fs)
	spare := fs.Bool("spare-backend", true, "keep one backend started ahead of the next session (unprivileged, waiting for a session; one session each): the next connect skips the process start")
	configFile := fs.String("config", DefaultConfigFile, "configuration file with the limits (key = value lines, as the --max-… flags; flags win)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: ovpn3-helper [--state-dir DIR] [--log-level N] [--backend-user NAME] [--resolv-conf FILE] [--resolved-bus ADDRESS] [--backend-cpuprofile DIR] [--runtime-stats DURATION] [--spare-backend=false] [--config FILE] [--max-profiles-per-user N] [--max-profile-bytes-per-user N] [--max-sessions-per-user N] [--session-usable-within DURATION] [--import-rate R] [--new-tunnel-rate R] [--calls-per-sender N] [--queued-calls-per-sender N] [--signals-per-sender N]\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 || *logLevel < 0 || *logLevel > api.MaxLogLevel {
		fs.Usage()
		return 2
	}
	if err := loadConfig(fs, *configFile, configFileGiven(fs)); err != nil {
		fmt.Fprintln(stderr, "ovpn3-helper:", err)
		return 2
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slogLevel(*logLevel)}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	user, err := privsep.LookupUser(*backendUser)
	if err != nil {
		logger.Error("ovpn3-helper: the backends' system user is missing (the package creates it with sysusers.d)", "err", err)
		return 1
	}
	bargs := backendArgs(*logLevel, *cpuProfileDir)
	if *stats > 0 {
		bargs = append(bargs, "--runtime-stats", stats.String())
		go logRuntimeStats(ctx, logger, *stats)
	}
	if err := serve(ctx, *stateDir, bargs, *spare, dnsOpts, *lim, user, logger); err != nil {
		logger.Error("ovpn3-helper", "err", err)
		return 1
	}
	return 0
}

// backendArgs is every backend's command line: fixed when the daemon
// starts, so no D-Bus call changes it (profiling stays off unless the
// daemon was started with --backend-cpuprofile).
func backendArgs(logLevel int, cpuProfileDir string) []string {
	args := []string{"backend", "--log-level", strconv.Itoa(logLevel), "--token-fd", strconv.Itoa(sessionmgr.TokenFD),
		"--daemon-version", version.Version}
	if cpuProfileDir != "" {
		args = append(args, "--cpuprofile-dir", cpuProfileDir)
	}
	return args
}

// serve runs the daemon until ctx ends, then disconnects every session.
func serve(ctx context.Context, stateDir string, backendArgs []string, spare bool, dnsOpts dnsFlags, lim limits, backendUser privsep.User, logger *slog.Logger) error {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	srv, err := busobj.ConnectWithLimits(ctx, "", logger, lim.bus)
	if err != nil {
		return err
	}
	defer srv.Close()

	configs := configmgr.New(stateDir, logger.With("service", "configmgr"))
	configs.SetLimits(lim.profiles)
	if err := configs.Export(srv); err != nil {
		return fmt.Errorf("configuration manager: %w", err)
	}
	logs := logsvc.New(logger.With("service", "log"))
	if err := logs.Export(srv); err != nil {
		return fmt.Errorf("log service: %w", err)
	}
	nc := netcfg.NewService(logger.With("service", "netcfg"))
	// Export undoes what a crashed earlier run left in the journal.
	if err := nc.SetStateDir(stateDir); err != nil {
		return err
	}
	resolver, err := newDNS(ctx, srv.Conn(), stateDir, dnsOpts, logger.With("service", "netcfg"))
	if err != nil {
		return err
	}
	nc.SetDNS(resolver)
	if err := nc.Export(srv); err != nil {
		return fmt.Errorf("netcfg: %w", err)
	}
	defer nc.Close()
	defer logs.Close()
	launcher := &sessionmgr.ExecLauncher{
		// The running binary itself, never its path: a package
		// upgrade replaces the file under a running daemon, and a
		// backend started from the path would be the new release
		// talking to this one.
		Path:   "/proc/self/exe",
		Args:   backendArgs,
		User:   &backendUser,
		Logger: logger.With("service", "backend"),
		Spare:  spare,
	}
	sessions, err := sessionmgr.New(sessionmgr.Options{
		Conn:       srv.Conn(),
		Logger:     logger.With("service", "sessionmgr"),
		Profiles:   profiles{configs},
		Launcher:   launcher,
		CleanupPID: nc.CleanupPID,
		Logs:       logs,
		Polkit:     polkit.New(srv.Conn()),

		MaxSessionsPerUser: lim.sessions,
		UsableWithin:       lim.usableWithin,
		NewTunnelRate:      lim.newTunnelRate,
	})
	if err != nil {
		return err
	}
	if err := sessions.Export(srv); err != nil {
		return err
	}
	// Who the backends are, for the other services' access checks.
	configs.SetBackends(sessions.BackendOf)
	nc.SetBackends(sessions.BackendCaller)
	logs.SetBackends(sessions.BackendCaller)
	for _, name := range []string{api.ServiceLog, api.ServiceNetCfg, api.ServiceConfiguration, api.ServiceSessions} {
		if err := srv.RequestName(name); err != nil {
			closeSessions(sessions, logger)
			return err
		}
	}
	// The spare looks the services up: started once they own their names
	// (sessions.Close ends it).
	launcher.StartSpare()
	logger.Info("ovpn3-helper ready", "pid", os.Getpid(), "state_dir", stateDir)
	settleMemory()
	select {
	case <-ctx.Done():
		logger.Info("shutting down: disconnecting all sessions")
	case <-srv.Conn().Context().Done():
		logger.Error("bus connection lost; disconnecting all sessions")
	}
	closeSessions(sessions, logger)
	return nil
}

func closeSessions(sessions *sessionmgr.Manager, logger *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := sessions.Close(ctx); err != nil {
		logger.Error("close sessions", "err", err)
	}
}

// profiles lets the session manager ask the configuration manager whether
// a caller may start a session from a profile.
type profiles struct{ cm *configmgr.Service }

func (p profiles) UseProfile(path dbus.ObjectPath, uid uint32) (sessionmgr.ProfileInfo, error) {
	info, ok := p.cm.Lookup(path)
	if !ok || !info.CanUse(uid) {
		return sessionmgr.ProfileInfo{}, api.Error(api.DomainGDBusPP, "Access to the configuration profile is denied.")
	}
	restart, _ := info.Overrides["automatic-restart"].(string)
	return sessionmgr.ProfileInfo{Name: info.Name, Owner: info.Owner, TransferOwnerSession: info.TransferOwnerSession,
		AutoRestart: restart == "on-failure"}, nil
}

// backendMain is the backend process: started as root by the daemon, it
// drops to the backend user and every privilege before anything else runs.
func backendMain() int {
	if err := privsep.Enter(); err != nil {
		fmt.Fprintln(os.Stderr, "ovpn3-helper backend:", err)
		return 1
	}
	return runBackend(os.Args[2:], os.Stderr)
}

// BackendUser is the default system user of the backends.
const BackendUser = "_ovpn3go"

// runBackend is "ovpn3-helper backend [--log-level N] --token-fd N": the
// session token is read from that descriptor, never from the command line
// (which every user can read).
func runBackend(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("ovpn3-helper backend", flag.ContinueOnError)
	fs.SetOutput(stderr)
	logLevel := parseLogLevel(fs)
	tokenFD := fs.Int("token-fd", -1, "descriptor to read the session token from")
	cpuProfileDir := fs.String("cpuprofile-dir", "", "write a CPU profile of this backend to DIR/backend-<PID>.pprof")
	stats := statsFlag(fs)
	daemonVersion := fs.String("daemon-version", "", "the release of the daemon starting this backend; a backend of another release refuses to run")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 || *tokenFD < 0 {
		fmt.Fprintln(stderr, "usage: ovpn3-helper backend [--log-level N] --token-fd N [--daemon-version V]")
		return 2
	}
	// The daemon and its backends speak an internal protocol that may
	// change between releases: a backend of another release (a binary
	// replaced under a running daemon) must not register with it.
	if *daemonVersion != "" && *daemonVersion != version.Version {
		fmt.Fprintf(stderr, "ovpn3-helper backend: refusing to run: this backend is release %q but the daemon that started it is %q (restart the daemon after an upgrade)\n", version.Version, *daemonVersion)
		return 3
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slogLevel(*logLevel)}))
	// The backend is in its own session (setsid); SIGTERM from the daemon
	// or an administrator ends it cleanly.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if *stats > 0 {
		go logRuntimeStats(ctx, logger, *stats)
	}
	if *cpuProfileDir != "" {
		stopProfile, err := startCPUProfile(*cpuProfileDir)
		if err != nil {
			fmt.Fprintln(stderr, "ovpn3-helper backend:", err)
			return 1
		}
		defer stopProfile()
	}
	// The token comes when a session claims this backend: at once, or
	// later for the daemon's spare backend.
	token := func(ctx context.Context) (string, error) { return sessionmgr.ReadToken(ctx, *tokenFD) }
	err := backend.Run(ctx, token, backend.Options{Logger: logger, Version: "ovpn3go " + version.Version, Connected: settleMemory})
	switch {
	case errors.Is(err, sessionmgr.ErrNoToken):
		logger.Debug("spare backend not needed: the daemon closed the token descriptor")
		return 0
	case err != nil && !errors.Is(err, context.Canceled):
		return 1
	}
	return 0
}

// startCPUProfile starts profiling this process into
// dir/backend-<PID>.pprof; the returned function stops and closes it.
func startCPUProfile(dir string) (func(), error) {
	path := filepath.Join(dir, fmt.Sprintf("backend-%d.pprof", os.Getpid()))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile %s: %w", path, err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// dnsFlags say where the resolvers are; tests point them at their own.
type dnsFlags struct {
	resolvConf  string
	resolvedBus string
}

// newDNS picks the resolver backend and undoes what a crashed helper left
// applied (its journal is in the state directory). A failed recovery is
// logged, not fatal: the helper is still needed to undo the rest later.
func newDNS(ctx context.Context, system *dbus.Conn, stateDir string, f dnsFlags, logger *slog.Logger) (*dns.Manager, error) {
	bus := system
	if f.resolvedBus != "" {
		conn, err := dbus.Connect(f.resolvedBus, dbus.WithContext(ctx))
		if err != nil {
			return nil, fmt.Errorf("resolved bus %s: %w", f.resolvedBus, err)
		}
		bus = conn // lives as long as the process
	}
	m, err := dns.New(ctx, dns.Options{StateDir: stateDir, ResolvConf: f.resolvConf, Bus: bus, Logger: logger})
	if err != nil {
		logger.Error("DNS settings left by an earlier helper not fully undone", "err", err)
	}
	logger.Info("DNS resolver backend", "backend", m.Backend())
	return m, nil
}

// statsFlag is --runtime-stats: set by the administrator who starts the
// daemon (make soak), which passes it on to every backend.
func statsFlag(fs *flag.FlagSet) *time.Duration {
	return fs.Duration("runtime-stats", 0, "log this process's goroutine count and Go heap every DURATION (the daemon passes it to its backends); off by default")
}

// threadCount is this process's number of threads (its Go runtime keeps
// every thread it ever started, each with its stacks); 0 if unknown.
func threadCount() int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Threads:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}

// logRuntimeStats logs the numbers a leak shows in and only the process
// itself knows (RSS and descriptors are in /proc) until ctx ends.
func logRuntimeStats(ctx context.Context, logger *slog.Logger, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		attrs := append([]any{"pid", os.Getpid(), "goroutines", runtime.NumGoroutine(), "threads", threadCount(), "heap_inuse", m.HeapInuse}, readMemStats(&m)...)
		logger.Info("runtime stats", attrs...)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
