package backend

import (
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
)

// TestAllowCompressionOverride: the allow-compression override sets
// decompress-only mode on the profile (and can turn it off again); a
// value outside no/asym/yes is refused naming the override.
func TestAllowCompressionOverride(t *testing.T) {
	const base = "client\ndev tun\nremote 192.0.2.1\nauth-user-pass\n<ca>\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n</ca>\n"
	p, err := profile.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	if p.Decompress() || p.PushAssembler().Filter.Decompress {
		t.Fatal("decompression on by default")
	}
	if err := applyOverrides(p, map[string]dbus.Variant{"allow-compression": dbus.MakeVariant("asym")}); err != nil {
		t.Fatal(err)
	}
	if !p.Decompress() || !p.PushAssembler().Filter.Decompress {
		t.Error("allow-compression asym override did not turn decompression on")
	}
	p, _ = profile.Parse(base + "allow-compression asym\n")
	if err := applyOverrides(p, map[string]dbus.Variant{"allow-compression": dbus.MakeVariant("no")}); err != nil || p.Decompress() {
		t.Errorf("override no over the profile's asym: %v, decompress %v", err, p.Decompress())
	}
	for _, bad := range []dbus.Variant{dbus.MakeVariant("lz4"), dbus.MakeVariant(true)} {
		if err := applyOverrides(p, map[string]dbus.Variant{"allow-compression": bad}); err == nil || !strings.Contains(err.Error(), "allow-compression") {
			t.Errorf("override %v: %v", bad, err)
		}
	}
}
