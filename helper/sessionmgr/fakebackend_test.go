package sessionmgr

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/privsep"
	"github.com/ovpn3go/ovpn3go/helper/sessionmgr/token"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// The test binary doubles as a fake backend: TestMain runs fakeBackend
// instead of the tests when fakeBackendEnv is set. The fake speaks the
// backend protocol (registration, Ready/Connect/Disconnect, properties)
// without an engine, so the manager can be tested on its own.
const (
	fakeBackendEnv = "SESSIONMGR_FAKE_BACKEND"
	fakeMarkerEnv  = "SESSIONMGR_FAKE_MARKER"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(fakeBackendEnv); mode != "" {
		// As the real backend: drop to the backend user, read the
		// token from its descriptor.
		if err := privsep.Enter(); err != nil {
			fmt.Fprintln(os.Stderr, "fake backend:", err)
			os.Exit(2)
		}
		var conn *dbus.Conn
		if mode == "sparereg" {
			// As a spare: on the bus with its name before the token.
			var err error
			if conn, err = fakeConnect(); err != nil {
				fmt.Fprintln(os.Stderr, "fake backend:", err)
				os.Exit(2)
			}
		}
		tok, err := token.Read(context.Background(), token.FD)
		if err != nil {
			fmt.Fprintln(os.Stderr, "fake backend:", err)
			os.Exit(2)
		}
		os.Exit(fakeBackend(mode, tok, conn))
	}
	if addr := os.Getenv(aclClientEnv); addr != "" {
		os.Exit(aclClient(addr, dbus.ObjectPath(os.Getenv(aclSessionEnv))))
	}
	os.Exit(m.Run())
}

// fakeLauncher starts the test binary as a fake backend in mode, as the
// backend user (created if missing) like the real one.
func fakeLauncher(t testing.TB, mode, busAddr string) *ExecLauncher {
	t.Helper()
	testenv.EnsureBackendUser(t)
	u, err := privsep.LookupUser(testenv.BackendUser)
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	return &ExecLauncher{
		Path: exe,
		Args: []string{"-test.run=^$", "--"},
		Env:  []string{fakeBackendEnv + "=" + mode, "DBUS_SYSTEM_BUS_ADDRESS=" + busAddr},
		User: &u,
	}
}

// backendDir is a directory the fake backend (running as the backend
// user) may write; removed in t.Cleanup.
func backendDir(t testing.TB) string {
	t.Helper()
	uid, gid := testenv.EnsureBackendUser(t)
	dir, err := os.MkdirTemp("", "fakebe")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chown(dir, int(uid), int(gid)); err != nil {
		t.Fatal(err)
	}
	return dir
}

type fakeBE struct {
	conn    *dbus.Conn
	manager string
	token   string
	mode    string
	mu      sync.Mutex
	status  [3]any
	exit    chan int
}

// fakeConnect connects to the bus and takes the backend's bus name.
func fakeConnect() (*dbus.Conn, error) {
	conn, err := dbus.Connect(os.Getenv("DBUS_SYSTEM_BUS_ADDRESS"))
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	name := api.BackendBusName(uint32(os.Getpid()))
	if r, err := conn.RequestName(name, dbus.NameFlagDoNotQueue); err != nil || r != dbus.RequestNameReplyPrimaryOwner {
		return nil, fmt.Errorf("request name: %v %v", r, err)
	}
	return conn, nil
}

// fakeBackend is the fake's life after its token came; conn, if not nil,
// is its connection with the bus name taken (a spare's).
func fakeBackend(mode, token string, conn *dbus.Conn) int {
	early := conn != nil
	if !early {
		var err error
		if conn, err = dbus.Connect(os.Getenv("DBUS_SYSTEM_BUS_ADDRESS")); err != nil {
			fmt.Fprintln(os.Stderr, "fake backend: connect:", err)
			return 2
		}
	}
	switch mode {
	case "exit":
		fmt.Println("fake backend exiting at once")
		return 1
	case "silent":
		select {} // never registers; the manager kills it
	}
	be := &fakeBE{conn: conn, token: token, mode: mode, exit: make(chan int, 1),
		status: [3]any{uint32(0), uint32(0), ""}}
	if err := conn.Export(be, api.PathBackendSession, api.InterfaceBackends); err != nil {
		return 2
	}
	if err := conn.Export(fakeProps{be}, api.PathBackendSession, api.InterfaceProperties); err != nil {
		return 2
	}
	name := api.BackendBusName(uint32(os.Getpid()))
	if !early {
		if r, err := conn.RequestName(name, dbus.NameFlagDoNotQueue); err != nil || r != dbus.RequestNameReplyPrimaryOwner {
			fmt.Fprintln(os.Stderr, "fake backend: request name:", r, err)
			return 2
		}
	}
	if err := conn.BusObject().Call("org.freedesktop.DBus.GetNameOwner", 0, api.ServiceSessions).Store(&be.manager); err != nil {
		fmt.Fprintln(os.Stderr, "fake backend: no session manager:", err)
		return 2
	}
	if mode == "slowreg" || mode == "sparereg" {
		// Registers only once the test has had its go at forging.
		// (sparereg's test must see the manager learn it before that.)
		marker := os.Getenv(fakeMarkerEnv)
		wait := 20 * time.Second
		if mode == "sparereg" {
			wait = time.Minute
		}
		for deadline := time.Now().Add(wait); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if _, err := os.Stat(marker); err == nil {
				break
			}
		}
	}
	if mode == "badpid" {
		be.signal("RegistrationRequest", name, token, int32(1))
	} else {
		be.signal("RegistrationRequest", name, token, int32(os.Getpid()))
	}
	return <-be.exit
}

func (b *fakeBE) signal(member string, args ...any) {
	msg := &dbus.Message{Type: dbus.TypeSignal, Headers: map[dbus.HeaderField]dbus.Variant{
		dbus.FieldPath:        dbus.MakeVariant(api.PathBackendSession),
		dbus.FieldInterface:   dbus.MakeVariant(api.InterfaceBackends),
		dbus.FieldMember:      dbus.MakeVariant(member),
		dbus.FieldDestination: dbus.MakeVariant(b.manager),
		dbus.FieldSignature:   dbus.MakeVariant(dbus.SignatureOf(args...)),
	}, Body: args}
	b.conn.Send(msg, nil)
}

func (b *fakeBE) status3(minor api.StatusMinor, msg string) {
	b.mu.Lock()
	b.status = [3]any{uint32(api.StatusMajorConnection), uint32(minor), msg}
	b.mu.Unlock()
	b.signal("StatusChange", uint32(api.StatusMajorConnection), uint32(minor), msg)
}

func (b *fakeBE) RegistrationConfirmation(token string, session, config dbus.ObjectPath) (string, *dbus.Error) {
	if token != b.token {
		return "", api.Error(api.DomainBERegistration, "Invalid registration token")
	}
	if b.mode == "refuse" {
		return "", api.Error(api.DomainBERegistration, "refused by the fake")
	}
	if b.mode == "logged" {
		// Like the real backend: attach to the log service and assign the
		// session, so LogForward proxies get this backend's events.
		logObj := b.conn.Object(api.ServiceLog, api.PathLog)
		if err := logObj.Call(api.InterfaceLog+".Attach", 0, api.InterfaceBackends).Err; err != nil {
			fmt.Fprintln(os.Stderr, "fake backend: Attach:", err)
		}
		if err := logObj.Call(api.InterfaceLog+".AssignSession", 0, session, api.InterfaceBackends).Err; err != nil {
			fmt.Fprintln(os.Stderr, "fake backend: AssignSession:", err)
		}
	}
	b.status3(api.StatusMinorCfgOK, "config_path="+string(config))
	if b.mode == "needsuser" {
		b.status3(api.StatusMinorCfgRequireUser, "Username/password credentials needed")
	}
	b.signal("Log", uint32(api.LogGroupBackendProc), uint32(api.LogCategoryInfo), b.token, "fake registered")
	return "fake-profile", nil
}

func (b *fakeBE) Ready() *dbus.Error {
	if b.mode == "deaf" {
		select {} // hung: Ready is forwarded without a Ping first
	}
	if b.mode == "notready" {
		return api.Error(api.DomainReady, "Missing user credentials")
	}
	return nil
}

func (b *fakeBE) Ping() (bool, *dbus.Error) {
	if b.mode == "deaf" {
		select {} // a hung backend; the manager kills the process
	}
	if b.mode == "pingwait" {
		// Says it was pinged, then answers once the test releases it.
		marker := os.Getenv(fakeMarkerEnv)
		_ = os.WriteFile(marker+".ping", nil, 0o644)
		for {
			if _, err := os.Stat(marker + ".release"); err == nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return true, nil
}

func (b *fakeBE) Pause(reason string) *dbus.Error {
	b.status3(api.StatusMinorConnPaused, "")
	return nil
}

func (b *fakeBE) Resume() *dbus.Error {
	b.status3(api.StatusMinorConnConnected, "")
	return nil
}

func (b *fakeBE) Restart() *dbus.Error {
	b.status3(api.StatusMinorConnReconnecting, "")
	b.status3(api.StatusMinorConnConnected, "")
	return nil
}

func (b *fakeBE) Connect() *dbus.Error {
	if b.mode == "failexit" {
		// The last words of a dying backend must still reach front-ends.
		go func() {
			b.status3(api.StatusMinorConnConnecting, "")
			b.status3(api.StatusMinorConnFailed, "fake failure")
			b.exit <- 1
		}()
		return nil
	}
	go func() {
		b.status3(api.StatusMinorConnConnecting, "")
		b.status3(api.StatusMinorConnConnected, "")
		if b.mode == "crashonce" {
			// The first backend of the test dies once connected; the
			// ones started again stay up.
			marker := os.Getenv(fakeMarkerEnv)
			if f, err := os.OpenFile(marker, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600); err == nil {
				f.Close()
				// Die after the Connect reply has gone out: dying
				// inside the call is another test (the manager would
				// see "disconnected without replying").
				time.Sleep(200 * time.Millisecond)
				os.Exit(3)
			}
		}
	}()
	return nil
}

func (b *fakeBE) Disconnect() *dbus.Error {
	b.status3(api.StatusMinorConnDone, "")
	if b.mode != "stubborn" {
		// Exit after the reply went out.
		time.AfterFunc(50*time.Millisecond, func() { b.exit <- 0 })
	}
	return nil
}

func (b *fakeBE) ForceShutdown() *dbus.Error {
	time.AfterFunc(50*time.Millisecond, func() { b.exit <- 0 })
	return nil
}

type fakeProps struct{ b *fakeBE }

func (p fakeProps) Get(iface, name string) (dbus.Variant, *dbus.Error) {
	p.b.mu.Lock()
	defer p.b.mu.Unlock()
	switch name {
	case "device_name":
		return dbus.MakeVariant("tunfake0"), nil
	case "statistics":
		return dbus.MakeVariant(map[string]int64{"BYTES_IN": 10, "BYTES_OUT": 20}), nil
	case "connection":
		return dbus.MakeVariant(struct {
			A, B, C string
			D       uint32
		}{"udpv4", "server", "198.18.0.1", 1194}), nil
	case "log_level":
		return dbus.MakeVariant(uint32(3)), nil
	case "session_name":
		return dbus.MakeVariant("fake-session"), nil
	case "device_path":
		return dbus.MakeVariant(dbus.ObjectPath("/net/openvpn/v3/netcfg/1_fake")), nil
	case "dco":
		return dbus.MakeVariant(false), nil
	}
	return dbus.Variant{}, dbus.NewError("org.freedesktop.DBus.Error.InvalidArgs", []any{"No such property"})
}

func (p fakeProps) Set(iface, name string, v dbus.Variant) *dbus.Error { return nil }

// fakeLogs stands in for the log service's proxies.
type fakeLogs struct {
	mu      sync.Mutex
	n       int
	proxies map[dbus.ObjectPath]fakeProxy
}

type fakeProxy struct {
	target  string
	session dbus.ObjectPath
}

func newFakeLogs() *fakeLogs { return &fakeLogs{proxies: map[dbus.ObjectPath]fakeProxy{}} }

func (f *fakeLogs) ProxyLogEvents(_ context.Context, target string, session dbus.ObjectPath) (dbus.ObjectPath, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	p := dbus.ObjectPath(fmt.Sprintf("/net/openvpn/v3/log/proxy/fake%d", f.n))
	f.proxies[p] = fakeProxy{target, session}
	return p, nil
}

func (f *fakeLogs) RemoveProxy(p dbus.ObjectPath) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.proxies[p]
	delete(f.proxies, p)
	return ok
}

func (f *fakeLogs) ProxiesOf(session dbus.ObjectPath) []dbus.ObjectPath {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []dbus.ObjectPath
	for p, px := range f.proxies {
		if px.session == session {
			out = append(out, p)
		}
	}
	return out
}

func (f *fakeLogs) targets() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, px := range f.proxies {
		out = append(out, px.target)
	}
	return out
}
