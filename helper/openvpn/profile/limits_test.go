package profile

import (
	"errors"
	"strings"
	"testing"
)

func TestLimitOptions(t *testing.T) {
	p := mustParse(t, minimal+"inactive 5 1000\nsession-timeout 10\nreplay-window 128 30\nreneg-sec 100 60\n")
	if p.Inactive != 5 || p.InactiveBytes != 1000 || p.SessionTimeout != 10 {
		t.Errorf("inactive/session-timeout: %d %d %d", p.Inactive, p.InactiveBytes, p.SessionTimeout)
	}
	if !p.ReplayWindowSet || p.ReplayWindow != 128 || p.ReplayTime != 30 {
		t.Errorf("replay-window: %v %d %d", p.ReplayWindowSet, p.ReplayWindow, p.ReplayTime)
	}
	if !p.RenegSecSet || p.RenegSec != 100 || p.RenegSecMin != 60 {
		t.Errorf("reneg-sec: %v %d %d", p.RenegSecSet, p.RenegSec, p.RenegSecMin)
	}
	for _, w := range p.Warnings {
		t.Errorf("warning for an applied option: %v", w)
	}
	p = mustParse(t, minimal+"replay-window 0\n")
	if !p.ReplayWindowSet || p.ReplayWindow != 0 || p.ReplayTime != -1 {
		t.Errorf("replay-window 0: %v %d %d", p.ReplayWindowSet, p.ReplayWindow, p.ReplayTime)
	}
	if p.RenegSecSet {
		t.Error("reneg-sec set without the option")
	}
	for _, bad := range []string{"inactive", "inactive x", "inactive 5 -1", "session-timeout", "session-timeout 1 2",
		"replay-window", "replay-window 70000", "replay-window 64 601"} {
		_, err := Parse(minimal + bad + "\n")
		var pe *ParseError
		if !errors.As(err, &pe) || len(pe.Problems) == 0 || pe.Problems[0].Line != 10 ||
			!strings.Contains(err.Error(), strings.Fields(bad)[0]) {
			t.Errorf("%q: %v, want a problem naming line 10 and the option", bad, err)
		}
	}
	for _, name := range []string{"inactive", "session-timeout", "replay-window"} {
		if i, _ := Lookup(name); i.Class != Applied {
			t.Errorf("%s classified %v, want applied (the engine applies it)", name, i.Class)
		}
	}
}
