package version

import (
	"regexp"
	"testing"
)

// The C++ configuration proxy of openvpn3 enables tags and Validate only
// for versions matching this (spec §2.0); a v… string that does not match
// switches every feature off.
var featureRegexp = regexp.MustCompile(`^v(\d+)(|\.\d+)(_\w*)*$`)

func TestServiceVersionKeepsOpenvpn3Features(t *testing.T) {
	old := Version
	defer func() { Version = old }()
	for _, v := range []string{"dev", "0.4.0", "1.2.3-rc1+g1234abc", "ä b"} {
		Version = v
		s := Service()
		m := featureRegexp.FindStringSubmatch(s)
		if m == nil || m[1] != "27" {
			t.Errorf("Version %q: service version %q does not parse as API level 27", v, s)
		}
	}
	Version = "0.4.0"
	if s := Service(); s != "v27_ovpn3go_0_4_0" {
		t.Errorf("Service() = %q", s)
	}
}
