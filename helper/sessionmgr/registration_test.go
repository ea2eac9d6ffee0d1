package sessionmgr

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/busobj"
	"github.com/ovpn3go/ovpn3go/helper/busobj/busobjtest"
	"github.com/ovpn3go/ovpn3go/helper/polkit"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// forge sends a RegistrationRequest from c to the session manager.
func forge(t *testing.T, c *dbus.Conn, manager, busName, token string, pid int32) {
	t.Helper()
	msg := &dbus.Message{Type: dbus.TypeSignal, Headers: map[dbus.HeaderField]dbus.Variant{
		dbus.FieldPath:        dbus.MakeVariant(api.PathBackendSession),
		dbus.FieldInterface:   dbus.MakeVariant(api.InterfaceBackends),
		dbus.FieldMember:      dbus.MakeVariant("RegistrationRequest"),
		dbus.FieldDestination: dbus.MakeVariant(manager),
		dbus.FieldSignature:   dbus.MakeVariant(dbus.SignatureOf(busName, token, pid)),
	}, Body: []any{busName, token, pid}}
	if err := c.Send(msg, nil).Err; err != nil {
		t.Fatalf("forge: %v", err)
	}
}

// While NewTunnel waits for its backend, forged RegistrationRequests — from
// a stranger and from another process of the backend user, with the right
// token and PID (as if the token had leaked), and with wrong ones — neither
// kill the real backend nor make NewTunnel fail or wait longer than the
// real registration.
func TestForgedRegistrationRequest(t *testing.T) {
	r := newRig(t, "slowreg", Options{StartTimeout: 30 * time.Second})
	markerPath, done, token, proc := startSlowReg(t, r)
	pid := int32(proc.Pid())
	busName := api.BackendBusName(uint32(pid))
	var manager string
	if err := r.client.BusObject().Call("org.freedesktop.DBus.GetNameOwner", 0, api.ServiceSessions).Store(&manager); err != nil {
		t.Fatal(err)
	}
	beUID, beGID := testenv.EnsureBackendUser(t)
	stranger := busobjtest.DialAs(t, r.addr, 65534, 65534)
	otherBackend := busobjtest.DialAs(t, r.addr, beUID, beGID)
	for _, c := range []*dbus.Conn{stranger, otherBackend} {
		forge(t, c, manager, busName, "not-the-token", pid)
		forge(t, c, manager, busName, token+"x", pid)
		// counted as refused for this token:
		forge(t, c, manager, busName, token, pid)                // verified and refused
		forge(t, c, manager, busName, token, int32(os.Getpid())) // not the started pid
		forge(t, c, manager, api.BackendBusName(1), token, 1)    // idem
	}
	const counted = 6
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		r.m.mu.Lock()
		ps := r.m.pending[token]
		n := -1
		if ps != nil {
			n = ps.refused
		}
		r.m.mu.Unlock()
		if n == counted {
			break
		}
		if n < 0 || n > counted || time.Now().After(deadline) {
			t.Fatalf("%d forged requests refused, want %d (pending: %v)", n, counted, ps != nil)
		}
	}
	select {
	case res := <-done:
		t.Fatalf("NewTunnel returned before the real backend registered: %v %v", res.path, res.err)
	case <-proc.Done():
		t.Fatalf("the real backend died after the forged requests: %s", proc.ExitReason())
	default:
	}
	if err := os.WriteFile(markerPath, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var res startResult
	select {
	case res = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("NewTunnel did not return after the real registration")
	}
	if res.err != nil {
		t.Fatalf("NewTunnel: %v", res.err)
	}
	s := r.m.session(res.path)
	if s == nil || s.backendPID != uint32(pid) || s.busName != busName {
		t.Fatalf("session %+v, want the real backend %d", s, pid)
	}
	select {
	case <-proc.Done():
		t.Fatalf("real backend ended: %s", proc.ExitReason())
	default:
	}
}

// Without polkitd on the bus the session's UID rules alone decide, as
// polkit/net.ovpn3go.policy, the README and authz.go say: control-own is
// not asked (the owner starts and connects), and nobody gets beyond the
// ACL (control-other cannot be granted).
func TestPolkitAbsentACLDecides(t *testing.T) {
	r := newRig(t, "ok", Options{Polkit: polkitOnRigBus}) // the rig's bus runs no polkitd
	mgr := r.client.Object(api.ServiceSessions, api.PathSessions)
	var path dbus.ObjectPath
	if err := mgr.Call(api.InterfaceSessions+".NewTunnel", 0, testConfig).Store(&path); err != nil {
		t.Fatalf("owner's NewTunnel without polkitd: %v", err)
	}
	stranger := busobjtest.DialAs(t, r.addr, 65534, 65534)
	for _, m := range []string{"Connect", "Disconnect", "Pause"} {
		args := []any{}
		if m == "Pause" {
			args = append(args, "why")
		}
		err := stranger.Object(api.ServiceSessions, path).Call(api.InterfaceSessions+"."+m, 0, args...).Err
		if !api.IsDomain(err, api.DomainGDBusPP) || errText(err) != textAccessDenied {
			t.Errorf("stranger's %s without polkitd: %v, want %q", m, err, textAccessDenied)
		}
	}
	if err := r.client.Object(api.ServiceSessions, path).Call(api.InterfaceSessions+".Connect", 0).Err; err != nil {
		t.Errorf("owner's Connect without polkitd: %v", err)
	}
	if err := r.client.Object(api.ServiceSessions, path).Call(api.InterfaceSessions+".Disconnect", 0).Err; err != nil {
		t.Errorf("owner's Disconnect without polkitd: %v", err)
	}
}

// TestRegistrationFromCaches: once busobj has seen the backend (who owns
// its name, who its connection is — as after the real backend's calls to
// the log service before it registers), verifying its RegistrationRequest
// asks the bus nothing.
func TestRegistrationFromCaches(t *testing.T) {
	r := newRig(t, "slowreg", Options{StartTimeout: 30 * time.Second})
	markerPath, done, _, proc := startSlowReg(t, r)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	busName := api.BackendBusName(uint32(proc.Pid()))
	var owner string
	for { // the fake takes its name, then waits for the marker
		var err error
		if owner, err = r.srv.NameOwner(ctx, busName); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the backend never owned %s: %v", busName, err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if _, _, err := r.srv.Credentials(ctx, owner); err != nil {
		t.Fatal(err)
	}
	mon, err := testbed.MonitorCalls(r.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer mon.Close()
	registerUnasked(ctx, t, r, mon, markerPath, done, busName, owner)
}

// registerUnasked lets the slowreg backend (owner, owning busName) register
// and fails t if the manager asked the bus about either meanwhile.
func registerUnasked(ctx context.Context, t *testing.T, r *testRig, mon *testbed.CallMonitor, markerPath string, done <-chan startResult, busName, owner string) {
	t.Helper()
	if err := os.WriteFile(markerPath, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if res := <-done; res.err != nil {
		t.Fatal(res.err)
	}
	if err := mon.Sync(ctx, r.client); err != nil {
		t.Fatal(err)
	}
	manager := r.srv.Conn().Names()[0]
	for _, c := range mon.Calls() {
		// (The manager also learns the log service's owner once, as the
		// backend's first status goes there: not part of the check.)
		if c.Sender == manager && c.Destination == "org.freedesktop.DBus" && len(c.Body) == 1 && (c.Body[0] == busName || c.Body[0] == owner) {
			t.Errorf("verifying the registration, the manager asked the bus %s %v", c, c.Body)
		}
	}
}

type startResult struct {
	path dbus.ObjectPath
	err  error
}

// startSlowReg starts NewTunnel on a rig of "slowreg" fakes and returns
// once the backend runs (it registers when markerPath exists); done gets
// NewTunnel's result.
func startSlowReg(t *testing.T, r *testRig) (markerPath string, done <-chan startResult, token string, proc Process) {
	t.Helper()
	for _, e := range r.m.launcher.(*ExecLauncher).Env {
		if v, ok := strings.CutPrefix(e, fakeMarkerEnv+"="); ok {
			markerPath = v
		}
	}
	if markerPath == "" {
		t.Fatal("no marker path in the fake's environment")
	}
	ch := make(chan startResult, 1)
	go func() {
		p, err := r.m.NewTunnel(1000, testConfig)
		ch <- startResult{p, err}
	}()
	// The started backend, waiting for the marker before registering.
	for deadline := time.Now().Add(20 * time.Second); proc == nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no pending backend")
		}
		r.m.mu.Lock()
		for tok, ps := range r.m.pending {
			if ps.proc != nil {
				token, proc = tok, ps.proc
			}
		}
		r.m.mu.Unlock()
	}
	return markerPath, ch, token, proc
}

// TestSpareLearnedAtHandOver: when NewTunnel hands its token to a spare
// backend (which owns its bus name already), the manager asks the bus who
// owns that name and who that connection is beside the hand-over, before
// the backend registers; verifying the RegistrationRequest then asks the
// bus nothing.
func TestSpareLearnedAtHandOver(t *testing.T) {
	r := newRig(t, "sparereg", Options{StartTimeout: 30 * time.Second})
	l := r.m.launcher.(*ExecLauncher)
	l.Spare, l.SpareDelay = true, time.Hour
	t.Cleanup(func() { _ = l.Close() })
	l.StartSpare()
	pid := waitSpare(t, l, 0)
	busName := api.BackendBusName(uint32(pid))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var owner string
	for { // asked on the test's connection: the manager's caches stay cold
		err := r.client.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.GetNameOwner", 0, busName).Store(&owner)
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the spare never owned %s: %v", busName, err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	mon, err := testbed.MonitorCalls(r.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer mon.Close()
	manager := r.srv.Conn().Names()[0]
	asked := func(member, arg string) bool {
		for _, c := range mon.Calls() {
			if c.Sender == manager && c.Member == member && len(c.Body) == 1 && c.Body[0] == arg {
				return true
			}
		}
		return false
	}
	markerPath, done, _, proc := startSlowReg(t, r)
	if proc.Pid() != pid {
		t.Fatalf("NewTunnel started backend %d, not the spare %d", proc.Pid(), pid)
	}
	// The spare waits for the marker before it registers.
	for !asked("GetNameOwner", busName) || !asked("GetConnectionCredentials", owner) {
		if err := mon.Sync(ctx, r.client); err != nil {
			t.Fatalf("the manager did not learn the spare before it registered: %v (calls %v)", err, mon.Calls())
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the manager did not learn the spare before it registered (calls %v)", mon.Calls())
		case <-time.After(10 * time.Millisecond):
		}
	}
	// The credentials' answer may still be on its way: wait for it.
	if _, _, err := r.srv.Credentials(ctx, owner); err != nil {
		t.Fatal(err)
	}
	mon.Reset()
	registerUnasked(ctx, t, r, mon, markerPath, done, busName, owner)
}

// heldPolkit is an Authorizer whose answers the test gives: asked gets
// every question, answer the reply.
type heldPolkit struct {
	asked  chan string
	answer chan error
}

func (h *heldPolkit) Require(ctx context.Context, _, action string, _ bool) error {
	h.asked <- action
	select {
	case err := <-h.answer:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestNewTunnelPolkitBesideRegistration: NewTunnel's polkit check runs
// beside the backend's hand-over, registration and confirmation (the
// backend is confirmed while polkit has not answered yet), but the backend
// may read the profile (BackendOf, the configuration manager's test for
// FetchForBackend) only after polkit's yes, and NewTunnel answers only
// then. After a no, NewTunnel fails with polkit's refusal, the backend is
// killed without having been let at the profile, and no session appears.
// The caller is an ordinary user (nobody): root is not asked.
func TestNewTunnelPolkitBesideRegistration(t *testing.T) {
	for _, refuse := range []bool{false, true} {
		t.Run(map[bool]string{false: "allowed", true: "refused"}[refuse], func(t *testing.T) {
			h := &heldPolkit{asked: make(chan string, 4), answer: make(chan error, 1)}
			r := newRig(t, "ok", Options{Polkit: h, StartTimeout: 30 * time.Second})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			regs, err := testbed.WatchSignals(r.addr, "type='signal',interface='"+api.InterfaceBackends+"',member='RegistrationRequest'")
			if err != nil {
				t.Fatal(err)
			}
			defer regs.Close()
			mon, err := testbed.MonitorCalls(r.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer mon.Close()
			user := busobjtest.DialAs(t, r.addr, 65534, 65534)
			done := make(chan startResult, 1)
			go func() {
				var p dbus.ObjectPath
				err := user.Object(api.ServiceSessions, api.PathSessions).CallWithContext(ctx, api.InterfaceSessions+".NewTunnel", 0, testConfig).Store(&p)
				done <- startResult{p, err}
			}()
			select {
			case <-h.asked:
			case <-ctx.Done():
				t.Fatal("polkit was not asked")
			}
			reg, err := regs.Wait(ctx, func(s *dbus.Signal) bool { return s.Name == api.InterfaceBackends+".RegistrationRequest" })
			if err != nil {
				t.Fatalf("the backend did not register while polkit was being asked: %v", err)
			}
			// Whether the backend may read the profile, asked as the
			// configuration manager does for its calls; a cancelled
			// context: the answer as it stands, without waiting.
			mayRead := func() bool {
				cctx, ccancel := context.WithCancel(ctx)
				ccancel()
				return r.m.BackendOf(&busobj.Call{Ctx: cctx, Sender: reg.Sender}, testConfig)
			}
			var proc Process
			r.m.mu.Lock()
			for _, ps := range r.m.pending {
				proc = ps.proc
			}
			r.m.mu.Unlock()
			if proc == nil {
				t.Fatal("no pending start")
			}
			confirmed := func() bool {
				if err := mon.Sync(ctx, r.client); err != nil {
					t.Fatal(err)
				}
				for _, c := range mon.Calls() {
					if c.Member == "RegistrationConfirmation" {
						return true
					}
				}
				return false
			}
			for !confirmed() {
				select {
				case <-ctx.Done():
					t.Fatal("the backend was not confirmed while polkit was being asked")
				case <-time.After(10 * time.Millisecond):
				}
			}
			if mayRead() {
				t.Fatal("the backend may read the profile before polkit answered")
			}
			select {
			case res := <-done:
				t.Fatalf("NewTunnel answered before polkit: %v %v", res.path, res.err)
			default:
			}
			if !refuse {
				h.answer <- nil
				res := <-done
				if res.err != nil || !api.IsChildPath(api.PathSessions, res.path) {
					t.Fatalf("NewTunnel after polkit's yes: %v %v", res.path, res.err)
				}
				if !mayRead() {
					t.Error("the backend may not read the profile after polkit's yes")
				}
				return
			}
			h.answer <- errors.New("not authorized")
			res := <-done
			if res.err == nil || errText(res.err) != textAccessDenied {
				t.Fatalf("NewTunnel after polkit's no: %v %v, want %q", res.path, res.err, textAccessDenied)
			}
			select {
			case <-proc.Done():
			case <-ctx.Done():
				t.Fatal("the refused caller's backend still runs")
			}
			if mayRead() {
				t.Error("a refused caller's backend may read the profile")
			}
			if got := r.m.FetchAvailableSessions(0); len(got) != 0 {
				t.Errorf("sessions after a refused NewTunnel: %v", got)
			}
		})
	}
}

// TestRootNotAskedForControlOwn: polkitd authorizes root for every action,
// so root's NewTunnel, Connect and Disconnect go through without a
// question (a heldPolkit never answers one), while an ordinary user's
// NewTunnel still asks.
func TestRootNotAskedForControlOwn(t *testing.T) {
	h := &heldPolkit{asked: make(chan string, 4), answer: make(chan error, 1)}
	r := newRig(t, "ok", Options{Polkit: h, StartTimeout: 30 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	root := busobjtest.DialAs(t, r.addr, 0, 0)
	var path dbus.ObjectPath
	if err := root.Object(api.ServiceSessions, api.PathSessions).CallWithContext(ctx, api.InterfaceSessions+".NewTunnel", 0, testConfig).Store(&path); err != nil {
		t.Fatalf("root's NewTunnel: %v", err)
	}
	for _, m := range []string{"Connect", "Disconnect"} {
		if err := root.Object(api.ServiceSessions, path).CallWithContext(ctx, api.InterfaceSessions+"."+m, 0).Err; err != nil {
			t.Fatalf("root's %s: %v", m, err)
		}
	}
	select {
	case a := <-h.asked:
		t.Fatalf("polkit was asked %s for root", a)
	default:
	}

	user := busobjtest.DialAs(t, r.addr, 65534, 65534)
	h.answer <- nil // NewTunnel's question
	if err := user.Object(api.ServiceSessions, api.PathSessions).CallWithContext(ctx, api.InterfaceSessions+".NewTunnel", 0, testConfig).Store(&path); err != nil {
		t.Fatalf("nobody's NewTunnel: %v", err)
	}
	select {
	case a := <-h.asked:
		if a != polkit.ActionSessionControlOwn {
			t.Errorf("nobody's NewTunnel asked %s, want %s", a, polkit.ActionSessionControlOwn)
		}
	default:
		t.Error("polkit was not asked for nobody's NewTunnel")
	}
}
