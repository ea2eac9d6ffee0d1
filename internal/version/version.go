// Package version is the one place the ovpn3go release is written down. The
// Makefile sets it at link time from its VERSION variable:
//
//	go build -ldflags "-X github.com/ovpn3go/ovpn3go/internal/version.Version=$(VERSION)"
//
// A plain `go build` or `go install` reports "dev".
package version

import (
	"strings"

	"github.com/ovpn3go/ovpn3go/helper/api"
)

// Version is the release, e.g. "0.4.0"; "dev" when not set by the build.
var Version = "dev"

// Service is the value of the services' version properties: openvpn3's
// API level first, in the form clients parse for feature flags
// (v<major>[_<word>]…, spec §2.0), then our release with every character
// a \w does not match replaced by "_": "v27_ovpn3go_0_4_0".
func Service() string {
	var b strings.Builder
	b.WriteString(api.Version + "_ovpn3go_")
	for _, r := range Version {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}
