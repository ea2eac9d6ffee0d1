package backend

import (
	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
)

// profileLogLevel is the session's log level once the profile is known:
// the profile's verb (capped at the D-Bus maximum) when it sets one, else
// cur.
func profileLogLevel(p *profile.Profile, cur uint32) uint32 {
	if p.Verb > 0 {
		return min(uint32(p.Verb), api.MaxLogLevel)
	}
	return cur
}
