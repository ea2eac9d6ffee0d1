package profile

import (
	"strings"
	"testing"
)

// TestProfileDNSOptions: "dhcp-option" and "dns" in a profile are taken
// like pushed ones; a "dns" sub-option this client does not know is
// skipped with a warning naming its line instead of refusing the profile.
func TestProfileDNSOptions(t *testing.T) {
	text := minimal + "dhcp-option DNS 10.10.0.53\ndns server 1 address 10.10.0.54:5353\n" +
		"dns server 1 frobnicate yes\ndns exclude-domains x.example\n"
	p, err := Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.NetOptions) != 4 {
		t.Errorf("net options %q", p.NetOptions)
	}
	var warns []string
	for _, w := range p.Warnings {
		warns = append(warns, w.String())
	}
	all := strings.Join(warns, "\n")
	for _, want := range []string{"line 12: option 'dns'", `unknown keyword "frobnicate"`, "line 13: option 'dns'", `unknown sub-option "exclude-domains"`} {
		if !strings.Contains(all, want) {
			t.Errorf("warnings lack %q:\n%s", want, all)
		}
	}
	if _, err := Parse(minimal + "dns server 1 address nowhere\n"); err == nil {
		t.Error("a bad dns server address was accepted")
	}
}
