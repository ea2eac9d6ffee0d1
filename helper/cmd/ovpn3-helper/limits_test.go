package main

import (
	"flag"
	"io"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/configmgr"
)

// TestLimitFlags: the per-user caps come from the daemon's command line,
// with the documented defaults when not given.
func TestLimitFlags(t *testing.T) {
	parse := func(args ...string) limits {
		fs := flag.NewFlagSet("ovpn3-helper", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		l := limitFlags(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatalf("parse %v: %v", args, err)
		}
		return *l
	}
	if got := parse(); got != defaultLimits() || got.profiles != configmgr.DefaultLimits {
		t.Errorf("no flags: %+v, want the defaults %+v", got, configmgr.DefaultLimits)
	}
	got := parse("--max-profiles-per-user", "5", "--max-profile-bytes-per-user", "4096",
		"--max-sessions-per-user", "3", "--session-usable-within", "90s")
	want := limits{profiles: configmgr.Limits{MaxProfiles: 5, MaxProfileBytes: 4096}, sessions: 3, usableWithin: 90 * time.Second}
	if got != want {
		t.Errorf("flags: %+v, want %+v", got, want)
	}
}
