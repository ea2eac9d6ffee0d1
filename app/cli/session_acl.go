package cli

// session-auth, session-acl and log: the openvpn3 commands for pending
// authentication, session access control and following a session's log.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ovpn3go/ovpn3go/app/client"
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
	authReq := fs.Uint("auth-req", 0, "authentication request `ID` (the session's backend PID) to answer")
	timeout := secondsFlag(fs, "timeout", "give up when not connected after `SECS` seconds (default: wait)")
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
	type pending struct {
		s  *client.Session
		in client.SessionInfo
	}
	var all []pending
	for _, s := range sessions {
		in, err := s.Info(ctx)
		if err != nil {
			continue
		}
		st := in.Status
		// After CONN_AUTH_FAILED the backend asks for the credentials
		// again, so such a session waits for input too.
		waiting := (st.Major == api.StatusMajorConnection &&
			(st.Minor == api.StatusMinorCfgRequireUser || st.Minor == api.StatusMinorConnAuthFailed)) ||
			(st.Major == api.StatusMajorSession && st.Minor == api.StatusMinorSessAuthURL)
		if waiting {
			all = append(all, pending{s, in})
		}
	}
	if *authReq == 0 {
		if len(all) == 0 {
			fmt.Fprintln(stdout, "No sessions require authentication")
			return nil
		}
		line := strings.Repeat("-", 77)
		fmt.Fprintln(stdout, line)
		for _, pd := range all {
			fmt.Fprintf(stdout, "      Auth Request ID: %d\n", pd.in.BackendPID)
			fmt.Fprintf(stdout, "          Config name: %s\n", pd.in.ConfigName)
			fmt.Fprintf(stdout, "              Created: %s\n", formatTime(pd.in.Created))
			fmt.Fprintf(stdout, "               Status: %s\n", pd.in.Status)
			fmt.Fprintln(stdout, line)
		}
		return nil
	}
	for _, pd := range all {
		if uint64(pd.in.BackendPID) != uint64(*authReq) {
			continue
		}
		if pd.in.Status.Minor == api.StatusMinorSessAuthURL {
			fmt.Fprintf(stdout, "Open this URL to authenticate: %s\n", pd.in.Status.Message)
			return nil
		}
		return startSession(ctx, pd.s, client.ActionConnect, *timeout, false, nil)
	}
	return fmt.Errorf("no session waits for authentication with request id %d", *authReq)
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format("2006-01-02 15:04:05")
}

// ---- session-acl ----

func runSessionACL(ctx context.Context, args []string) error {
	fs, path, config, iface := sessionFlags("session-acl")
	show := fs.Bool("show", false, "show the access control list")
	alias(fs, "show", "s")
	grant := fs.String("grant", "", "give `USER` (UID or name) access")
	alias(fs, "grant", "G")
	revoke := fs.String("revoke", "", "take access away from `USER` (UID or name)")
	alias(fs, "revoke", "R")
	var public, allowLog boolArg
	fs.Var(&public, "public-access", "true: every user may use the session")
	fs.Var(&allowLog, "allow-log-access", "true: granted users may follow the session's log too")
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q: %w", fs.Args(), errUsage)
	}
	if !*show && *grant == "" && *revoke == "" && !public.set && !allowLog.set {
		return fmt.Errorf("nothing to do: give --show, --grant, --revoke, --public-access or --allow-log-access: %w", errUsage)
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
	if *grant != "" {
		uid, err := resolveUID(*grant)
		if err != nil {
			return err
		}
		if err := s.Grant(ctx, uid); err != nil {
			return fmt.Errorf("grant access to %s: %w", *grant, err)
		}
		fmt.Fprintf(stdout, "Granted access to %s\n", userName(uid))
	}
	if *revoke != "" {
		uid, err := resolveUID(*revoke)
		if err != nil {
			return err
		}
		if err := s.Revoke(ctx, uid); err != nil {
			return fmt.Errorf("revoke access from %s: %w", *revoke, err)
		}
		fmt.Fprintf(stdout, "Revoked access from %s\n", userName(uid))
	}
	if public.set {
		if err := s.Set(ctx, "public_access", public.value); err != nil {
			return fmt.Errorf("set public access: %w", err)
		}
		fmt.Fprintf(stdout, "Public access set to %t\n", public.value)
	}
	if allowLog.set {
		if err := s.Set(ctx, "restrict_log_access", !allowLog.value); err != nil {
			return fmt.Errorf("set log access: %w", err)
		}
		fmt.Fprintf(stdout, "Log access for granted users set to %t\n", allowLog.value)
	}
	if *show {
		in, err := s.Info(ctx)
		if err != nil {
			return fmt.Errorf("read the session: %w", err)
		}
		fmt.Fprintf(stdout, "                    Owner: %s\n", userName(in.Owner))
		fmt.Fprintf(stdout, "            Public access: %s\n", yesNo(in.PublicAccess))
		fmt.Fprintf(stdout, " Users granted log access: %s\n", yesNo(!in.RestrictLogAccess))
		if len(in.ACL) == 0 {
			fmt.Fprintln(stdout, "  Users granted access: (none)")
		} else {
			fmt.Fprintf(stdout, "  Users granted access: %d user(s)\n", len(in.ACL))
			for _, uid := range in.ACL {
				fmt.Fprintf(stdout, "                        - %s\n", userName(uid))
			}
		}
	}
	return nil
}

// ---- log ----

func runLog(ctx context.Context, args []string) error {
	fs := newFlags("log")
	path := fs.String("session-path", "", "session `PATH`")
	config := fs.String("config", "", "`NAME` of the profile the session was started from")
	alias(fs, "config", "c")
	iface := fs.String("interface", "", "tunnel `DEVICE` of the session")
	alias(fs, "interface", "I")
	level := fs.Int("log-level", -1, "set the session's log verbosity to `LEVEL` (0..6) first")
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q: %w", fs.Args(), errUsage)
	}
	if *level > api.MaxLogLevel || *level < -1 {
		return fmt.Errorf("--log-level %d: the levels are 0 to %d: %w", *level, api.MaxLogLevel, errUsage)
	}
	cl, err := connectBus(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	fctx, stop := context.WithCancel(ctx)
	defer stop()
	// Subscribed before the lookup, so a session started meanwhile is seen.
	gone, err := cl.SessionManagerEvents(fctx)
	if err != nil {
		return fmt.Errorf("subscribe to session events: %w", err)
	}
	s, err := sessionByFlags(ctx, cl, *path, *config, *iface)
	if errors.Is(err, errNoSession) {
		// As openvpn3: wait for a session of that profile to start, to
		// catch its log from the beginning.
		fmt.Fprintln(stdout, "Waiting for session to start ...")
		s, err = awaitSession(ctx, cl, gone, *config)
		if err != nil && ctx.Err() != nil {
			return nil // interrupted while waiting
		}
	}
	if err != nil {
		return err
	}
	if *level >= 0 {
		if err := s.SetLogVerbosity(ctx, uint32(*level)); err != nil {
			return fmt.Errorf("set log verbosity: %w", err)
		}
	}
	events, err := s.Follow(fctx)
	if err != nil {
		return fmt.Errorf("follow the session log: %w", err)
	}
	out := bufio.NewWriter(stdout)
	defer out.Flush()
	for {
		select {
		case e, ok := <-events:
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return errors.New("connection to the bus lost")
			}
			switch e := e.(type) {
			case client.LogLine:
				fmt.Fprintf(out, "%s %s%s\n", e.Time.Format("Jan 02 15:04:05"), logPrefix(e.Group, e.Category), e.Message)
			case client.StatusChange:
				fmt.Fprintf(out, "%s [STATUS] %s\n", time.Now().Format("Jan 02 15:04:05"), e.Status)
			}
			out.Flush()
		case ev, ok := <-gone:
			if ok && ev.Path == s.Path && ev.Type == api.SessionEventDestroyed {
				fmt.Fprintln(out, "Session closed")
				return nil
			}
			if !ok {
				gone = nil
			}
		case <-ctx.Done():
			return nil
		}
	}
}

// awaitSession waits for the first session started from profile config.
func awaitSession(ctx context.Context, cl *client.Client, events <-chan client.SessionManagerEvent, config string) (*client.Session, error) {
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return nil, errors.New("connection to the bus lost")
			}
			if ev.Type != api.SessionEventCreated {
				continue
			}
			found, err := cl.LookupSessions(ctx, config)
			if err != nil {
				return nil, fmt.Errorf("look up sessions of %q: %w", config, err)
			}
			switch len(found) {
			case 0:
				continue // another profile's session
			case 1:
				return found[0], nil
			}
			return nil, fmt.Errorf("%d sessions run profile %q; use --session-path", len(found), config)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// logPrefix is "<group> <category>: " with UNDEFINED parts left out, as
// openvpn3's log writers print it.
func logPrefix(group api.LogGroup, cat api.LogCategory) string {
	var parts []string
	if group != 0 {
		parts = append(parts, group.String())
	}
	if cat != 0 {
		parts = append(parts, cat.String())
	}
	if len(parts) == 0 {
		return ""
	}
	return strings.Join(parts, " ") + ": "
}
