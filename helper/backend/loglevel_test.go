package backend

import (
	"testing"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
)

// TestLogLevelFromProfile: the profile's verb sets the session's log level.
func TestLogLevelFromProfile(t *testing.T) {
	const base = "client\ndev tun\nremote 192.0.2.1\nauth-user-pass\n<ca>\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n</ca>\n"
	for extra, want := range map[string]uint32{"verb 5\n": 5, "verb 11\n": api.MaxLogLevel, "verb 0\n": 3} {
		p, err := profile.Parse(base + extra)
		if err != nil {
			t.Fatal(err)
		}
		if got := profileLogLevel(p, 3); got != want {
			t.Errorf("%q: log level %d, want %d", extra, got, want)
		}
	}
}
