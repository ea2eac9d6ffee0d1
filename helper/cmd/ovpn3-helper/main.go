// Command ovpn3-helper is the privileged side of ovpn3go, the daemon: it
// connects to the system bus (DBUS_SYSTEM_BUS_ADDRESS is honoured) and
// serves net.openvpn.v3.configuration, .sessions, .netcfg and .log. Each
// session's backend is the program ovpn3-backend, which the daemon starts
// as the backend user.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/busobj"
	"github.com/ovpn3go/ovpn3go/helper/configmgr"
	"github.com/ovpn3go/ovpn3go/helper/logsvc"
	"github.com/ovpn3go/ovpn3go/helper/netcfg"
	"github.com/ovpn3go/ovpn3go/helper/netcfg/dns"
	"github.com/ovpn3go/ovpn3go/helper/polkit"
	"github.com/ovpn3go/ovpn3go/helper/privsep"
	"github.com/ovpn3go/ovpn3go/helper/process"
	"github.com/ovpn3go/ovpn3go/helper/sessionmgr"
	"github.com/ovpn3go/ovpn3go/helper/sessionmgr/token"
	"github.com/ovpn3go/ovpn3go/internal/version"
)

func main() {
	process.Serial() // a D-Bus service: one P is faster (process.Serial)
	os.Exit(runDaemon(os.Args[1:], os.Stderr))
}

func runDaemon(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("ovpn3-helper", flag.ContinueOnError)
	fs.SetOutput(stderr)
	stateDir := fs.String("state-dir", configmgr.DefaultStateDir, "directory for persistent profiles")
	backendUser := fs.String("backend-user", BackendUser, "unprivileged system user the per-session backends run as")
	logLevel := process.LogLevelFlag(fs)
	backendPath := fs.String("backend", "", "the backends' program (default: "+backendName+" in this program's directory, else "+InstalledBackend+")")
	var dnsOpts dnsFlags
	fs.StringVar(&dnsOpts.resolvConf, "resolv-conf", dns.DefaultResolvConf, "resolv.conf file to rewrite when systemd-resolved does not run")
	fs.StringVar(&dnsOpts.resolvedBus, "resolved-bus", "", "D-Bus address where systemd-resolved runs (default: the system bus)")
	// Only the administrator who starts the daemon can ask for profiles:
	// nothing a D-Bus caller sends reaches the backends' command line.
	cpuProfileDir := fs.String("backend-cpuprofile", "", "directory (writable by the backend user) where each backend writes a CPU profile, backend-<PID>.pprof, for its whole life (make bench); needs a profiling build of the backend (go build -tags cpuprofile ./helper/cmd/ovpn3-backend; a production backend refuses to start with it); off by default")
	lim := limitFlags(fs)
	stats := process.StatsFlag(fs)
	spare := fs.Bool("spare-backend", true, "keep one backend started ahead of the next session (unprivileged, waiting for a session; one session each): the next connect skips the process start")
	preconnect := fs.Bool("preconnect", true, "backends begin the connection (remote, socket, TLS handshake) when the session's profile arrives, before the Connect, holding the credentials until then; false: at the Connect")
	configFile := fs.String("config", DefaultConfigFile, "configuration file with the limits (key = value lines, as the --max-… flags; flags win)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: ovpn3-helper [--state-dir DIR] [--log-level N] [--backend PROGRAM] [--backend-user NAME] [--resolv-conf FILE] [--resolved-bus ADDRESS] [--backend-cpuprofile DIR] [--runtime-stats DURATION] [--spare-backend=false] [--preconnect=false] [--config FILE] [--max-profiles-per-user N] [--max-profile-bytes-per-user N] [--max-sessions-per-user N] [--session-usable-within DURATION] [--import-rate R] [--new-tunnel-rate R] [--calls-per-sender N] [--queued-calls-per-sender N] [--signals-per-sender N]\n")
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
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: process.SlogLevel(*logLevel)}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	be, err := openBackend(*backendPath, backendCandidates(), backendArgs(*logLevel, *cpuProfileDir, *preconnect))
	if err != nil {
		logger.Error("ovpn3-helper", "err", err)
		return 1
	}
	defer be.file.Close()
	user, err := privsep.LookupUser(*backendUser)
	if err != nil {
		logger.Error("ovpn3-helper: the backends' system user is missing (the package creates it with sysusers.d)", "err", err)
		return 1
	}
	if *stats > 0 {
		be.args = append(be.args, "--runtime-stats", stats.String())
		go process.LogRuntimeStats(ctx, logger, *stats)
	}
	if err := serve(ctx, *stateDir, be, *spare, dnsOpts, *lim, user, logger); err != nil {
		logger.Error("ovpn3-helper", "err", err)
		return 1
	}
	return 0
}

// backendArgs is every backend's command line: fixed when the daemon
// starts, so no D-Bus call changes it (profiling stays off unless the
// daemon was started with --backend-cpuprofile).
func backendArgs(logLevel int, cpuProfileDir string, preconnect bool) []string {
	args := []string{"--log-level", strconv.Itoa(logLevel), "--token-fd", strconv.Itoa(token.FD),
		"--daemon-version", version.Version}
	if !preconnect {
		args = append(args, "--preconnect=false")
	}
	if cpuProfileDir != "" {
		args = append(args, "--cpuprofile-dir", cpuProfileDir)
	}
	return args
}

// serve runs the daemon until ctx ends, then disconnects every session.
func serve(ctx context.Context, stateDir string, be backendProgram, spare bool, dnsOpts dnsFlags, lim limits, backendUser privsep.User, logger *slog.Logger) error {
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
		Program: be.file,
		Path:    be.path,
		Args:    be.args,
		User:    &backendUser,
		Logger:  logger.With("service", "backend"),
		Spare:   spare,
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
		// GOGC 100 from NewTunnel until connected (process.Busy).
		Busy: process.Busy,
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
	logger.Info("ovpn3-helper ready", "pid", os.Getpid(), "state_dir", stateDir, "backend", be.path)
	process.Settle()
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

// BackendUser is the default system user of the backends.
const BackendUser = "_ovpn3go"

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
