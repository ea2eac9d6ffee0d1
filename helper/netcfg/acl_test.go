package netcfg

import (
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/busobj"
	"github.com/ovpn3go/ovpn3go/helper/busobj/busobjtest"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// Only root and the backends (SetBackends: the session manager's) may
// create, change or subscribe; a backend only its own devices. Everyone
// else — here a process of the backend user that is no registered backend,
// which the bus policy lets through — is refused and nothing changes.
func TestOnlyBackendsAndRoot(t *testing.T) {
	f := newFixtureOn(t, "ncbe", busobjtest.StartBus(t))
	uid, gid := testenv.EnsureBackendUser(t)
	be := busobjtest.DialAs(t, f.bus, uid, gid)
	mgr := be.Object(api.ServiceNetCfg, api.PathNetCfg)
	denied := func(what string, err error) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), "Authorization failed") && !api.IsErrorName(err, api.ErrNameAccessDenied) {
			t.Errorf("%s: %v, want refused", what, err)
		}
	}
	nc := api.InterfaceNetCfg
	denied("CreateVirtualInterface by a non-backend", mgr.Call(nc+".CreateVirtualInterface", 0, "tok1").Err)
	denied("NotificationSubscribe by a non-backend", mgr.Call(nc+".NotificationSubscribe", 0, uint32(1)).Err)
	denied("ProtectSocket by a non-backend", mgr.Call(nc+".ProtectSocket", 0, "198.18.0.1", false, dbus.ObjectPath("/")).Err)
	denied("Set log_level by a non-backend", mgr.SetProperty(nc+".log_level", dbus.MakeVariant(uint32(6))))
	f.svc.mu.Lock()
	n, subs := len(f.svc.devices), len(f.svc.subscribers)
	f.svc.mu.Unlock()
	if n != 0 || subs != 0 {
		t.Fatalf("%d devices, %d subscribers after refused calls", n, subs)
	}

	f.svc.SetBackends(func(c *busobj.Call) bool { return c.Sender == be.Names()[0] })
	var own dbus.ObjectPath
	if err := mgr.Call(nc+".CreateVirtualInterface", 0, "tok2").Store(&own); err != nil {
		t.Fatalf("CreateVirtualInterface by a backend: %v", err)
	}
	if err := be.Object(api.ServiceNetCfg, own).Call(nc+".AddIPAddress", 0, "10.98.0.2", uint32(24), "", false).Err; err != nil {
		t.Errorf("AddIPAddress on its own device: %v", err)
	}
	if err := mgr.Call(nc+".NotificationSubscribe", 0, uint32(1)).Err; err != nil {
		t.Errorf("NotificationSubscribe by a backend: %v", err)
	}
	denied("NotificationSubscriberList by a backend", mgr.Call(nc+".NotificationSubscriberList", 0).Err)
	denied("FetchInterfaceList by a backend", mgr.Call(nc+".FetchInterfaceList", 0).Err)

	// root's device is not the backend's
	var roots dbus.ObjectPath
	if err := f.conn.Object(api.ServiceNetCfg, api.PathNetCfg).Call(nc+".CreateVirtualInterface", 0, "tok3").Store(&roots); err != nil {
		t.Fatal(err)
	}
	other := be.Object(api.ServiceNetCfg, roots)
	denied("AddIPAddress on another's device", other.Call(nc+".AddIPAddress", 0, "10.97.0.2", uint32(24), "", false).Err)
	denied("Set mtu on another's device", other.SetProperty(nc+".mtu", dbus.MakeVariant(uint16(1200))))
	_, err := other.GetProperty(nc + ".mtu")
	denied("Get mtu of another's device", err)
	denied("Destroy another's device", other.Call(nc+".Destroy", 0).Err)
	f.svc.mu.Lock()
	d := f.svc.devices[roots]
	f.svc.mu.Unlock()
	if d == nil {
		t.Fatal("root's device gone")
	}
	d.mu.Lock()
	naddr := len(d.addrs)
	d.mu.Unlock()
	if naddr != 0 {
		t.Errorf("root's device got %d addresses from another", naddr)
	}
}
