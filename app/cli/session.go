package cli

// The session commands: session-start, sessions-list, session-stats and
// session-manage, talking to net.openvpn.v3.sessions like openvpn3's CLI.
// The start loop itself is app/client's Session.Start; this file gives it
// a terminal (or piped standard input) to ask through.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"

	"github.com/ovpn3go/ovpn3go/app/client"
	"github.com/ovpn3go/ovpn3go/helper/api"
)

func init() {
	register("session-start", "Start a VPN session from an imported profile or a profile file", runSessionStart)
	register("sessions-list", "List the VPN sessions you can access", runSessionsList)
	register("session-stats", "Show the traffic statistics of a session", runSessionStats)
	register("session-manage", "Disconnect, restart, pause or resume a session, or show/set its log level", runSessionManage)
}

// sessionFlags adds --path/-o (alias --session-path), --config/-c and
// --interface/-I, which select one session.
func sessionFlags(name string) (fs *flagSet, path, config, iface *string) {
	fs = newFlags(name)
	path = fs.String("path", "", "session object `PATH`")
	alias(fs, "path", "o")
	alias(fs, "path", "session-path")
	config = fs.String("config", "", "`NAME` of the profile the session was started from")
	alias(fs, "config", "c")
	iface = fs.String("interface", "", "tunnel `DEVICE` of the session")
	alias(fs, "interface", "I")
	return fs, path, config, iface
}

// errNoSession: no session runs the profile named by --config.
var errNoSession = errors.New("no session started")

// sessionByFlags resolves --path, --config or --interface to one session.
func sessionByFlags(ctx context.Context, cl *client.Client, path, config, dev string) (*client.Session, error) {
	n := 0
	for _, v := range []string{path, config, dev} {
		if v != "" {
			n++
		}
	}
	switch {
	case n > 1:
		return nil, fmt.Errorf("give only one of --path, --config, --interface: %w", errUsage)
	case dev != "":
		s, err := cl.LookupInterface(ctx, dev)
		if err != nil {
			return nil, fmt.Errorf("look up the session of interface %q: %w", dev, err)
		}
		return s, nil
	case path != "":
		p := dbus.ObjectPath(path)
		if !p.IsValid() {
			return nil, fmt.Errorf("invalid session path %q", path)
		}
		return cl.Session(p), nil
	case config != "":
		found, err := cl.LookupSessions(ctx, config)
		if err != nil {
			return nil, fmt.Errorf("look up sessions of %q: %w", config, err)
		}
		switch len(found) {
		case 0:
			return nil, fmt.Errorf("%w from profile %q", errNoSession, config)
		case 1:
			return found[0], nil
		default:
			return nil, fmt.Errorf("%d sessions run profile %q; use --path", len(found), config)
		}
	}
	return nil, fmt.Errorf("--path, --config or --interface is required: %w", errUsage)
}

// ---- session-start ----

func runSessionStart(ctx context.Context, args []string) error {
	fs := newFlags("session-start")
	config := fs.String("config", "", "`NAME` of an imported profile, or a profile `FILE` to start directly")
	alias(fs, "config", "c")
	configPath := fs.String("config-path", "", "D-Bus `PATH` of an imported profile")
	alias(fs, "config-path", "p")
	persistTun := fs.Bool("persist-tun", false, "keep the tun device across reconnects (only with --config)")
	timeout := secondsFlag(fs, "timeout", "give up (and disconnect) when not connected after `SECS` seconds (default: wait)")
	background := fs.Bool("background", false, "start the connection and return once the credentials are given")
	var dco boolArg
	fs.Var(&dco, "dco", "use data channel offload: true or false")
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 || (*config == "") == (*configPath == "") {
		return fmt.Errorf("give one of --config NAME|FILE or --config-path PATH: %w", errUsage)
	}
	if *persistTun && *config == "" {
		return fmt.Errorf("--persist-tun can only be used with --config: %w", errUsage)
	}
	cl, err := connectBus(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	var prof *client.Profile
	imported := false
	if *config != "" {
		if prof, imported, err = profileOrFile(ctx, cl, *config); err != nil {
			return err
		}
	} else {
		p := dbus.ObjectPath(*configPath)
		if !p.IsValid() {
			return fmt.Errorf("%q is not a valid object path", *configPath)
		}
		prof = cl.Profile(p)
	}
	// A profile imported from the file here goes again if no session
	// takes it (the session's backend removes a single-use profile).
	dropImported := func() {
		if imported {
			_ = prof.Remove(context.WithoutCancel(ctx))
		}
	}
	if err := prof.Validate(ctx); err != nil {
		dropImported()
		return fmt.Errorf("profile %s: %w", prof.Path, err)
	}
	if *persistTun {
		if err := prof.SetOverride(ctx, "persist-tun", true); err != nil {
			dropImported()
			return fmt.Errorf("--persist-tun: %w", err)
		}
	}
	// The start loop's match rules go out before NewTunnel: its first
	// calls then follow NewTunnel's answer at once.
	watch := cl.WatchStart(ctx)
	defer watch.Stop()
	s, err := cl.NewTunnel(ctx, prof.Path)
	if err != nil {
		dropImported()
		return fmt.Errorf("start session: %w", err)
	}
	fmt.Fprintf(stdout, "Session path: %s\n", s.Path)
	// disconnect ends a session that failed or was given up.
	disconnect := func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
		defer cancel()
		if err := s.Close(dctx); err != nil {
			fmt.Fprintf(stderr, "ovpn3 session-start: could not remove the failed session %s: %s\n", s.Path, describeError(err))
		}
	}
	if dco.set {
		if err := s.SetDCO(ctx, dco.value); err != nil {
			disconnect()
			return fmt.Errorf("--dco: %w", err)
		}
	}
	err = startSession(ctx, s, client.ActionConnect, *timeout, *background, watch)
	if err != nil && !errors.Is(err, client.ErrSessionEnded) && !errors.Is(err, client.ErrWebAuth) {
		disconnect()
	}
	return err
}

// profileOrFile is openvpn3's --config lookup: an imported profile of that
// name, else the file of that name imported as a single-use profile
// (imported is true then).
func profileOrFile(ctx context.Context, cl *client.Client, name string) (prof *client.Profile, imported bool, err error) {
	found, err := cl.LookupProfile(ctx, name)
	if err != nil {
		return nil, false, fmt.Errorf("look up profile %q: %w", name, err)
	}
	switch len(found) {
	case 1:
		fmt.Fprintf(stdout, "Using pre-loaded configuration profile '%s'\n", name)
		return found[0], false, nil
	case 0:
	default:
		return nil, false, fmt.Errorf("More than one configuration profile was found with the name %q; use --config-path", name)
	}
	if _, err := os.Stat(name); err != nil {
		return nil, false, fmt.Errorf("no configuration profile named %q, and no such file", name)
	}
	prof, err = importFile(ctx, cl, name, name, client.ImportOptions{SingleUse: true}, nil)
	if err != nil {
		return nil, false, err
	}
	fmt.Fprintf(stdout, "Using configuration profile from file: %s\n", name)
	return prof, true, nil
}

// startSession runs the start loop with the terminal as the prompter and
// progress on stdout, and reports the outcome.
func startSession(ctx context.Context, s *client.Session, action client.Action, timeout time.Duration, background bool, watch *client.StartWatch) error {
	opts := client.StartOptions{
		Prompter:   newTerminalPrompter(),
		Action:     action,
		Timeout:    timeout,
		Background: background,
		OnStatus:   func(st api.Status) { fmt.Fprintf(stdout, "  %s\n", st) },
		OnNotice:   func(msg string) { fmt.Fprintln(stderr, msg) },
		Watch:      watch,
	}
	err := s.Start(ctx, opts)
	var se *client.StartError
	switch {
	case err == nil && background:
		if action == client.ActionConnect {
			fmt.Fprintln(stdout, "Connecting in the background")
		}
		return nil
	case err == nil:
		printConnected(ctx, s)
		return nil
	case errors.As(err, &se) && se.Kind == client.ErrWebAuth:
		fmt.Fprintf(stdout, "Open this URL to authenticate: %s\n", se.Status.Message)
		return nil
	}
	return err
}

// printConnected reads the two properties it shows side by side (all of
// them, Info, would cost the session manager a call to the backend for each
// of the backend's).
func printConnected(ctx context.Context, s *client.Session) {
	var ep client.Endpoint
	var dev string
	var epErr error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); ep, epErr = s.ConnectedTo(ctx) }()
	go func() { defer wg.Done(); dev, _ = s.DeviceName(ctx) }()
	wg.Wait()
	if epErr == nil && ep.IP != "" {
		fmt.Fprintf(stdout, "Connected to %s (device %s)\n", ep, orDash(dev))
		return
	}
	fmt.Fprintf(stdout, "Connected (device %s)\n", orDash(dev))
}

// terminalPrompter asks on stderr and reads standard input: a terminal
// (echo off for hidden input) or a pipe. One reader serves every round of
// questions, so answers piped for a later round (a dynamic challenge
// after the password) are not lost in an earlier round's buffer.
type terminalPrompter struct {
	in *bufio.Reader
}

func newTerminalPrompter() *terminalPrompter {
	return &terminalPrompter{in: bufio.NewReader(stdin)}
}

func (p *terminalPrompter) Answer(ctx context.Context, _ *client.Session, slot client.Slot) (string, error) {
	fmt.Fprintf(stderr, "%s: ", slot.Description)
	if f, ok := stdin.(*os.File); ok && slot.Hidden {
		fd := int(f.Fd())
		if old, err := unix.IoctlGetTermios(fd, unix.TCGETS); err == nil {
			noEcho := *old
			noEcho.Lflag &^= unix.ECHO
			_ = unix.IoctlSetTermios(fd, unix.TCSETS, &noEcho)
			defer func() {
				_ = unix.IoctlSetTermios(fd, unix.TCSETS, old)
				fmt.Fprintln(stderr)
			}()
		}
	}
	line, err := p.in.ReadString('\n')
	if err != nil && line == "" {
		if err == io.EOF {
			return "", fmt.Errorf("read %s: no more input", slot.Description)
		}
		return "", fmt.Errorf("read %s: %w", slot.Description, err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ---- sessions-list ----

func runSessionsList(ctx context.Context, args []string) error {
	fs := newFlags("sessions-list")
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q: %w", fs.Args(), errUsage)
	}
	cl, err := connectBus(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	sessions, err := cl.Sessions(ctx)
	if err != nil {
		return fmt.Errorf("list sessions: %w", err)
	}
	if len(sessions) == 0 {
		fmt.Fprintln(stdout, "No sessions available")
		return nil
	}
	line := strings.Repeat("-", 77)
	fmt.Fprintln(stdout, line)
	for _, s := range sessions {
		in, err := s.Info(ctx)
		if err != nil {
			fmt.Fprintf(stdout, "        Path: %s\n      Status: (unavailable: %s)\n%s\n", s.Path, describeError(err), line)
			continue
		}
		created := ""
		if !in.Created.IsZero() {
			created = in.Created.Format("2006-01-02 15:04:05")
		}
		fmt.Fprintf(stdout, "        Path: %s\n", s.Path)
		fmt.Fprintf(stdout, "     Created: %-28s PID: %d\n", created, in.BackendPID)
		fmt.Fprintf(stdout, "       Owner: %-25s Device: %s\n", userName(in.Owner), orDash(in.DeviceName))
		fmt.Fprintf(stdout, " Config name: %s\n", in.ConfigName)
		if in.ConnectedTo.IP != "" {
			fmt.Fprintf(stdout, "Connected to: %s\n", in.ConnectedTo)
		}
		fmt.Fprintf(stdout, "      Status: %s\n", in.Status)
		fmt.Fprintln(stdout, line)
	}
	return nil
}

// ---- session-stats ----

// statsOrder is the order openvpn3 prints the counters in (spec §6.1).
var statsOrder = []string{"BYTES_IN", "BYTES_OUT", "PACKETS_IN", "PACKETS_OUT",
	"TUN_BYTES_IN", "TUN_BYTES_OUT", "TUN_PACKETS_IN", "TUN_PACKETS_OUT"}

func runSessionStats(ctx context.Context, args []string) error {
	fs, path, config, iface := sessionFlags("session-stats")
	asJSON := fs.Bool("json", false, "print a JSON object")
	alias(fs, "json", "j")
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q: %w", fs.Args(), errUsage)
	}
	cl, err := connectBus(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	s, err := sessionByFlags(ctx, cl, *path, *config, *iface)
	if err != nil {
		return err
	}
	stats, err := s.Statistics(ctx)
	if err != nil {
		return fmt.Errorf("read statistics: %w", err)
	}
	if *asJSON {
		b, err := json.MarshalIndent(stats, "", "    ")
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, string(b))
		return nil
	}
	fmt.Fprintln(stdout, "\nConnection statistics:")
	printStats(stats)
	fmt.Fprintln(stdout)
	return nil
}

func printStats(stats map[string]int64) {
	for _, k := range sortedStatKeys(stats) {
		v := strconv.FormatInt(stats[k], 10)
		fmt.Fprintf(stdout, "     %s%s%s\n", k, strings.Repeat(".", max(3, 36-len(k)-len(v))), v)
	}
}

func sortedStatKeys(stats map[string]int64) []string {
	rank := map[string]int{}
	for i, k := range statsOrder {
		rank[k] = i + 1
	}
	keys := make([]string, 0, len(stats))
	for k := range stats {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		ri, rj := rank[keys[i]], rank[keys[j]]
		switch {
		case ri != 0 && rj != 0:
			return ri < rj
		case ri != 0 || rj != 0:
			return ri != 0
		}
		return keys[i] < keys[j]
	})
	return keys
}

// ---- session-manage ----

func runSessionManage(ctx context.Context, args []string) error {
	fs, path, config, iface := sessionFlags("session-manage")
	disconnect := fs.Bool("disconnect", false, "disconnect and remove the session")
	alias(fs, "disconnect", "D")
	restart := fs.Bool("restart", false, "reconnect the session")
	pause := fs.Bool("pause", false, "pause the session")
	alias(fs, "pause", "P")
	resume := fs.Bool("resume", false, "resume a paused session")
	alias(fs, "resume", "R")
	cleanup := fs.Bool("cleanup", false, "disconnect every session of yours that has no status (stale)")
	var logLevel optionalArg
	fs.Var(&logLevel, "log-level", "show the session's log level; --log-level=`LEVEL` (0-6) sets it")
	timeout := secondsFlag(fs, "timeout", "with --resume/--restart: wait up to `SECS` seconds for the connection (default: return at once)")
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	var action string
	n := 0
	for _, a := range []struct {
		set    bool
		method string
	}{{*disconnect, "Disconnect"}, {*restart, "Restart"}, {*pause, "Pause"}, {*resume, "Resume"}, {*cleanup, "cleanup"},
		{logLevel.set, "log-level"}} {
		if a.set {
			action = a.method
			n++
		}
	}
	if fs.NArg() != 0 || n != 1 {
		return fmt.Errorf("give exactly one of --pause, --resume, --restart, --disconnect, --cleanup, --log-level: %w", errUsage)
	}
	var level uint64
	if logLevel.hasValue {
		var err error
		if level, err = strconv.ParseUint(logLevel.value, 10, 32); err != nil || level > api.MaxLogLevel {
			return fmt.Errorf("--log-level %q: the levels are 0 to %d: %w", logLevel.value, api.MaxLogLevel, errUsage)
		}
	}
	cl, err := connectBus(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	if action == "cleanup" {
		return cleanupSessions(ctx, cl)
	}
	s, err := sessionByFlags(ctx, cl, *path, *config, *iface)
	if err != nil {
		return err
	}
	switch action {
	case "log-level":
		var cur uint32
		if err := s.Get(ctx, "log_verbosity", &cur); err != nil {
			return fmt.Errorf("read the log level: %w", err)
		}
		fmt.Fprintf(stdout, "Current log level: %d\n", cur)
		if logLevel.hasValue && uint32(level) != cur {
			if err := s.SetLogVerbosity(ctx, uint32(level)); err != nil {
				return fmt.Errorf("set the log level: %w", err)
			}
			fmt.Fprintf(stdout, "New log level: %d\n", level)
		}
		return nil
	case "Disconnect":
		// Show the final statistics first, as openvpn3 does.
		if stats, err := s.Statistics(ctx); err == nil && len(stats) > 0 {
			fmt.Fprintln(stdout, "Connection statistics:")
			printStats(stats)
		}
		if err := s.Disconnect(ctx); err != nil {
			return fmt.Errorf("disconnect: %w", err)
		}
		fmt.Fprintln(stdout, "Session closed")
	case "Pause":
		if err := s.Pause(ctx, "Front-end request"); err != nil {
			return fmt.Errorf("pause: %w", err)
		}
		fmt.Fprintln(stdout, "Session paused")
	case "Resume", "Restart":
		// As openvpn3: fill the input queue, then the action; wait only
		// with --timeout.
		a := client.ActionResume
		if action == "Restart" {
			a = client.ActionRestart
		}
		if err := startSession(ctx, s, a, *timeout, *timeout == 0, nil); err != nil {
			return fmt.Errorf("%s: %w", strings.ToLower(action), err)
		}
		if *timeout == 0 {
			if action == "Restart" {
				fmt.Fprintln(stdout, "Session restarting")
			} else {
				fmt.Fprintln(stdout, "Session resuming")
			}
		}
	}
	return nil
}

// cleanupSessions disconnects the caller's sessions whose status is unset
// or unreadable: leftovers of front-ends that died before Connect.
func cleanupSessions(ctx context.Context, cl *client.Client) error {
	sessions, err := cl.Sessions(ctx)
	if err != nil {
		return fmt.Errorf("list sessions: %w", err)
	}
	n := 0
	for _, s := range sessions {
		if st, err := s.Status(ctx); err == nil && st != (api.Status{}) {
			continue
		}
		if err := s.Disconnect(ctx); err != nil {
			fmt.Fprintf(stdout, "Could not remove %s: %s\n", s.Path, describeError(err))
			continue
		}
		fmt.Fprintf(stdout, "Removed %s\n", s.Path)
		n++
	}
	fmt.Fprintf(stdout, "%d stale session(s) removed\n", n)
	return nil
}
