package netcfg

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
)

// Describe applies settings as the methods and property Sets of the same
// names do, and refuses what they refuse, what is not a setting (Establish,
// Destroy, unknown names) and arguments of the wrong number or type, with
// an error naming the setting.
func TestDescribeRefuses(t *testing.T) {
	f := newFixture(t, "ncdsc")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var path dbus.ObjectPath
	if err := f.conn.Object(api.ServiceNetCfg, api.PathNetCfg).CallWithContext(ctx, api.InterfaceNetCfg+".CreateVirtualInterface", 0, "tokd").Store(&path); err != nil {
		t.Fatal(err)
	}
	dev := f.conn.Object(api.ServiceNetCfg, path)
	v := dbus.MakeVariant
	describe := func(list ...describeSetting) error {
		return dev.CallWithContext(ctx, api.InterfaceNetCfg+".Describe", 0, list).Err
	}
	for _, tc := range []struct {
		s    describeSetting
		want string
	}{
		{describeSetting{Name: "mtu", Args: []dbus.Variant{v(uint16(100))}}, "minimum 576"},
		{describeSetting{Name: "mtu", Args: []dbus.Variant{v("1400")}}, "mtu is of type q"},
		{describeSetting{Name: "AddIPAddress", Args: []dbus.Variant{v("10.8.0.2"), v(uint32(24))}}, "takes 4 arguments"},
		{describeSetting{Name: "AddIPAddress", Args: []dbus.Variant{v("10.8.0.300"), v(uint32(24)), v(""), v(false)}}, "[AddIPAddress]"},
		{describeSetting{Name: "AddNetworks", Args: []dbus.Variant{v([]string{"x"})}}, "AddNetworks argument 0"},
		{describeSetting{Name: "Establish", Args: nil}, "not a setting"},
		{describeSetting{Name: "Destroy", Args: nil}, "not a setting"},
		{describeSetting{Name: "owner", Args: []dbus.Variant{v(uint32(0))}}, "not a setting"},
	} {
		if err := describe(tc.s); err == nil || !strings.Contains(api.ErrorText(err), tc.want) {
			t.Errorf("Describe %s %v: %v, want an error with %q", tc.s.Name, tc.s.Args, err, tc.want)
		}
	}
	// Applied in order; the first refusal stops the rest.
	err := describe(describeSetting{Name: "mtu", Args: []dbus.Variant{v(uint16(1400))}},
		describeSetting{Name: "AddNetworks", Args: []dbus.Variant{v([]network{{Address: "192.168.50.0", Prefix: 24, Metric: -1}})}},
		describeSetting{Name: "reroute_ipv4", Args: []dbus.Variant{v(true)}},
		describeSetting{Name: "dns_scope", Args: []dbus.Variant{v("bogus")}},
		describeSetting{Name: "reroute_ipv6", Args: []dbus.Variant{v(true)}})
	if err == nil {
		t.Fatal("a bad dns_scope was accepted")
	}
	checkProp(t, dev, "mtu", uint16(1400))
	checkProp(t, dev, "reroute_ipv4", true)
	checkProp(t, dev, "reroute_ipv6", false)
	f.svc.mu.Lock()
	d := f.svc.devices[path]
	f.svc.mu.Unlock()
	d.mu.Lock()
	nets := len(d.networks)
	d.mu.Unlock()
	if nets != 1 {
		t.Errorf("%d networks queued, want 1", nets)
	}
}

// EstablishWith refuses what Describe refuses and then establishes
// nothing: a prepared device stays down, without addresses or routes, and
// the object can still be destroyed without leftovers.
func TestEstablishWithRefusalEstablishesNothing(t *testing.T) {
	f := newFixture(t, "ncdew")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	path, err := f.client.Prepare(ctx, "tokw", false)
	if err != nil {
		t.Fatal(err)
	}
	dev := f.conn.Object(api.ServiceNetCfg, path)
	v := dbus.MakeVariant
	list := []describeSetting{
		{Name: "AddIPAddress", Args: []dbus.Variant{v("10.8.0.2"), v(uint32(24)), v(""), v(false)}},
		{Name: "reroute_ipv4", Args: []dbus.Variant{v(true)}},
		{Name: "dns_scope", Args: []dbus.Variant{v("bogus")}},
	}
	var fd dbus.UnixFD
	err = dev.CallWithContext(ctx, api.InterfaceNetCfg+".EstablishWith", 0, list).Store(&fd)
	if err == nil || !strings.Contains(api.ErrorText(err), "dns_scope") {
		t.Fatalf("EstablishWith with a bad dns_scope: %v", err)
	}
	checkProp(t, dev, "device_name", "")
	for r := range f.routes(t) {
		if !f.baseline[r] {
			t.Errorf("route after a refused EstablishWith: %s", r)
		}
	}
	if err := f.client.Destroy(ctx, path); err != nil {
		t.Fatal(err)
	}
	f.waitClean(t)
}
