package main

// The session commands: session-start, sessions-list, session-stats and
// session-manage, talking to net.openvpn.v3.sessions like openvpn3's CLI.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"

	"github.com/ovpn3go/ovpn3go/helper/api"
)

func init() {
	register("session-start", "Start a VPN session from an imported profile", runSessionStart)
	register("sessions-list", "List the VPN sessions you can access", runSessionsList)
	register("session-stats", "Show the traffic statistics of a session", runSessionStats)
	register("session-manage", "Disconnect, restart, pause or resume a session", runSessionManage)
}

// statusPollInterval is how often session-start reads the status property
// besides watching StatusChange signals (the signals are the fast path;
// polling covers a front-end that cannot receive them).
const statusPollInterval = time.Second

// sessionStatus is the (uus) status property.
type sessionStatus struct {
	Major, Minor uint32
	Message      string
}

func (s sessionStatus) api() api.Status {
	return api.Status{Major: api.StatusMajor(s.Major), Minor: api.StatusMinor(s.Minor), Message: s.Message}
}

// sessionByFlags resolves --path, --config or --interface (the last
// argument, optional) to one session path.
func sessionByFlags(ctx context.Context, conn *dbus.Conn, path, config string, iface ...string) (dbus.ObjectPath, error) {
	dev := ""
	if len(iface) > 0 {
		dev = iface[0]
	}
	n := 0
	for _, v := range []string{path, config, dev} {
		if v != "" {
			n++
		}
	}
	switch {
	case n > 1:
		return "", fmt.Errorf("give only one of --path, --config, --interface: %w", errUsage)
	case dev != "":
		var p dbus.ObjectPath
		if err := callMethod(ctx, conn, api.ServiceSessions, api.PathSessions, api.InterfaceSessions,
			"LookupInterface", []any{dev}, &p); err != nil {
			return "", fmt.Errorf("look up the session of interface %q: %w", dev, err)
		}
		return p, nil
	case path != "":
		p := dbus.ObjectPath(path)
		if !p.IsValid() {
			return "", fmt.Errorf("invalid session path %q", path)
		}
		return p, nil
	case config != "":
		var paths []dbus.ObjectPath
		if err := callMethod(ctx, conn, api.ServiceSessions, api.PathSessions, api.InterfaceSessions,
			"LookupConfigName", []any{config}, &paths); err != nil {
			return "", fmt.Errorf("look up sessions of %q: %w", config, err)
		}
		switch len(paths) {
		case 0:
			return "", fmt.Errorf("no session started from profile %q", config)
		case 1:
			return paths[0], nil
		default:
			return "", fmt.Errorf("%d sessions run profile %q; use --path", len(paths), config)
		}
	}
	return "", fmt.Errorf("--path or --config is required: %w", errUsage)
}

func sessionCall(ctx context.Context, conn *dbus.Conn, path dbus.ObjectPath, method string, args ...any) error {
	return callMethod(ctx, conn, api.ServiceSessions, path, api.InterfaceSessions, method, args)
}

func sessionProp(ctx context.Context, conn *dbus.Conn, path dbus.ObjectPath, name string, out any) error {
	return getProperty(ctx, conn, api.ServiceSessions, path, api.InterfaceSessions, name, out)
}

// ---- session-start ----

func runSessionStart(ctx context.Context, args []string) error {
	fs := newFlags("session-start")
	config := fs.String("config", "", "name of the imported profile")
	configPath := fs.String("config-path", "", "D-Bus path of the profile (instead of --config)")
	timeout := fs.Duration("timeout", 90*time.Second, "give up (and disconnect) when not connected after this long")
	background := fs.Bool("background", false, "start the connection and return without waiting for it")
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if fs.NArg() != 0 || (*config == "") == (*configPath == "") {
		return fmt.Errorf("give one of --config NAME or --config-path PATH: %w", errUsage)
	}
	conn, err := connectBus(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	cfg, err := lookupConfig(ctx, conn, *config, dbus.ObjectPath(*configPath))
	if err != nil {
		return err
	}

	// Subscribe before the session exists so no early signal is missed.
	sigs := make(chan *dbus.Signal, 64)
	conn.Signal(sigs)
	defer conn.RemoveSignal(sigs)
	if err := conn.AddMatchSignalContext(ctx, dbus.WithMatchInterface(api.InterfaceSessions)); err != nil {
		return fmt.Errorf("subscribe to session signals: %w", err)
	}

	var path dbus.ObjectPath
	if err := callMethod(ctx, conn, api.ServiceSessions, api.PathSessions, api.InterfaceSessions,
		"NewTunnel", []any{cfg}, &path); err != nil {
		return fmt.Errorf("start session: %w", err)
	}
	fmt.Fprintf(stdout, "Session path: %s\n", path)
	followSession(ctx, conn, path)

	// disconnect ends a session that failed or was given up.
	disconnect := func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
		defer cancel()
		_ = sessionCall(dctx, conn, path, "Disconnect")
	}
	if *background {
		if err := sessionReady(ctx, conn, path); err != nil {
			disconnect()
			return err
		}
		if err := sessionCall(ctx, conn, path, "Connect"); err != nil {
			disconnect()
			return fmt.Errorf("connect: %w", err)
		}
		fmt.Fprintln(stdout, "Connecting in the background")
		return nil
	}
	err = connectSession(ctx, conn, path, sigs, *timeout)
	if err != nil && !errors.Is(err, errSessionGone) {
		disconnect()
	}
	return err
}

// errNeedInput: after Connect the backend asks for user input again (a
// dynamic challenge, a rejected passphrase).
var errNeedInput = errors.New("the session needs user input")

// connectSession is openvpn3's start_session(): up to ten rounds of
// filling the user-input queue until Ready passes, Connect, and waiting for
// the outcome; a round ends early when the backend asks for more input.
func connectSession(ctx context.Context, conn *dbus.Conn, path dbus.ObjectPath, sigs <-chan *dbus.Signal, timeout time.Duration) error {
	for round := 0; round < 10; round++ {
		if err := sessionReady(ctx, conn, path); err != nil {
			return err
		}
		// The status before Connect is stale once Connect returns: a
		// previous CONN_AUTH_FAILED must not end this round.
		var before sessionStatus
		_ = sessionProp(ctx, conn, path, "status", &before)
		if err := sessionCall(ctx, conn, path, "Connect"); err != nil {
			if strings.Contains(api.ErrorText(err), "PEM_PASSWORD_FAIL") {
				// The backend asks for the passphrase again.
				fmt.Fprintln(os.Stderr, "Incorrect private key passphrase")
				continue
			}
			return fmt.Errorf("connect: %w", err)
		}
		err := waitConnected(ctx, conn, path, sigs, timeout, before.api())
		if !errors.Is(err, errNeedInput) {
			return err
		}
	}
	return errors.New("the session still asks for input after ten rounds")
}

// sessionReady calls Ready until the backend is ready, asking the user for
// the credentials it needs (up to a few rounds, as openvpn3 does).
func sessionReady(ctx context.Context, conn *dbus.Conn, path dbus.ObjectPath) error {
	for round := 0; round < 5; round++ {
		err := sessionCall(ctx, conn, path, "Ready")
		if err == nil {
			return nil
		}
		if !api.IsDomain(err, api.DomainReady) {
			return fmt.Errorf("session not ready: %w", err)
		}
		if err := provideUserInput(ctx, conn, path); err != nil {
			return err
		}
	}
	return errors.New("session is still not ready after providing the requested input")
}

type typeGroup struct{ Type, Group uint32 }

// provideUserInput asks for every pending credential slot on the terminal.
func provideUserInput(ctx context.Context, conn *dbus.Conn, path dbus.ObjectPath) error {
	var groups []typeGroup
	if err := callMethod(ctx, conn, api.ServiceSessions, path, api.InterfaceSessions,
		"UserInputQueueGetTypeGroup", nil, &groups); err != nil {
		return fmt.Errorf("read the user input queue: %w", err)
	}
	in := bufio.NewReader(os.Stdin)
	asked := false
	for _, tg := range groups {
		if api.AttentionType(tg.Type) != api.AttentionTypeCredentials {
			continue
		}
		var ids []uint32
		if err := callMethod(ctx, conn, api.ServiceSessions, path, api.InterfaceSessions,
			"UserInputQueueCheck", []any{tg.Type, tg.Group}, &ids); err != nil {
			return fmt.Errorf("read the user input queue: %w", err)
		}
		for _, id := range ids {
			var typ, group, sid uint32
			var name, description string
			var hidden bool
			if err := callMethod(ctx, conn, api.ServiceSessions, path, api.InterfaceSessions,
				"UserInputQueueFetch", []any{tg.Type, tg.Group, id}, &typ, &group, &sid, &name, &description, &hidden); err != nil {
				return fmt.Errorf("read the user input queue: %w", err)
			}
			value, err := prompt(in, description, hidden)
			if err != nil {
				return err
			}
			asked = true
			if err := callMethod(ctx, conn, api.ServiceSessions, path, api.InterfaceSessions,
				"UserInputProvide", []any{tg.Type, tg.Group, id, value}); err != nil {
				return fmt.Errorf("provide %s: %w", description, err)
			}
		}
	}
	if !asked {
		return errors.New("the session is not ready, but asks for no input this program can provide")
	}
	return nil
}

// prompt reads one line from the terminal (echo off for hidden input) or
// from standard input when it is not a terminal.
func prompt(in *bufio.Reader, description string, hidden bool) (string, error) {
	fmt.Fprintf(os.Stderr, "%s: ", description)
	fd := int(os.Stdin.Fd())
	if hidden {
		if old, err := unix.IoctlGetTermios(fd, unix.TCGETS); err == nil {
			noEcho := *old
			noEcho.Lflag &^= unix.ECHO
			_ = unix.IoctlSetTermios(fd, unix.TCSETS, &noEcho)
			defer func() {
				_ = unix.IoctlSetTermios(fd, unix.TCSETS, old)
				fmt.Fprintln(os.Stderr)
			}()
		}
	}
	line, err := in.ReadString('\n')
	if err != nil && line == "" {
		return "", fmt.Errorf("read %s: %w", description, err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

var errSessionGone = errors.New("session ended")

// waitConnected follows the session's status (signals, plus polling) until
// it is connected, fails, disappears, or the timeout or ctx ends.
//
// stale is the status from before Connect: until the status changes it
// ends nothing. CFG_REQUIRE_USER after a change returns errNeedInput.
func waitConnected(ctx context.Context, conn *dbus.Conn, path dbus.ObjectPath, sigs <-chan *dbus.Signal, timeout time.Duration, stale api.Status) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	poll := time.NewTicker(statusPollInterval)
	defer poll.Stop()
	var last api.Status
	changed := false
	// handle reports a status; done is true when waiting is over.
	var handle func(st api.Status) (done bool, err error)
	handle = func(st api.Status) (done bool, err error) {
		if !changed {
			if st == stale && st.Minor != api.StatusMinorConnConnected {
				return false, nil
			}
			changed = true
		}
		if st != last {
			last = st
			fmt.Fprintf(stdout, "  %s\n", st)
		}
		switch st.Minor {
		case api.StatusMinorCfgRequireUser:
			return true, errNeedInput
		case api.StatusMinorConnConnected:
			printConnected(ctx, conn, path)
			return true, nil
		case api.StatusMinorConnFailed:
			return true, fmt.Errorf("connection failed: %s", orUnknown(st.Message))
		case api.StatusMinorConnAuthFailed:
			return true, fmt.Errorf("user authentication failed: %s", orUnknown(st.Message))
		case api.StatusMinorCfgError:
			return true, fmt.Errorf("configuration error: %s", orUnknown(st.Message))
		case api.StatusMinorProcStopped, api.StatusMinorProcKilled, api.StatusMinorConnDone:
			// A polled status can overtake the forwarded failure that
			// came just before the end: the reason matters more.
			if failure, ok := awaitFailure(sigs, path, 2*time.Second); ok {
				return handle(failure)
			}
			return true, fmt.Errorf("%w: %s", errSessionGone, st)
		}
		return false, nil
	}
	check := func() (bool, error) {
		var s sessionStatus
		err := sessionProp(ctx, conn, path, "status", &s)
		switch {
		case err == nil:
			return handle(s.api())
		case api.IsErrorName(err, api.ErrNameUnknownMethod):
			// The object is gone: the backend ended. Its last events
			// (CONN_FAILED with the reason) may still be on their way
			// from the log service: give them a moment.
			grace := time.NewTimer(2 * time.Second)
			defer grace.Stop()
			for {
				if last.Minor == api.StatusMinorConnFailed || last.Minor == api.StatusMinorConnAuthFailed {
					return handle(last)
				}
				select {
				case s := <-sigs:
					if st, ok := forwardedStatus(s, path); ok {
						if done, err := handle(st); done {
							return done, err
						}
					}
					continue
				case <-grace.C:
				}
				return true, fmt.Errorf("%w before connecting (last status: %s)", errSessionGone, last)
			}
		}
		return false, nil // transient: keep waiting
	}
	if done, err := check(); done {
		return err
	}
	for {
		select {
		case s := <-sigs:
			switch {
			case s.Path == path && s.Name == api.InterfaceBackends+".StatusChange" && len(s.Body) == 3:
				st, _ := forwardedStatus(s, path)
				if done, err := handle(st); done {
					return err
				}
			case s.Name == api.InterfaceSessions+".SessionManagerEvent" && len(s.Body) == 3 && s.Body[0] == path &&
				s.Body[1] == uint16(api.SessionEventDestroyed):
				if done, err := check(); done {
					return err
				}
			}
		case <-poll.C:
			if done, err := check(); done {
				return err
			}
		case <-deadline.C:
			return fmt.Errorf("not connected after %v (last status: %s)", timeout, last)
		case <-ctx.Done():
			return fmt.Errorf("interrupted (last status: %s)", last)
		}
	}
}

// awaitFailure looks, for up to grace, among the session's forwarded
// signals for the status that says why it failed.
func awaitFailure(sigs <-chan *dbus.Signal, path dbus.ObjectPath, grace time.Duration) (api.Status, bool) {
	t := time.NewTimer(grace)
	defer t.Stop()
	for {
		select {
		case s := <-sigs:
			st, ok := forwardedStatus(s, path)
			if ok && (st.Minor == api.StatusMinorConnFailed || st.Minor == api.StatusMinorConnAuthFailed ||
				st.Minor == api.StatusMinorCfgError) {
				return st, true
			}
		case <-t.C:
			return api.Status{}, false
		}
	}
}

// forwardedStatus decodes a StatusChange forwarded for the session.
func forwardedStatus(s *dbus.Signal, path dbus.ObjectPath) (api.Status, bool) {
	if s.Path != path || s.Name != api.InterfaceBackends+".StatusChange" || len(s.Body) != 3 {
		return api.Status{}, false
	}
	major, _ := s.Body[0].(uint32)
	minor, _ := s.Body[1].(uint32)
	msg, _ := s.Body[2].(string)
	return api.Status{Major: api.StatusMajor(major), Minor: api.StatusMinor(minor), Message: msg}, true
}

func orUnknown(s string) string {
	if strings.TrimSpace(s) == "" {
		return "no reason given"
	}
	return s
}

func printConnected(ctx context.Context, conn *dbus.Conn, path dbus.ObjectPath) {
	var ct struct {
		Proto, IP string
		Port      uint32
	}
	var dev string
	_ = sessionProp(ctx, conn, path, "device_name", &dev)
	if err := sessionProp(ctx, conn, path, "connected_to", &ct); err == nil && ct.IP != "" {
		fmt.Fprintf(stdout, "Connected to %s (device %s)\n", formatServer(ct.Proto, ct.IP, ct.Port), orDash(dev))
		return
	}
	fmt.Fprintf(stdout, "Connected (device %s)\n", orDash(dev))
}

func formatServer(proto, ip string, port uint32) string {
	if strings.Contains(ip, ":") {
		ip = "[" + ip + "]"
	}
	s := proto + ":" + ip
	if port != 0 {
		s += ":" + strconv.FormatUint(uint64(port), 10)
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// followSession asks the session manager to forward the session's events
// to this connection (LogForward, as openvpn3's CLI does): StatusChange
// then arrives from net.openvpn.v3.log with the session path and the
// backends interface. Without it (no right to the log, old service) the
// status property is polled.
func followSession(ctx context.Context, conn *dbus.Conn, path dbus.ObjectPath) {
	if err := conn.AddMatchSignalContext(ctx, dbus.WithMatchSender(api.ServiceLog),
		dbus.WithMatchInterface(api.InterfaceBackends), dbus.WithMatchObjectPath(path)); err != nil {
		return
	}
	_ = sessionCall(ctx, conn, path, "LogForward", true)
}

// fetchSessions lists the sessions the caller may see.
func fetchSessions(ctx context.Context, conn *dbus.Conn) ([]dbus.ObjectPath, error) {
	var paths []dbus.ObjectPath
	if err := callMethod(ctx, conn, api.ServiceSessions, api.PathSessions, api.InterfaceSessions,
		"FetchAvailableSessions", nil, &paths); err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	return paths, nil
}

// ---- sessions-list ----

func runSessionsList(ctx context.Context, args []string) error {
	fs := newFlags("sessions-list")
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q: %w", fs.Args(), errUsage)
	}
	conn, err := connectBus(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	paths, err := fetchSessions(ctx, conn)
	if err != nil {
		return err
	}
	if len(paths) == 0 {
		fmt.Fprintln(stdout, "No sessions available")
		return nil
	}
	line := strings.Repeat("-", 77)
	fmt.Fprintln(stdout, line)
	for _, p := range paths {
		var props map[string]dbus.Variant
		if err := callMethod(ctx, conn, api.ServiceSessions, p, api.InterfaceProperties, "GetAll",
			[]any{api.InterfaceSessions}, &props); err != nil {
			fmt.Fprintf(stdout, "        Path: %s\n      Status: (unavailable: %s)\n%s\n", p, describeError(err), line)
			continue
		}
		str := func(k string) string { s, _ := props[k].Value().(string); return s }
		u32 := func(k string) uint32 { v, _ := props[k].Value().(uint32); return v }
		created := ""
		if t, ok := props["session_created"].Value().(uint64); ok {
			created = time.Unix(int64(t), 0).Format("2006-01-02 15:04:05")
		}
		fmt.Fprintf(stdout, "        Path: %s\n", p)
		fmt.Fprintf(stdout, "     Created: %-28s PID: %d\n", created, u32("backend_pid"))
		fmt.Fprintf(stdout, "       Owner: %-25s Device: %s\n", userName(u32("owner")), orDash(str("device_name")))
		fmt.Fprintf(stdout, " Config name: %s\n", str("config_name"))
		if ct, ok := props["connected_to"].Value().([]any); ok && len(ct) == 3 {
			proto, _ := ct[0].(string)
			ip, _ := ct[1].(string)
			port, _ := ct[2].(uint32)
			if ip != "" {
				fmt.Fprintf(stdout, "Connected to: %s\n", formatServer(proto, ip, port))
			}
		}
		st := api.Status{}
		if v, ok := props["status"].Value().([]any); ok && len(v) == 3 {
			major, _ := v[0].(uint32)
			minor, _ := v[1].(uint32)
			msg, _ := v[2].(string)
			st = api.Status{Major: api.StatusMajor(major), Minor: api.StatusMinor(minor), Message: msg}
		}
		fmt.Fprintf(stdout, "      Status: %s\n", st)
		fmt.Fprintln(stdout, line)
	}
	return nil
}

// ---- session-stats ----

// statsOrder is the order openvpn3 prints the counters in (spec §6.1).
var statsOrder = []string{"BYTES_IN", "BYTES_OUT", "PACKETS_IN", "PACKETS_OUT",
	"TUN_BYTES_IN", "TUN_BYTES_OUT", "TUN_PACKETS_IN", "TUN_PACKETS_OUT"}

func runSessionStats(ctx context.Context, args []string) error {
	fs := newFlags("session-stats")
	path := fs.String("path", "", "session path")
	config := fs.String("config", "", "name of the profile the session was started from")
	iface := fs.String("interface", "", "tunnel interface of the session")
	asJSON := fs.Bool("json", false, "print a JSON object")
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q: %w", fs.Args(), errUsage)
	}
	conn, err := connectBus(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	p, err := sessionByFlags(ctx, conn, *path, *config, *iface)
	if err != nil {
		return err
	}
	stats := map[string]int64{}
	if err := sessionProp(ctx, conn, p, "statistics", &stats); err != nil {
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
	for _, k := range sortedStatKeys(stats) {
		v := strconv.FormatInt(stats[k], 10)
		dots := max(3, 36-len(k)-len(v))
		fmt.Fprintf(stdout, "     %s%s%s\n", k, strings.Repeat(".", dots), v)
	}
	fmt.Fprintln(stdout)
	return nil
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
	fs := newFlags("session-manage")
	path := fs.String("path", "", "session path")
	config := fs.String("config", "", "name of the profile the session was started from")
	iface := fs.String("interface", "", "tunnel interface of the session")
	disconnect := fs.Bool("disconnect", false, "disconnect and remove the session")
	restart := fs.Bool("restart", false, "reconnect the session")
	pause := fs.Bool("pause", false, "pause the session")
	resume := fs.Bool("resume", false, "resume a paused session")
	cleanup := fs.Bool("cleanup", false, "disconnect every session of yours that has no status (stale)")
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	var action string
	n := 0
	for _, a := range []struct {
		set    bool
		method string
	}{{*disconnect, "Disconnect"}, {*restart, "Restart"}, {*pause, "Pause"}, {*resume, "Resume"}, {*cleanup, "cleanup"}} {
		if a.set {
			action = a.method
			n++
		}
	}
	if fs.NArg() != 0 || n != 1 {
		return fmt.Errorf("give exactly one of --disconnect, --restart, --pause, --resume, --cleanup: %w", errUsage)
	}
	conn, err := connectBus(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if action == "cleanup" {
		return cleanupSessions(ctx, conn)
	}
	p, err := sessionByFlags(ctx, conn, *path, *config, *iface)
	if err != nil {
		return err
	}
	var callArgs []any
	if action == "Pause" {
		callArgs = []any{"Front-end request"}
	}
	if action == "Disconnect" {
		// Show the final statistics first, as openvpn3 does.
		stats := map[string]int64{}
		if err := sessionProp(ctx, conn, p, "statistics", &stats); err == nil && len(stats) > 0 {
			fmt.Fprintln(stdout, "Connection statistics:")
			for _, k := range sortedStatKeys(stats) {
				v := strconv.FormatInt(stats[k], 10)
				fmt.Fprintf(stdout, "     %s%s%s\n", k, strings.Repeat(".", max(3, 36-len(k)-len(v))), v)
			}
		}
	}
	if err := sessionCall(ctx, conn, p, action, callArgs...); err != nil {
		return fmt.Errorf("%s: %w", strings.ToLower(action), err)
	}
	switch action {
	case "Disconnect":
		fmt.Fprintln(stdout, "Session closed")
	case "Restart":
		fmt.Fprintln(stdout, "Session restarting")
	case "Pause":
		fmt.Fprintln(stdout, "Session paused")
	case "Resume":
		fmt.Fprintln(stdout, "Session resuming")
	}
	return nil
}

// cleanupSessions disconnects the caller's sessions whose status is unset
// or unreadable: leftovers of front-ends that died before Connect.
func cleanupSessions(ctx context.Context, conn *dbus.Conn) error {
	paths, err := fetchSessions(ctx, conn)
	if err != nil {
		return err
	}
	n := 0
	for _, p := range paths {
		var st sessionStatus
		if err := sessionProp(ctx, conn, p, "status", &st); err == nil && st != (sessionStatus{}) {
			continue
		}
		if err := sessionCall(ctx, conn, p, "Disconnect"); err != nil {
			fmt.Fprintf(stdout, "Could not remove %s: %s\n", p, describeError(err))
			continue
		}
		fmt.Fprintf(stdout, "Removed %s\n", p)
		n++
	}
	fmt.Fprintf(stdout, "%d stale session(s) removed\n", n)
	return nil
}
