package backend

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/busobj"
	"github.com/ovpn3go/ovpn3go/helper/busobj/busobjtest"
	"github.com/ovpn3go/ovpn3go/helper/configmgr"
	"github.com/ovpn3go/ovpn3go/helper/privsep"
	"github.com/ovpn3go/ovpn3go/helper/sessionmgr"
	"github.com/ovpn3go/ovpn3go/helper/sessionmgr/token"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// The test binary doubles as the backend process: with backendEnv set,
// TestMain drops privileges and runs Run with the token from its
// descriptor, as ovpn3-helper's backend mode does.
const backendEnv = "BACKEND_TEST_RUN_BACKEND"

// noPreconnectEnv set: the test backend runs without Options.Preconnect
// (which it has by default, as ovpn3-backend).
const noPreconnectEnv = "BACKEND_TEST_NO_PRECONNECT"

func TestMain(m *testing.M) {
	if os.Getenv(backendEnv) != "" {
		if err := privsep.Enter(); err != nil {
			fmt.Fprintln(os.Stderr, "backend:", err)
			os.Exit(1)
		}
		// The token may come later: a spare backend waits for it.
		read := func(ctx context.Context) (string, error) { return token.Read(ctx, token.FD) }
		logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		err := Run(context.Background(), read, Options{Logger: logger, Version: "test", Preconnect: os.Getenv(noPreconnectEnv) == ""})
		if err != nil && !errors.Is(err, token.ErrNone) {
			fmt.Fprintln(os.Stderr, "backend:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type profiles struct {
	cm *configmgr.Service

	mu    sync.Mutex
	extra map[dbus.ObjectPath]sessionmgr.ProfileInfo // objects a test exports itself
}

func (p *profiles) UseProfile(path dbus.ObjectPath, uid uint32) (sessionmgr.ProfileInfo, error) {
	p.mu.Lock()
	info, ok := p.extra[path]
	p.mu.Unlock()
	if ok {
		return info, nil
	}
	cfg, ok := p.cm.Lookup(path)
	if !ok || !cfg.CanUse(uid) {
		return sessionmgr.ProfileInfo{}, api.Error(api.DomainGDBusPP, "Access to the configuration profile is denied.")
	}
	return sessionmgr.ProfileInfo{Name: cfg.Name, Owner: cfg.Owner}, nil
}

// rig is a session manager and a configuration manager on a private bus,
// starting the test binary as the real backend.
type rig struct {
	srv      *busobj.Server
	addr     string
	client   *dbus.Conn
	events   chan *dbus.Signal
	manager  *sessionmgr.Manager
	profiles *profiles
	launcher *sessionmgr.ExecLauncher
}

func newRig(t *testing.T) *rig {
	t.Helper()
	return newRigWith(t, false)
}

// newRigWith: with spare, the launcher keeps a spare backend.
func newRigWith(t *testing.T, spare bool) *rig {
	t.Helper()
	testenv.RequireRoot(t)
	addr := busobjtest.StartBus(t)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := busobj.Connect(context.Background(), addr, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	cm := configmgr.New(t.TempDir(), logger)
	if err := cm.Export(srv); err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	testenv.EnsureBackendUser(t)
	beUser, err := privsep.LookupUser(testenv.BackendUser)
	if err != nil {
		t.Fatal(err)
	}
	profs := &profiles{cm: cm}
	launcher := &sessionmgr.ExecLauncher{
		Path: exe, Args: []string{"-test.run=^$", "--"},
		Env:    []string{backendEnv + "=1", "DBUS_SYSTEM_BUS_ADDRESS=" + addr},
		User:   &beUser,
		Logger: logger,
		Spare:  spare, SpareDelay: 10 * time.Millisecond,
	}
	m, err := sessionmgr.New(sessionmgr.Options{
		Conn:     srv.Conn(),
		Logger:   logger,
		Profiles: profs,
		Launcher: launcher,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = m.Close(ctx)
	})
	if err := m.Export(srv); err != nil {
		t.Fatal(err)
	}
	// The backend may fetch its session's profile (as ovpn3-helper wires it).
	cm.SetBackends(m.BackendOf)
	for _, n := range []string{api.ServiceConfiguration, api.ServiceSessions} {
		if err := srv.RequestName(n); err != nil {
			t.Fatal(err)
		}
	}
	client, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	if err := client.AddMatchSignal(dbus.WithMatchInterface(api.InterfaceSessions)); err != nil {
		t.Fatal(err)
	}
	// The client stands in for the log service, the only receiver of the
	// session objects' StatusChange.
	if _, err := client.RequestName(api.ServiceLog, dbus.NameFlagDoNotQueue); err != nil {
		t.Fatal(err)
	}
	events := make(chan *dbus.Signal, 256)
	client.Signal(events)
	return &rig{srv: srv, addr: addr, client: client, events: events, manager: m, profiles: profs, launcher: launcher}
}

// importProfile imports variant a's profile with its remote replaced.
func (r *rig) importProfile(t *testing.T, remote string) dbus.ObjectPath {
	t.Helper()
	pki := testbed.PKI(t)
	text, err := pki.Profile(testbed.VariantA)
	if err != nil {
		t.Fatal(err)
	}
	text = regexp.MustCompile(`(?m)^remote .*$`).ReplaceAllString(text, "remote "+remote)
	// Bound the attempt with the standard options, so a silent server
	// fails in seconds.
	text += "server-poll-timeout 5\nconnect-retry-max 1\nhand-window 5\n"
	var path dbus.ObjectPath
	err = r.client.Object(api.ServiceConfiguration, api.PathConfiguration).Call(
		api.InterfaceConfiguration+".Import", 0, "never-answers", text, false, false).Store(&path)
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	return path
}

func (r *rig) newTunnel(t *testing.T, config dbus.ObjectPath) dbus.ObjectPath {
	t.Helper()
	var path dbus.ObjectPath
	if err := r.client.Object(api.ServiceSessions, api.PathSessions).Call(
		api.InterfaceSessions+".NewTunnel", 0, config).Store(&path); err != nil {
		t.Fatalf("NewTunnel: %v", err)
	}
	return path
}

func (r *rig) backendPID(t *testing.T, path dbus.ObjectPath) uint32 {
	t.Helper()
	var pid uint32
	if err := r.client.Object(api.ServiceSessions, path).Call(api.InterfaceProperties+".Get", 0,
		api.InterfaceSessions, "backend_pid").Store(&pid); err != nil {
		t.Fatal(err)
	}
	return pid
}

func (r *rig) wait(t *testing.T, what string, match func(*dbus.Signal) bool) *dbus.Signal {
	t.Helper()
	deadline := time.After(60 * time.Second) // a hung backend, not a speed check
	for {
		select {
		case s := <-r.events:
			if match(s) {
				return s
			}
		case <-deadline:
			t.Fatalf("no %s", what)
			return nil
		}
	}
}

func status(path dbus.ObjectPath, minor api.StatusMinor) func(*dbus.Signal) bool {
	return func(s *dbus.Signal) bool {
		return s.Path == path && s.Name == api.InterfaceSessions+".StatusChange" && len(s.Body) == 3 && s.Body[1] == uint32(minor)
	}
}

func destroyed(path dbus.ObjectPath) func(*dbus.Signal) bool {
	return func(s *dbus.Signal) bool {
		return s.Name == api.InterfaceSessions+".SessionManagerEvent" && len(s.Body) == 3 &&
			s.Body[0] == path && s.Body[1] == uint16(api.SessionEventDestroyed)
	}
}

// A server that never answers: the engine gives up, the backend reports
// CONN_FAILED with the reason and exits, and the session disappears.
func TestServerNeverAnswers(t *testing.T) {
	r := newRig(t)
	// A UDP socket nobody reads from: packets vanish without an ICMP error.
	sink, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	port := sink.LocalAddr().(*net.UDPAddr).Port
	cfg := r.importProfile(t, fmt.Sprintf("127.0.0.1 %d", port))
	path := r.newTunnel(t, cfg)

	sess := r.client.Object(api.ServiceSessions, path)
	var st struct {
		Major, Minor uint32
		Msg          string
	}
	if err := sess.Call(api.InterfaceProperties+".Get", 0, api.InterfaceSessions, "status").Store(&st); err != nil {
		t.Fatal(err)
	}
	if st.Minor != uint32(api.StatusMinorCfgOK) || !strings.Contains(st.Msg, string(cfg)) {
		t.Errorf("status after NewTunnel: %+v", st)
	}
	var name string
	if err := sess.Call(api.InterfaceProperties+".Get", 0, api.InterfaceSessions, "config_name").Store(&name); err != nil || name != "never-answers" {
		t.Errorf("config_name = %q, %v", name, err)
	}
	if err := sess.Call(api.InterfaceSessions+".Ready", 0).Err; err != nil {
		t.Fatalf("Ready: %v", err)
	}
	if err := sess.Call(api.InterfaceSessions+".Connect", 0).Err; err != nil {
		t.Fatalf("Connect: %v", err)
	}
	r.wait(t, "CONN_CONNECTING", status(path, api.StatusMinorConnConnecting))
	failed := r.wait(t, "CONN_FAILED", status(path, api.StatusMinorConnFailed))
	if reason, _ := failed.Body[2].(string); reason == "" {
		t.Error("CONN_FAILED without a reason")
	} else {
		t.Logf("CONN_FAILED reason: %s", reason)
	}
	r.wait(t, "SESS_DESTROYED", destroyed(path))
}

// Disconnect before Connect: the backend reports CONN_DONE and exits, the
// session object disappears before Disconnect returns.
func TestDisconnectBeforeConnect(t *testing.T) {
	r := newRig(t)
	cfg := r.importProfile(t, "127.0.0.1 9")
	path := r.newTunnel(t, cfg)
	sess := r.client.Object(api.ServiceSessions, path)
	pid := r.backendPID(t, path)
	// Only the session manager may talk to the backend.
	be := r.client.Object(api.BackendBusName(pid), api.PathBackendSession)
	if err := be.Call(api.InterfaceBackends+".Connect", 0).Err; err == nil ||
		!strings.Contains(api.ErrorText(err), "Authorization failed") {
		t.Errorf("backend Connect by a stranger: %v", err)
	}
	if err := sess.Call(api.InterfaceSessions+".Disconnect", 0).Err; err != nil {
		t.Fatalf("Disconnect: %v", err)
	}
	r.wait(t, "CONN_DONE", status(path, api.StatusMinorConnDone))
	r.wait(t, "SESS_DESTROYED", destroyed(path))
	if err := sess.Call(api.InterfaceSessions+".Ready", 0).Err; !api.IsErrorName(err, api.ErrNameUnknownMethod) {
		t.Errorf("Ready after Disconnect: %v", err)
	}
}

// Without its session manager nobody could stop a backend: it ends itself
// when the manager's connection goes away.
func TestBackendEndsWithItsManager(t *testing.T) {
	r := newRig(t)
	cfg := r.importProfile(t, "127.0.0.1 9")
	path := r.newTunnel(t, cfg)
	pid := r.backendPID(t, path)
	_ = r.srv.Close()
	deadline := time.Now().Add(30 * time.Second) // a hung backend, not a speed check
	for syscall.Kill(int(pid), 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("backend %d still running after its session manager left the bus", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// An encrypted private key: registration queues a PK_PASSPHRASE slot and
// announces it; a wrong passphrase is refused at Connect and asked for
// again, the session stays.
func TestPrivateKeyPassphrase(t *testing.T) {
	r := newRig(t)
	testenv.RequireCommand(t, "openssl")
	pki := testbed.PKI(t)
	enc := filepath.Join(t.TempDir(), "key.pem")
	if out, err := exec.Command("openssl", "pkcs8", "-topk8", "-in", pki.ClientKey, "-v2", "aes-256-cbc",
		"-passout", "pass:s3cret", "-out", enc).CombinedOutput(); err != nil {
		t.Fatalf("openssl: %v\n%s", err, out)
	}
	keyPEM, err := os.ReadFile(enc)
	if err != nil {
		t.Fatal(err)
	}
	text, err := pki.Profile(testbed.VariantA)
	if err != nil {
		t.Fatal(err)
	}
	text = regexp.MustCompile(`(?s)<key>.*</key>`).ReplaceAllLiteralString(text, "<key>\n"+strings.TrimSpace(string(keyPEM))+"\n</key>")
	text = regexp.MustCompile(`(?m)^remote .*$`).ReplaceAllString(text, "remote 127.0.0.1 9")
	var cfg dbus.ObjectPath
	if err := r.client.Object(api.ServiceConfiguration, api.PathConfiguration).Call(
		api.InterfaceConfiguration+".Import", 0, "encrypted-key", text, false, false).Store(&cfg); err != nil {
		t.Fatalf("Import: %v", err)
	}
	path := r.newTunnel(t, cfg)
	sess := r.client.Object(api.ServiceSessions, path)
	call := func(m string, args ...any) *dbus.Call { return sess.Call(api.InterfaceSessions+"."+m, 0, args...) }
	if err := call("Ready").Err; !api.IsDomain(err, api.DomainReady) {
		t.Fatalf("Ready with a locked key: %v", err)
	}
	var groups [][]any
	if err := call("UserInputQueueGetTypeGroup").Store(&groups); err != nil || len(groups) != 1 ||
		groups[0][0] != uint32(api.AttentionTypeCredentials) || groups[0][1] != uint32(api.AttentionGroupPKPassphrase) {
		t.Fatalf("type groups %v, %v", groups, err)
	}
	var typ, group, id uint32
	var name, desc string
	var hidden bool
	if err := call("UserInputQueueFetch", uint32(1), uint32(3), uint32(0)).Store(&typ, &group, &id, &name, &desc, &hidden); err != nil ||
		name != "pk_passphrase" || !hidden {
		t.Fatalf("fetch: %s %s %v %v", name, desc, hidden, err)
	}
	if err := call("UserInputProvide", uint32(1), uint32(3), uint32(0), "wrong").Err; err != nil {
		t.Fatal(err)
	}
	if err := call("Connect").Err; err == nil || !strings.Contains(api.ErrorText(err), "PEM_PASSWORD_FAIL") {
		t.Errorf("Connect with a wrong passphrase: %v", err)
	}
	if err := call("Ready").Err; !api.IsDomain(err, api.DomainReady) {
		t.Errorf("Ready after a wrong passphrase: %v (the slot must be asked for again)", err)
	}
	if err := call("UserInputProvide", uint32(1), uint32(3), uint32(0), "s3cret").Err; err != nil {
		t.Fatal(err)
	}
	if err := call("Ready").Err; err != nil {
		t.Errorf("Ready with the passphrase: %v", err)
	}
	if err := call("Connect").Err; err != nil {
		t.Errorf("Connect with the right passphrase: %v", err)
	}
	r.wait(t, "CONN_CONNECTING", status(path, api.StatusMinorConnConnecting))
	if err := call("Disconnect").Err; err != nil {
		t.Fatal(err)
	}
}

// waitSpare waits for a spare backend other than not and returns its PID
// once it is on the bus (it connected before any session needed it).
func (r *rig) waitSpare(t *testing.T, not int) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second) // a hung backend, not a speed check
	for ; time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		pid := r.launcher.SparePID()
		if pid == 0 || pid == not {
			continue
		}
		var has bool
		if err := r.client.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, api.BackendBusName(uint32(pid))).Store(&has); err == nil && has {
			return pid
		}
	}
	t.Fatal("no spare backend on the bus")
	return 0
}

// The spare backend: started ahead as the backend user, on the bus before
// a session needs it, it serves the next NewTunnel (registration, profile)
// and only that one; another spare replaces it, and closing the session
// manager ends the spare left waiting.
func TestSpareBackendServesOneSession(t *testing.T) {
	r := newRigWith(t, true)
	r.launcher.StartSpare()
	spare := r.waitSpare(t, 0)
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", spare))
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := testenv.EnsureBackendUser(t)
	if want := fmt.Sprintf("Uid:\t%d\t%d\t%d\t%d", uid, uid, uid, uid); !strings.Contains(string(status), want) {
		t.Errorf("spare %d does not run as the backend user (%s):\n%s", spare, want, status)
	}
	// Nothing answers on the spare's object before a session claims it.
	be := r.client.Object(api.BackendBusName(uint32(spare)), api.PathBackendSession)
	if err := be.Call(api.InterfaceBackends+".Ping", 0).Err; err == nil {
		t.Error("the unclaimed spare answered Ping")
	}

	cfg := r.importProfile(t, "127.0.0.1 9")
	path := r.newTunnel(t, cfg)
	sess := r.client.Object(api.ServiceSessions, path)
	pid := r.backendPID(t, path)
	if int(pid) != spare {
		t.Fatalf("session backend %d, want the spare %d", pid, spare)
	}
	var st struct {
		Major, Minor uint32
		Msg          string
	}
	if err := sess.Call(api.InterfaceProperties+".Get", 0, api.InterfaceSessions, "status").Store(&st); err != nil ||
		st.Minor != uint32(api.StatusMinorCfgOK) {
		t.Errorf("status of the spare's session: %+v, %v", st, err)
	}
	next := r.waitSpare(t, spare)

	if err := sess.Call(api.InterfaceSessions+".Disconnect", 0).Err; err != nil {
		t.Fatalf("Disconnect: %v", err)
	}
	r.wait(t, "SESS_DESTROYED", destroyed(path))
	if got := r.launcher.SparePID(); got != next {
		t.Errorf("spare after the session ended: %d, want %d still waiting", got, next)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.manager.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if syscall.Kill(next, 0) == nil {
		t.Errorf("spare %d still runs after the session manager closed", next)
	}
}

// A claimed backend sends its RegistrationRequest before its Attach to the
// log service (watched by a bus monitor): the session manager works on the
// request while the Attach is answered, and the confirmation still finds
// the backend attached (the session starts).
func TestRegistrationRequestBeforeAttach(t *testing.T) {
	r := newRig(t)
	mon, err := dbus.Connect(r.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mon.Close() })
	rules := []string{"type='signal',member='RegistrationRequest'", "type='method_call',member='Attach'"}
	if err := mon.BusObject().Call("org.freedesktop.DBus.Monitoring.BecomeMonitor", 0, rules, uint32(0)).Err; err != nil {
		t.Fatal(err)
	}
	msgs := make(chan *dbus.Message, 64)
	mon.Eavesdrop(msgs)
	path := r.newTunnel(t, r.importProfile(t, "127.0.0.1 9"))
	var backend string
	if err := r.client.BusObject().Call("org.freedesktop.DBus.GetNameOwner", 0, api.BackendBusName(r.backendPID(t, path))).Store(&backend); err != nil {
		t.Fatal(err)
	}
	var order []string
	timeout := time.After(10 * time.Second) // a hang guard, not a speed check
	for len(order) < 2 {
		select {
		case m := <-msgs:
			member, _ := m.Headers[dbus.FieldMember].Value().(string)
			if sender, _ := m.Headers[dbus.FieldSender].Value().(string); sender == backend {
				order = append(order, member)
			}
		case <-timeout:
			t.Fatalf("seen %v of the backend's RegistrationRequest and Attach", order)
		}
	}
	if order[0] != "RegistrationRequest" || order[1] != "Attach" {
		t.Errorf("the backend sent %v, want its RegistrationRequest, then its Attach", order)
	}
}
