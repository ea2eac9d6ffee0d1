package backend

import (
	"fmt"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
)

// applyOverrides applies to the profile the configuration's overrides
// (the "overrides" property, dbus-api §2.2.1) that change what the engine
// does. A value the engine cannot honour is an error naming the override.
// Overrides not handled here are left to their owners.
func applyOverrides(p *profile.Profile, ov map[string]dbus.Variant) error {
	if v, ok := ov["allow-compression"]; ok {
		s, ok := v.Value().(string)
		if !ok {
			return fmt.Errorf("override allow-compression: value of type %s, want a string", v.Signature())
		}
		if err := p.SetAllowCompression(s); err != nil {
			return fmt.Errorf("override %w", err)
		}
	}
	return nil
}
