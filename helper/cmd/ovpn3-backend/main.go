// Command ovpn3-backend is the per-session backend process of ovpn3go: the
// daemon (ovpn3-helper) starts one for each session, as the backend user
// and without privileges, and hands it the session token on a descriptor.
// It runs the OpenVPN engine and serves net.openvpn.v3.backends.be<PID>.
//
// It is a program of its own, not a mode of the daemon's, so that each
// session's process maps only the code a backend runs (the engine, the
// netcfg client) and not the daemon's services (docs/bench/memory.md).
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
	"syscall"

	"github.com/ovpn3go/ovpn3go/helper/backend"
	"github.com/ovpn3go/ovpn3go/helper/privsep"
	"github.com/ovpn3go/ovpn3go/helper/process"
	"github.com/ovpn3go/ovpn3go/helper/sessionmgr/token"
	"github.com/ovpn3go/ovpn3go/internal/version"
)

// profileTag is the build tag of the profiling build, the only one that
// links runtime/pprof and honours --cpuprofile-dir.
const profileTag = "cpuprofile"

// main is started as root by the daemon: it drops to the backend user and
// every privilege before anything else runs.
func main() {
	if err := privsep.Enter(); err != nil {
		fmt.Fprintln(os.Stderr, "ovpn3-backend:", err)
		os.Exit(1)
	}
	// One P until the data plane runs (Options.Online): the start and
	// the handshake are D-Bus messages and a few milliseconds of crypto.
	process.Serial()
	os.Exit(run(os.Args[1:], os.Stderr))
}

// run is "ovpn3-backend [--log-level N] --token-fd N [--daemon-version V]
// [--cpuprofile-dir DIR] [--runtime-stats D] [--preconnect=false]": the session token is read
// from that descriptor, never from the command line (which every user can
// read).
func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("ovpn3-backend", flag.ContinueOnError)
	fs.SetOutput(stderr)
	logLevel := process.LogLevelFlag(fs)
	tokenFD := fs.Int("token-fd", -1, "descriptor to read the session token from")
	cpuProfileDir := fs.String("cpuprofile-dir", "", "write a CPU profile of this backend to DIR/backend-<PID>.pprof (only a build with -tags "+profileTag+" has the profiler)")
	stats := process.StatsFlag(fs)
	preconnect := fs.Bool("preconnect", true, "begin the connection (remote, socket, TLS handshake) when the profile arrives, before the Connect, holding the credentials until then")
	daemonVersion := fs.String("daemon-version", "", "the release of the daemon starting this backend; a backend of another release refuses to run")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 || *tokenFD < 0 {
		fmt.Fprintln(stderr, "usage: ovpn3-backend [--log-level N] --token-fd N [--daemon-version V] [--cpuprofile-dir DIR] [--runtime-stats DURATION] [--preconnect=false]")
		return 2
	}
	// The daemon and its backends speak an internal protocol that may
	// change between releases: a backend of another release (a binary
	// replaced under a running daemon) must not register with it.
	if *daemonVersion != "" && *daemonVersion != version.Version {
		fmt.Fprintf(stderr, "ovpn3-backend: refusing to run: this backend is release %q but the daemon that started it is %q (restart the daemon after an upgrade)\n", version.Version, *daemonVersion)
		return 3
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: process.SlogLevel(*logLevel)}))
	// The backend is in its own session (setsid); SIGTERM from the daemon
	// or an administrator ends it cleanly.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if *stats > 0 {
		go process.LogRuntimeStats(ctx, logger, *stats)
	}
	// Without it, what the runtime's forced collections free stays
	// resident for the session's life (process.TrimEvery).
	go process.Trim(ctx, process.TrimEvery)
	if *cpuProfileDir != "" {
		stopProfile, err := startCPUProfile(*cpuProfileDir)
		if err != nil {
			fmt.Fprintln(stderr, "ovpn3-backend:", err)
			return 1
		}
		defer stopProfile()
	}
	// The token comes when a session claims this backend: at once, or
	// later for the daemon's spare backend.
	read := func(ctx context.Context) (string, error) { return token.Read(ctx, *tokenFD) }
	err := backend.Run(ctx, read, backend.Options{Logger: logger, Version: "ovpn3go " + version.Version,
		Online: process.Parallel, Connected: process.Settle, Preconnect: *preconnect})
	switch {
	case errors.Is(err, token.ErrNone):
		logger.Debug("spare backend not needed: the daemon closed the token descriptor")
		return 0
	case err != nil && !errors.Is(err, context.Canceled):
		return 1
	}
	return 0
}
