package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/vishvananda/netns"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/netcfg/dco"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// watchLog records every Log signal on the stack's bus (the backend's, as
// the log service and front-ends receive them).
func watchLog(t *testing.T, st *testbed.Stack) *testbed.Watcher {
	t.Helper()
	w, err := testbed.WatchSignals(st.Bus.Address, "type='signal',member='Log'")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// logLines are the messages of the Log signals w saw that contain text.
func logLines(w *testbed.Watcher, text string) []string {
	var out []string
	for _, s := range w.Signals() {
		for _, v := range s.Body {
			if m, ok := v.(string); ok && strings.Contains(m, text) {
				out = append(out, m)
			}
		}
	}
	return out
}

// dcoSession starts a session of profile name that asks for data channel
// offload — through the session's dco property, or (viaProfile) the
// profile's, which the session inherits — and waits until it is connected.
func dcoSession(t *testing.T, st *testbed.Stack, name string, viaProfile bool) dbus.ObjectPath {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if viaProfile {
		cfg := st.Conn.Object(api.ServiceConfiguration, configPath(t, st, name))
		if err := cfg.CallWithContext(ctx, api.InterfaceProperties+".Set", 0, api.InterfaceConfiguration, "dco", dbus.MakeVariant(true)).Err; err != nil {
			t.Fatalf("set the profile's dco: %v", err)
		}
	}
	path, sess := newSession(t, st, name)
	if !viaProfile {
		if err := sess.CallWithContext(ctx, api.InterfaceProperties+".Set", 0, api.InterfaceSessions, "dco", dbus.MakeVariant(true)).Err; err != nil {
			t.Fatalf("set dco: %v", err)
		}
	}
	if v, err := st.SessionProperty(ctx, path, "dco"); err != nil || v.Value() != true {
		t.Fatalf("dco before Connect = %v (%v), want the request (true)", v, err)
	}
	for _, m := range []string{"Ready", "Connect"} {
		if err := sessCall(sess, m).Err; err != nil {
			t.Fatalf("%s: %v", m, err)
		}
	}
	for {
		s := sessionStatus(t, st, path)
		if s.Major == api.StatusMajorConnection && s.Minor == api.StatusMinorConnConnected {
			return path
		}
		if ctx.Err() != nil {
			t.Fatalf("not connected: %+v", s)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// sessionDevice is the session's device_name.
func sessionDevice(t *testing.T, st *testbed.Stack, path dbus.ObjectPath) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := st.SessionProperty(ctx, path, "device_name")
	if err != nil {
		t.Fatalf("device_name: %v", err)
	}
	name, _ := v.Value().(string)
	return name
}

// TestDCOFallsBackToTUN: on a kernel without the ovpn module, a session
// that asks for data channel offload (through its own dco property, or
// its profile's) connects over a TUN device, passes traffic, its dco
// property then reads false, and the log says why in one sentence.
func TestDCOFallsBackToTUN(t *testing.T) {
	testenv.RequireRoot(t)
	if ok, _ := dco.Available(netns.None()); ok {
		t.Skip("this kernel has the ovpn module: a session that asks for DCO gets it (TestDCOKernel); the fallback is for kernels without it")
	}
	t.Parallel()
	st := routingStack(t)
	w := watchLog(t, st)
	for _, viaProfile := range []bool{false, true} {
		name := "dco-session"
		if viaProfile {
			name = "dco-profile"
		}
		importProfile(t, st, testbed.VariantI, name)
		path := dcoSession(t, st, name, viaProfile)
		pingOK(t, st.Pair.ClientNS, testbed.TunnelServer4, name+": over the TUN fallback")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if v, err := st.SessionProperty(ctx, path, "dco"); err != nil || v.Value() != false {
			t.Errorf("%s: dco while connected = %v (%v), want false: the session runs on TUN", name, v, err)
		}
		cancel()
		dev := sessionDevice(t, st, path)
		if out := ipIn(t, st.Pair.ClientNS, "-d", "link", "show", "dev", dev); !strings.Contains(out, "tun") {
			t.Errorf("%s: device %s is not a TUN device:\n%s", name, dev, out)
		}
		if err := sessCall(st.Conn.Object(api.ServiceSessions, path), "Disconnect").Err; err != nil {
			t.Fatalf("%s: Disconnect: %v", name, err)
		}
	}
	// One sentence per session, saying what happened and why.
	const why = `Data channel offload (DCO) was requested; this session uses a TUN device instead (the kernel has no ovpn module (generic netlink family "ovpn"))`
	if got := logLines(w, "Data channel offload"); len(got) != 2 || got[0] != why || got[1] != why {
		t.Errorf("the log about DCO: %q, want %q once per session", got, why)
	}
}

// TestDCOKernel runs the real data channel offload: with the kernel's ovpn
// module a session that asks for DCO connects through an ovpn device, the
// kernel carries its traffic, and dco reads true. It skips only on a
// kernel without the module, and says so.
func TestDCOKernel(t *testing.T) {
	testenv.RequireRoot(t)
	if ok, why := dco.Available(netns.None()); !ok {
		t.Skipf("the kernel has no ovpn module (generic netlink family \"ovpn\", Linux 6.16+): %s", why)
	}
	t.Parallel()
	st := routingStack(t)
	w := watchLog(t, st)
	importProfile(t, st, testbed.VariantI, "dco-kernel")
	path := dcoSession(t, st, "dco-kernel", false)
	pingOK(t, st.Pair.ClientNS, testbed.TunnelServer4, "over the kernel's data channel")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if v, err := st.SessionProperty(ctx, path, "dco"); err != nil || v.Value() != true {
		t.Errorf("dco while connected = %v (%v), want true", v, err)
	}
	dev := sessionDevice(t, st, path)
	if out := ipIn(t, st.Pair.ClientNS, "-d", "link", "show", "dev", dev); !strings.Contains(out, "ovpn") {
		t.Errorf("device %s is not an ovpn device:\n%s", dev, out)
	}
	if got := logLines(w, "The kernel carries the data channel (DCO) (device "+dev+")"); len(got) != 1 {
		t.Errorf("the log does not say once that the kernel carries the data channel: %q", got)
	}
}
