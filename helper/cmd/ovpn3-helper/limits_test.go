package main

import (
	"flag"
	"io"
	"testing"

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
	got := parse("--max-profiles-per-user", "5", "--max-profile-bytes-per-user", "4096")
	if want := (configmgr.Limits{MaxProfiles: 5, MaxProfileBytes: 4096}); got.profiles != want {
		t.Errorf("flags: %+v, want %+v", got.profiles, want)
	}
}
