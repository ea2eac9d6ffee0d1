package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	iofs "io/fs"
	"os"
	"strings"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/busobj"
	"github.com/ovpn3go/ovpn3go/helper/configmgr"
	"github.com/ovpn3go/ovpn3go/helper/ratelimit"
	"github.com/ovpn3go/ovpn3go/helper/sessionmgr"
)

// DefaultConfigFile is where the daemon reads its limits; the package
// ships it with every setting commented out at its default.
const DefaultConfigFile = "/etc/ovpn3go/helper.conf"

// limits keep one local user (or one connection) from degrading the helper
// for the others; root is not capped by the per-user ones. They are set in
// the configuration file and on the command line, which wins.
type limits struct {
	profiles      configmgr.Limits // incl. the Import rate
	sessions      int              // sessionmgr.Options.MaxSessionsPerUser
	usableWithin  time.Duration    // sessionmgr.Options.UsableWithin
	newTunnelRate ratelimit.Rate
	bus           busobj.Limits // work per D-Bus sender
}

// defaultLimits are the limits without configuration file or flag.
func defaultLimits() limits {
	return limits{profiles: configmgr.DefaultLimits, sessions: sessionmgr.DefaultMaxSessionsPerUser,
		usableWithin: sessionmgr.DefaultUsableWithin, newTunnelRate: sessionmgr.DefaultNewTunnelRate, bus: busobj.DefaultLimits}
}

// limitKeys are the flags the configuration file may set, in the order
// the shipped file lists them.
var limitKeys = []string{
	"max-profiles-per-user", "max-profile-bytes-per-user", "import-rate",
	"max-sessions-per-user", "session-usable-within", "new-tunnel-rate",
	"calls-per-sender", "queued-calls-per-sender", "signals-per-sender",
}

// rateFlag reads a ratelimit.Rate ("<per minute>/<burst>" or 0).
type rateFlag struct{ r *ratelimit.Rate }

func (f rateFlag) String() string {
	if f.r == nil {
		return ""
	}
	if f.r.PerMinute == 0 {
		return "0"
	}
	return f.r.String()
}

func (f rateFlag) Set(s string) error {
	r, err := ratelimit.Parse(s)
	if err != nil {
		return err
	}
	*f.r = r
	return nil
}

// positive is an int flag that refuses 0 and negative values.
type positive struct{ n *int }

func (p positive) String() string {
	if p.n == nil {
		return ""
	}
	return fmt.Sprint(*p.n)
}

func (p positive) Set(s string) error {
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil || fmt.Sprint(n) != s || n <= 0 {
		return fmt.Errorf("%q is not a positive whole number", s)
	}
	*p.n = n
	return nil
}

// duration is a duration flag that refuses 0 and negative values.
type duration struct{ d *time.Duration }

func (d duration) String() string {
	if d.d == nil {
		return ""
	}
	return d.d.String()
}

func (d duration) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil || v <= 0 {
		return fmt.Errorf("%q is not a positive duration (like 90s or 10m)", s)
	}
	*d.d = v
	return nil
}

func limitFlags(fs *flag.FlagSet) *limits {
	l := defaultLimits()
	fs.Var(positive{&l.profiles.MaxProfiles}, "max-profiles-per-user", "configuration profiles one user (not root) may hold")
	fs.Var(positive{&l.profiles.MaxProfileBytes}, "max-profile-bytes-per-user", "bytes of profile text one user's (not root's) profiles may hold together")
	fs.Var(rateFlag{&l.profiles.ImportRate}, "import-rate", "Import calls one user (not root) may make: <per minute>/<burst>, 0 for no limit")
	fs.Var(positive{&l.sessions}, "max-sessions-per-user", "VPN sessions one user (not root) may have running or starting")
	fs.Var(duration{&l.usableWithin}, "session-usable-within", "a session neither connected nor waiting for the user this long after its backend started is ended")
	fs.Var(rateFlag{&l.newTunnelRate}, "new-tunnel-rate", "NewTunnel calls one user (not root) may make: <per minute>/<burst>, 0 for no limit")
	fs.Var(positive{&l.bus.WorkersPerSender}, "calls-per-sender", "calls of one D-Bus connection run at once (in order of arrival)")
	fs.Var(positive{&l.bus.QueuePerSender}, "queued-calls-per-sender", "calls of one D-Bus connection that may wait; more are refused")
	fs.Var(positive{&l.bus.SignalsPerSender}, "signals-per-sender", "signals of one D-Bus connection that may wait per receiver; more are dropped")
	return &l
}

func configFileGiven(fs *flag.FlagSet) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "config" })
	return given
}

// loadConfig applies the configuration file's settings to fs's flags that
// the command line did not set. A missing file is fine unless it was
// asked for; a bad line is an error naming the file and the line.
func loadConfig(fs *flag.FlagSet, path string, required bool) error {
	f, err := os.Open(path)
	if errors.Is(err, iofs.ErrNotExist) && !required {
		return nil
	}
	if err != nil {
		return fmt.Errorf("configuration file: %w", err)
	}
	defer f.Close()
	onCommandLine := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCommandLine[f.Name] = true })
	known := map[string]bool{}
	for _, k := range limitKeys {
		known[k] = true
	}
	seen := map[string]int{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		switch {
		case !ok:
			return fmt.Errorf("%s:%d: want key = value, got %q", path, n, line)
		case !known[key]:
			return fmt.Errorf("%s:%d: unknown setting %q", path, n, key)
		case seen[key] != 0:
			return fmt.Errorf("%s:%d: %s already set on line %d", path, n, key, seen[key])
		}
		seen[key] = n
		if onCommandLine[key] {
			continue
		}
		if err := fs.Set(key, value); err != nil {
			return fmt.Errorf("%s:%d: %s: %w", path, n, key, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("configuration file %s: %w", path, err)
	}
	return nil
}
