package main

// session-auth, session-acl and log: the openvpn3 commands for pending
// authentication, session access control and following a session's log.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os/user"
	"strconv"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
)

func init() {
	register("session-auth", "List sessions waiting for credentials, or provide them (--auth-req ID)", runSessionAuth)
	register("session-acl", "Show or change who may use a session", runSessionACL)
	register("log", "Follow the log and status events of a session", runLog)
}

// ---- session-auth ----

func runSessionAuth(ctx context.Context, args []string) error {
	fs := newFlags("session-auth")
	authReq := fs.Uint("auth-req", 0, "authentication request id (the session's backend PID) to answer")
	timeout := fs.Duration("timeout", 90*time.Second, "give up when not connected after this long")
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
	type pending struct {
		path    dbus.ObjectPath
		pid     uint32
		name    string
		status  api.Status
		created uint64
	}
	var all []pending
	for _, p := range paths {
		var st sessionStatus
		if err := sessionProp(ctx, conn, p, "status", &st); err != nil {
			continue
		}
		s := st.api()
		// After CONN_AUTH_FAILED the backend asks for the credentials
		// again, so such a session waits for input too.
		waiting := (s.Major == api.StatusMajorConnection &&
			(s.Minor == api.StatusMinorCfgRequireUser || s.Minor == api.StatusMinorConnAuthFailed)) ||
			(s.Major == api.StatusMajorSession && s.Minor == api.StatusMinorSessAuthURL)
		if !waiting {
			continue
		}
		var pd pending
		pd.path, pd.status = p, s
		_ = sessionProp(ctx, conn, p, "backend_pid", &pd.pid)
		_ = sessionProp(ctx, conn, p, "config_name", &pd.name)
		_ = sessionProp(ctx, conn, p, "session_created", &pd.created)
		all = append(all, pd)
	}
	if *authReq == 0 {
		if len(all) == 0 {
			fmt.Fprintln(stdout, "No sessions require authentication")
			return nil
		}
		line := strings.Repeat("-", 77)
		fmt.Fprintln(stdout, line)
		for _, pd := range all {
			fmt.Fprintf(stdout, "      Auth Request ID: %d\n", pd.pid)
			fmt.Fprintf(stdout, "          Config name: %s\n", pd.name)
			fmt.Fprintf(stdout, "              Created: %s\n", timestamp(pd.created))
			fmt.Fprintf(stdout, "               Status: %s\n", pd.status)
			fmt.Fprintln(stdout, line)
		}
		return nil
	}
	for _, pd := range all {
		if uint64(pd.pid) != uint64(*authReq) {
			continue
		}
		if pd.status.Minor == api.StatusMinorSessAuthURL {
			fmt.Fprintf(stdout, "Open this URL to authenticate: %s\n", pd.status.Message)
			return nil
		}
		return startSession(ctx, conn, pd.path, *timeout)
	}
	return fmt.Errorf("no session waits for authentication with request id %d", *authReq)
}

// startSession is openvpn3's start_session(): fill the user-input queue
// until Ready passes, Connect, and wait for the result. It also continues a
// session another front-end left waiting for input.
func startSession(ctx context.Context, conn *dbus.Conn, path dbus.ObjectPath, timeout time.Duration) error {
	sigs := make(chan *dbus.Signal, 64)
	conn.Signal(sigs)
	defer conn.RemoveSignal(sigs)
	followSession(ctx, conn, path)
	return connectSession(ctx, conn, path, sigs, timeout)
}

// ---- session-acl ----

// parseUser accepts a UID or a user name.
func parseUser(s string) (uint32, error) {
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return uint32(n), nil
	}
	u, err := user.Lookup(s)
	if err != nil {
		return 0, fmt.Errorf("unknown user %q", s)
	}
	n, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("user %q has UID %q", s, u.Uid)
	}
	return uint32(n), nil
}

// boolFlag is an optional true/false option.
type boolFlag struct {
	set, v bool
}

func (b *boolFlag) String() string {
	if !b.set {
		return ""
	}
	return strconv.FormatBool(b.v)
}

func (b *boolFlag) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("want true or false, not %q", s)
	}
	b.set, b.v = true, v
	return nil
}

func runSessionACL(ctx context.Context, args []string) error {
	fs := newFlags("session-acl")
	path := fs.String("path", "", "session path")
	config := fs.String("config", "", "name of the profile the session was started from")
	iface := fs.String("interface", "", "tunnel interface of the session")
	show := fs.Bool("show", false, "show the access control list")
	grant := fs.String("grant", "", "give this user (UID or name) access")
	revoke := fs.String("revoke", "", "take access away from this user (UID or name)")
	var public, allowLog boolFlag
	fs.Var(&public, "public-access", "true: every user may use the session")
	fs.Var(&allowLog, "allow-log-access", "true: granted users may follow the session's log too")
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q: %w", fs.Args(), errUsage)
	}
	if !*show && *grant == "" && *revoke == "" && !public.set && !allowLog.set {
		return fmt.Errorf("nothing to do: give --show, --grant, --revoke, --public-access or --allow-log-access: %w", errUsage)
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
	if *grant != "" {
		uid, err := parseUser(*grant)
		if err != nil {
			return err
		}
		if err := sessionCall(ctx, conn, p, "AccessGrant", uid); err != nil {
			return fmt.Errorf("grant access to %s: %w", *grant, err)
		}
		fmt.Fprintf(stdout, "Granted access to %s\n", userName(uid))
	}
	if *revoke != "" {
		uid, err := parseUser(*revoke)
		if err != nil {
			return err
		}
		if err := sessionCall(ctx, conn, p, "AccessRevoke", uid); err != nil {
			return fmt.Errorf("revoke access from %s: %w", *revoke, err)
		}
		fmt.Fprintf(stdout, "Revoked access from %s\n", userName(uid))
	}
	set := func(name string, v bool) error {
		c, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		return conn.Object(api.ServiceSessions, p).CallWithContext(c, api.InterfaceProperties+".Set", 0,
			api.InterfaceSessions, name, dbus.MakeVariant(v)).Err
	}
	if public.set {
		if err := set("public_access", public.v); err != nil {
			return fmt.Errorf("set public access: %w", err)
		}
		fmt.Fprintf(stdout, "Public access set to %t\n", public.v)
	}
	if allowLog.set {
		if err := set("restrict_log_access", !allowLog.v); err != nil {
			return fmt.Errorf("set log access: %w", err)
		}
		fmt.Fprintf(stdout, "Log access for granted users set to %t\n", allowLog.v)
	}
	if *show {
		var owner uint32
		var acl []uint32
		var pub, restrict bool
		for _, pr := range []struct {
			name string
			out  any
		}{{"owner", &owner}, {"acl", &acl}, {"public_access", &pub}, {"restrict_log_access", &restrict}} {
			if err := sessionProp(ctx, conn, p, pr.name, pr.out); err != nil {
				return fmt.Errorf("read %s: %w", pr.name, err)
			}
		}
		fmt.Fprintf(stdout, "                    Owner: %s\n", userName(owner))
		fmt.Fprintf(stdout, "            Public access: %s\n", yesNo(pub))
		fmt.Fprintf(stdout, " Users granted log access: %s\n", yesNo(!restrict))
		if len(acl) == 0 {
			fmt.Fprintln(stdout, "  Users granted access: (none)")
		} else {
			fmt.Fprintf(stdout, "  Users granted access: %d user(s)\n", len(acl))
			for _, uid := range acl {
				fmt.Fprintf(stdout, "                        - %s\n", userName(uid))
			}
		}
	}
	return nil
}

// ---- log ----

func runLog(ctx context.Context, args []string) error {
	fs := newFlags("log")
	path := fs.String("session-path", "", "session path")
	config := fs.String("config", "", "name of the profile the session was started from")
	iface := fs.String("interface", "", "tunnel interface of the session")
	level := fs.Int("log-level", -1, "set the session's log verbosity (0..6) first")
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if fs.NArg() != 0 || *level > api.MaxLogLevel {
		return fmt.Errorf("bad arguments: %w", errUsage)
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
	if *level >= 0 {
		c, cancel := context.WithTimeout(ctx, callTimeout)
		err := conn.Object(api.ServiceSessions, p).CallWithContext(c, api.InterfaceProperties+".Set", 0,
			api.InterfaceSessions, "log_verbosity", dbus.MakeVariant(uint32(*level))).Err
		cancel()
		if err != nil {
			return fmt.Errorf("set log verbosity: %w", err)
		}
	}
	sigs := make(chan *dbus.Signal, 256)
	conn.Signal(sigs)
	defer conn.RemoveSignal(sigs)
	if err := conn.AddMatchSignalContext(ctx, dbus.WithMatchSender(api.ServiceSessions),
		dbus.WithMatchInterface(api.InterfaceSessions), dbus.WithMatchMember("SessionManagerEvent")); err != nil {
		return fmt.Errorf("subscribe to session events: %w", err)
	}
	if err := conn.AddMatchSignalContext(ctx, dbus.WithMatchSender(api.ServiceLog), dbus.WithMatchObjectPath(p)); err != nil {
		return fmt.Errorf("subscribe to the session log: %w", err)
	}
	if err := sessionCall(ctx, conn, p, "LogForward", true); err != nil {
		return fmt.Errorf("follow the session log: %w", err)
	}
	defer func() {
		c, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = sessionCall(c, conn, p, "LogForward", false)
	}()
	out := bufio.NewWriter(stdout)
	defer out.Flush()
	for {
		select {
		case s, ok := <-sigs:
			if !ok {
				return errors.New("connection to the bus lost")
			}
			switch {
			case s.Path == p && strings.HasSuffix(s.Name, ".Log") && len(s.Body) == 3:
				group, _ := s.Body[0].(uint32)
				cat, _ := s.Body[1].(uint32)
				msg, _ := s.Body[2].(string)
				fmt.Fprintf(out, "%s %s%s\n", time.Now().Format("Jan 02 15:04:05"), logPrefix(group, cat), msg)
			case s.Path == p && strings.HasSuffix(s.Name, ".StatusChange") && len(s.Body) == 3:
				major, _ := s.Body[0].(uint32)
				minor, _ := s.Body[1].(uint32)
				msg, _ := s.Body[2].(string)
				st := api.Status{Major: api.StatusMajor(major), Minor: api.StatusMinor(minor), Message: msg}
				fmt.Fprintf(out, "%s [STATUS] %s\n", time.Now().Format("Jan 02 15:04:05"), st)
			case s.Name == api.InterfaceSessions+".SessionManagerEvent" && len(s.Body) == 3 && s.Body[0] == p &&
				s.Body[1] == uint16(api.SessionEventDestroyed):
				fmt.Fprintln(out, "Session closed")
				return nil
			}
			out.Flush()
		case <-ctx.Done():
			return nil
		}
	}
}

// logPrefix is "<group> <category>: " with UNDEFINED parts left out, as
// openvpn3's log writers print it.
func logPrefix(group, cat uint32) string {
	var parts []string
	if group != 0 {
		parts = append(parts, api.LogGroup(group).String())
	}
	if cat != 0 {
		parts = append(parts, api.LogCategory(cat).String())
	}
	if len(parts) == 0 {
		return ""
	}
	return strings.Join(parts, " ") + ": "
}
