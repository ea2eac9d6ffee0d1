package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/busobj"
	"github.com/ovpn3go/ovpn3go/helper/configmgr"
	"github.com/ovpn3go/ovpn3go/helper/ratelimit"
	"github.com/ovpn3go/ovpn3go/helper/sessionmgr"
)

// parseLimits parses args, then the configuration file text (if not
// empty), as runDaemon does.
func parseLimits(t *testing.T, conf string, args ...string) (limits, error) {
	t.Helper()
	fs := flag.NewFlagSet("ovpn3-helper", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	l := limitFlags(fs)
	path := filepath.Join(t.TempDir(), "helper.conf")
	if conf != "" {
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := fs.Parse(args); err != nil {
		return limits{}, err
	}
	err := loadConfig(fs, path, false)
	return *l, err
}

// TestLimitFlags: the limits come from the daemon's command line, with the
// documented defaults when not given.
func TestLimitFlags(t *testing.T) {
	got, err := parseLimits(t, "")
	if err != nil || got != defaultLimits() || got.profiles != configmgr.DefaultLimits || got.bus != busobj.DefaultLimits ||
		got.newTunnelRate != sessionmgr.DefaultNewTunnelRate || got.sessions != sessionmgr.DefaultMaxSessionsPerUser {
		t.Errorf("no flags: %+v %v, want the defaults", got, err)
	}
	got, err = parseLimits(t, "", "--max-profiles-per-user", "5", "--max-profile-bytes-per-user", "4096",
		"--max-sessions-per-user", "3", "--session-usable-within", "90s", "--import-rate", "6/2", "--new-tunnel-rate", "0",
		"--calls-per-sender", "2", "--queued-calls-per-sender", "9", "--signals-per-sender", "7")
	want := limits{profiles: configmgr.Limits{MaxProfiles: 5, MaxProfileBytes: 4096, ImportRate: ratelimit.Rate{PerMinute: 6, Burst: 2}},
		sessions: 3, usableWithin: 90 * time.Second, bus: busobj.Limits{WorkersPerSender: 2, QueuePerSender: 9, SignalsPerSender: 7}}
	if err != nil || got != want {
		t.Errorf("flags: %+v %v, want %+v", got, err, want)
	}
	for _, bad := range [][]string{{"--max-sessions-per-user", "0"}, {"--session-usable-within", "-1s"}, {"--import-rate", "5"}, {"--calls-per-sender", "x"}} {
		if _, err := parseLimits(t, "", bad...); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// TestConfigFile: the file sets every limit, the command line wins over it,
// and a bad line is refused with its line number.
func TestConfigFile(t *testing.T) {
	conf := "# limits\n\nmax-profiles-per-user = 7\n  max-sessions-per-user=2  \nimport-rate = 12/4\nqueued-calls-per-sender = 3\n"
	got, err := parseLimits(t, conf, "--max-sessions-per-user", "5")
	if err != nil {
		t.Fatal(err)
	}
	want := defaultLimits()
	want.profiles.MaxProfiles, want.sessions, want.profiles.ImportRate, want.bus.QueuePerSender = 7, 5, ratelimit.Rate{PerMinute: 12, Burst: 4}, 3
	if got != want {
		t.Errorf("file + flag: %+v, want %+v", got, want)
	}
	for conf, wantErr := range map[string]string{
		"max-profiles-per-user = 7\nmax-sessions-per-user\n":          "helper.conf:2: want key = value",
		"\n\nstate-dir = /tmp\n":                                      `helper.conf:3: unknown setting "state-dir"`,
		"import-rate = 5\n":                                           "helper.conf:1: import-rate: rate",
		"max-sessions-per-user = 1\n# x\nmax-sessions-per-user = 2\n": "helper.conf:3: max-sessions-per-user already set on line 1",
		"session-usable-within = 0\n":                                 "helper.conf:1: session-usable-within:",
		"max-profile-bytes-per-user = 8MiB\n":                         "helper.conf:1: max-profile-bytes-per-user:",
	} {
		if _, err := parseLimits(t, conf); err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("%q: %v, want %q", conf, err, wantErr)
		}
	}
	// A missing default file is fine; a missing file asked for is not.
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	limitFlags(fs)
	if err := loadConfig(fs, filepath.Join(t.TempDir(), "none"), true); err == nil {
		t.Error("missing --config file accepted")
	}
}

// TestShippedConfigIsDefaults: the commented file the package installs
// names every setting with its real default; uncommented it changes nothing.
func TestShippedConfigIsDefaults(t *testing.T) {
	b, err := os.ReadFile("../../../packaging/deb/helper.conf")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, line := range strings.Split(string(b), "\n") {
		if k, ok := strings.CutPrefix(line, "#"); ok && strings.Contains(k, "=") && !strings.HasPrefix(k, " ") {
			lines = append(lines, k)
		}
	}
	if len(lines) != len(limitKeys) {
		t.Fatalf("shipped file lists %d settings, want all %d: %q", len(lines), len(limitKeys), lines)
	}
	got, err := parseLimits(t, strings.Join(lines, "\n"))
	if err != nil || got != defaultLimits() {
		t.Errorf("shipped defaults: %+v %v, want %+v", got, err, defaultLimits())
	}
}
