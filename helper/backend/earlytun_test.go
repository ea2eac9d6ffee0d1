package backend

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/netcfg"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
)

// While the handshake runs the backend has netcfg create the TUN device:
// with a server that never answers it appears although no PUSH_REPLY can
// have come, at registration already, where the handshake begins
// (preconnect). However the session ends before it is established (a
// Disconnect before or after the Connect, the attempt failing), the device
// and its object go.
func TestEarlyTunDevice(t *testing.T) {
	for _, end := range []string{"disconnect before connect", "disconnect", "failed"} {
		t.Run(end, func(t *testing.T) {
			r := newRig(t)
			nl := r.withNetcfg(t)
			sink, err := net.ListenPacket("udp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer sink.Close()
			cfg := r.importProfile(t, fmt.Sprintf("127.0.0.1 %d", sink.LocalAddr().(*net.UDPAddr).Port))
			path := r.newTunnel(t, cfg)
			sess := r.client.Object(api.ServiceSessions, path)
			waitTunLinks(t, nl, 1) // no Connect yet
			for _, m := range []string{"Ready", "Connect"} {
				if end == "disconnect before connect" {
					break
				}
				if err := sess.Call(api.InterfaceSessions+"."+m, 0).Err; err != nil {
					t.Fatalf("%s: %v", m, err)
				}
			}
			if end != "failed" {
				if err := sess.Call(api.InterfaceSessions+".Disconnect", 0).Err; err != nil {
					t.Fatalf("Disconnect: %v", err)
				}
			} else {
				r.wait(t, "CONN_FAILED", status(path, api.StatusMinorConnFailed))
			}
			r.wait(t, "SESS_DESTROYED", destroyed(path))
			waitTunLinks(t, nl, 0)
			var devices []dbus.ObjectPath
			if err := r.client.Object(api.ServiceNetCfg, api.PathNetCfg).Call(api.InterfaceNetCfg+".FetchInterfaceList", 0).Store(&devices); err != nil {
				t.Fatal(err)
			}
			if len(devices) != 0 {
				t.Errorf("device objects left: %v", devices)
			}
		})
	}
}

// withNetcfg serves netcfg on the rig's bus, making its devices in a
// namespace of the test's own; it returns a netlink handle there.
func (r *rig) withNetcfg(t *testing.T) *netlink.Handle {
	t.Helper()
	_, h, nl := clientNamespace(t)
	svc := netcfg.NewService(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	svc.SetNetNS(h)
	svc.SetBackends(r.manager.BackendCaller) // as ovpn3-helper wires it
	if err := svc.Export(r.srv); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	if err := r.srv.RequestName(api.ServiceNetCfg); err != nil {
		t.Fatal(err)
	}
	return nl
}

// waitTunLinks waits until the namespace has n TUN devices.
func waitTunLinks(t *testing.T, nl *netlink.Handle, n int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second) // a hang guard, not a speed check
	for {
		links, err := nl.LinkList()
		if err != nil {
			t.Fatal(err)
		}
		var tun []string
		for _, l := range links {
			if l.Type() == "tuntap" {
				tun = append(tun, l.Attrs().Name)
			}
		}
		if len(tun) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("TUN devices %v, want %d", tun, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// clientNamespace makes a test-bed pair and returns it with a handle of
// its client namespace and a netlink handle there, all closed in cleanup.
func clientNamespace(t *testing.T) (*testbed.Pair, netns.NsHandle, *netlink.Handle) {
	t.Helper()
	pair := testbed.NetPair(t)
	h, err := netns.GetFromName(pair.ClientNS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nl.Close)
	return pair, h, nl
}
