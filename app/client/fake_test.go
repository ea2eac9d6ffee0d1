package client

// A small fake of the openvpn3 services on a private bus: enough of the
// configuration and session managers, one session object with a user-input
// queue, and the log service's forwarding, to drive the client through
// the documented calls and signals.

import (
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/internal/testbed"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

type fakeSlot struct {
	Slot
	value    string
	provided bool
}

// fakeServices owns net.openvpn.v3.configuration, .sessions and .log on
// one connection.
type fakeServices struct {
	conn *dbus.Conn

	mu       sync.Mutex
	profiles map[dbus.ObjectPath]string // path → name
	session  dbus.ObjectPath
	status   api.Status
	slots    []*fakeSlot
	connects int // Connects taken
	// refusedConnects are Connects refused while input was missing.
	refusedConnects int
	forwards        []bool // LogForward calls, in order
	password        string // the right password
	challenge       bool   // after the password, ask a dynamic challenge
	stopped         bool   // the backend ended: Disconnect fails, the manager removes the session a moment later
	answers         map[string]string
	// readyAsked is closed by the first Ready; with forwardAwaitsReady
	// LogForward(true) waits for it (and notes in forwardAlone when it
	// came in vain), to tell whether the client sends both side by side.
	readyAsked         chan struct{}
	readyOnce          sync.Once
	forwardAwaitsReady bool
	forwardAlone       bool
	// With readyAwaitsConnect the first Ready waits for a Connect
	// (connectAsked, closed by the first, taken or refused) and notes in
	// readyAlone when it came in vain.
	readyAwaitsConnect bool
	connectAsked       chan struct{}
	connectOnce        sync.Once
	readyAlone         bool
	// holdForwardOff, if set, holds LogForward(false) until it is
	// closed; forwardOffHeld notes that it went in vain.
	holdForwardOff chan struct{}
	forwardOffHeld bool
	// With statusAwaitsForward the first read of the session's status
	// waits for LogForward(true) (forwardAsked, closed by it) and notes
	// in statusAlone when it came in vain.
	statusAwaitsForward bool
	forwardAsked        chan struct{}
	forwardOnce         sync.Once
	statusAlone         bool
	statusReads         int
	// hidden makes the session answer as if it did not exist yet
	// (openvpn3-linux answers NewTunnel before making it), counting
	// the calls so refused.
	hidden      bool
	hiddenCalls map[string]int
	// NewTunnel notes the caller's match rules (as the bus has them
	// when the call arrives) in rulesAtNewTunnel.
	rulesAtNewTunnel []string
	rulesAtConnect   []string // the same at Connect
	// With frozenStatus the status property keeps its value from
	// NewTunnel: only the forwarded signals tell the outcome. With
	// strayFirst Connect first sends a failure of another session.
	frozenStatus bool
	strayFirst   bool
}

// unborn is the error of a call to the hidden session, or nil.
func (f *fakeServices) unborn(method string) *dbus.Error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.hidden {
		return nil
	}
	if f.hiddenCalls == nil {
		f.hiddenCalls = map[string]int{}
	}
	f.hiddenCalls[method]++
	return dbus.NewError("org.freedesktop.DBus.Error.UnknownObject", []any{"Object does not exist at path"})
}

func startFake(t *testing.T, challenge bool) (*fakeServices, *Client) {
	t.Helper()
	testenv.RequireRoot(t) // the bus policy lets only root own net.openvpn.v3.*
	addr := testbed.Bus(t)
	conn, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	f := &fakeServices{conn: conn, profiles: map[dbus.ObjectPath]string{}, answers: map[string]string{}, password: "secret", challenge: challenge,
		readyAsked: make(chan struct{}), forwardAsked: make(chan struct{}), connectAsked: make(chan struct{})}
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(conn.Export(fakeConfigMgr{f}, api.PathConfiguration, api.InterfaceConfiguration))
	must(conn.Export(fakeSessionMgr{f}, api.PathSessions, api.InterfaceSessions))
	for _, n := range []string{api.ServiceConfiguration, api.ServiceSessions, api.ServiceLog} {
		if r, err := conn.RequestName(n, dbus.NameFlagDoNotQueue); err != nil || r != dbus.RequestNameReplyPrimaryOwner {
			t.Fatalf("own %s: %v %v", n, r, err)
		}
	}
	cc, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	c := New(cc)
	t.Cleanup(func() { cc.Close() })
	return f, c
}

type fakeConfigMgr struct{ f *fakeServices }

func (m fakeConfigMgr) Import(name, text string, singleUse, persistent bool) (dbus.ObjectPath, *dbus.Error) {
	if text == "" {
		return "", api.Error(api.DomainRequest, "Invalid configuration profile: empty")
	}
	p := api.NewConfigPath()
	m.f.mu.Lock()
	m.f.profiles[p] = name
	m.f.mu.Unlock()
	if err := m.f.conn.Export(fakeProfile{m.f, p}, p, api.InterfaceConfiguration); err != nil {
		return "", dbus.MakeFailedError(err)
	}
	if err := m.f.conn.Export(fakeProps{m.f, p}, p, api.InterfaceProperties); err != nil {
		return "", dbus.MakeFailedError(err)
	}
	_ = m.f.conn.Emit(api.PathConfiguration, api.InterfaceConfiguration+".ConfigurationManagerEvent", p, uint16(api.ConfigEventCreated), uint32(0))
	return p, nil
}

func (m fakeConfigMgr) LookupConfigName(name string) ([]dbus.ObjectPath, *dbus.Error) {
	m.f.mu.Lock()
	defer m.f.mu.Unlock()
	out := []dbus.ObjectPath{}
	for p, n := range m.f.profiles {
		if n == name {
			out = append(out, p)
		}
	}
	return out, nil
}

type fakeProfile struct {
	f    *fakeServices
	path dbus.ObjectPath
}

func (p fakeProfile) Validate() *dbus.Error {
	return api.Error(api.DomainGDBusPP, "Configuration profile is missing required options: --ca")
}

type fakeSessionMgr struct{ f *fakeServices }

// matchRules is the bus's list of the match rules of the connection
// named by sender.
func (f *fakeServices) matchRules(sender dbus.Sender) ([]string, *dbus.Error) {
	var all map[string][]string
	if err := f.conn.BusObject().Call("org.freedesktop.DBus.Debug.Stats.GetAllMatchRules", 0).Store(&all); err != nil {
		return nil, dbus.MakeFailedError(err)
	}
	return all[string(sender)], nil
}

func (m fakeSessionMgr) NewTunnel(sender dbus.Sender, cfg dbus.ObjectPath) (dbus.ObjectPath, *dbus.Error) {
	f := m.f
	rules, derr := f.matchRules(sender)
	if derr != nil {
		return "", derr
	}
	f.mu.Lock()
	f.rulesAtNewTunnel = rules
	f.mu.Unlock()
	p := api.NewSessionPath()
	f.mu.Lock()
	f.session = p
	f.slots = []*fakeSlot{
		{Slot: Slot{api.AttentionTypeCredentials, api.AttentionGroupUserPassword, 0, "username", "Auth User name", false}},
		{Slot: Slot{api.AttentionTypeCredentials, api.AttentionGroupUserPassword, 1, "password", "Auth Password", true}},
	}
	f.status = api.Status{Major: api.StatusMajorConnection, Minor: api.StatusMinorCfgRequireUser, Message: "Username/password credentials needed"}
	f.mu.Unlock()
	if err := f.conn.Export(fakeSession{f}, p, api.InterfaceSessions); err != nil {
		return "", dbus.MakeFailedError(err)
	}
	if err := f.conn.Export(fakeProps{f, p}, p, api.InterfaceProperties); err != nil {
		return "", dbus.MakeFailedError(err)
	}
	_ = f.conn.Emit(api.PathSessions, api.InterfaceSessions+".SessionManagerEvent", p, uint16(api.SessionEventCreated), uint32(0))
	_ = f.conn.Emit(p, api.InterfaceSessions+".AttentionRequired", uint32(api.AttentionTypeCredentials),
		uint32(api.AttentionGroupUserPassword), "Username/password credentials needed")
	return p, nil
}

func (m fakeSessionMgr) FetchAvailableSessions() ([]dbus.ObjectPath, *dbus.Error) {
	m.f.mu.Lock()
	defer m.f.mu.Unlock()
	if m.f.session == "" {
		return []dbus.ObjectPath{}, nil
	}
	return []dbus.ObjectPath{m.f.session}, nil
}

type fakeSession struct{ f *fakeServices }

// setStatus stores st and forwards it as the log service does.
// awaitOr holds a call until ch is closed; if it is not within 10 s (a
// client that waits for this call's reply before it makes the call ch
// stands for, not a speed check), the call goes on and missed is set.
func (f *fakeServices) awaitOr(ch <-chan struct{}, missed *bool) {
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		f.mu.Lock()
		*missed = true
		f.mu.Unlock()
	}
}

func (f *fakeServices) setStatus(st api.Status) {
	f.mu.Lock()
	if !f.frozenStatus {
		f.status = st
	}
	p := f.session
	f.mu.Unlock()
	_ = f.conn.Emit(p, api.InterfaceBackends+".StatusChange", uint32(st.Major), uint32(st.Minor), st.Message)
}

func (f *fakeServices) log(cat api.LogCategory, msg string) {
	f.mu.Lock()
	p := f.session
	f.mu.Unlock()
	_ = f.conn.Emit(p, api.InterfaceBackends+".Log", uint32(api.LogGroupClient), uint32(cat), msg)
}

func (s fakeSession) Ready() *dbus.Error {
	if err := s.f.unborn("Ready"); err != nil {
		return err
	}
	first := false
	s.f.readyOnce.Do(func() { close(s.f.readyAsked); first = true })
	s.f.mu.Lock()
	wait := first && s.f.readyAwaitsConnect
	s.f.mu.Unlock()
	if wait {
		s.f.awaitOr(s.f.connectAsked, &s.f.readyAlone)
	}
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	if s.f.inputMissingLocked() {
		return api.Error(api.DomainReady, "Missing user credentials")
	}
	return nil
}

// inputMissingLocked says whether a slot is unanswered; f.mu is held.
func (f *fakeServices) inputMissingLocked() bool {
	for _, sl := range f.slots {
		if !sl.provided {
			return true
		}
	}
	return false
}

func (s fakeSession) UserInputQueueGetTypeGroup() ([]struct{ T, G uint32 }, *dbus.Error) {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	seen := map[[2]uint32]bool{}
	out := []struct{ T, G uint32 }{}
	for _, sl := range s.f.slots {
		k := [2]uint32{uint32(sl.Type), uint32(sl.Group)}
		if !sl.provided && !seen[k] {
			seen[k] = true
			out = append(out, struct{ T, G uint32 }{k[0], k[1]})
		}
	}
	return out, nil
}

func (s fakeSession) UserInputQueueCheck(t, g uint32) ([]uint32, *dbus.Error) {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	out := []uint32{}
	for _, sl := range s.f.slots {
		if uint32(sl.Type) == t && uint32(sl.Group) == g && !sl.provided {
			out = append(out, sl.ID)
		}
	}
	return out, nil
}

func (s fakeSession) find(t, g, id uint32) *fakeSlot {
	for _, sl := range s.f.slots {
		if uint32(sl.Type) == t && uint32(sl.Group) == g && sl.ID == id {
			return sl
		}
	}
	return nil
}

func (s fakeSession) UserInputQueueFetch(t, g, id uint32) (uint32, uint32, uint32, string, string, bool, *dbus.Error) {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	sl := s.find(t, g, id)
	if sl == nil {
		return 0, 0, 0, "", "", false, api.Error(api.DomainRequest, "net.openvpn.v3.element-not-found: No requires queue element found")
	}
	return t, g, id, sl.Name, sl.Description, sl.Hidden, nil
}

func (s fakeSession) UserInputProvide(t, g, id uint32, value string) *dbus.Error {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	sl := s.find(t, g, id)
	switch {
	case sl == nil:
		return api.Error(api.DomainRequest, " net.openvpn.v3.invalid-input: No matching entry found in the request queue")
	case value == "":
		return api.Errorf(api.DomainRequest, " net.openvpn.v3.error.invalid-input: No value provided for RequiresSlot ID %d", id)
	}
	sl.value, sl.provided = value, true
	s.f.answers[sl.Name] = value
	return nil
}

func (s fakeSession) Connect(sender dbus.Sender) *dbus.Error {
	f := s.f
	f.connectOnce.Do(func() { close(f.connectAsked) })
	rules, derr := f.matchRules(sender)
	if derr != nil {
		return derr
	}
	f.mu.Lock()
	// As openvpn3's backend and ours: nothing happens while input is
	// missing.
	if f.inputMissingLocked() {
		f.refusedConnects++
		f.mu.Unlock()
		return api.Error(api.DomainClient, "Required user input not provided")
	}
	f.rulesAtConnect = rules
	f.connects++
	pw, ch := f.answers["password"], f.answers["dynamic_challenge"]
	wantChallenge := f.challenge && ch == ""
	if wantChallenge {
		f.slots = append(f.slots, &fakeSlot{Slot: Slot{api.AttentionTypeCredentials, api.AttentionGroupChallengeDynamic, 0,
			"dynamic_challenge", "Enter the code", false}})
	}
	stray := f.strayFirst
	f.mu.Unlock()
	go func() {
		if stray {
			_ = f.conn.Emit(api.NewSessionPath(), api.InterfaceBackends+".StatusChange", uint32(api.StatusMajorConnection),
				uint32(api.StatusMinorConnAuthFailed), "another session's AUTH_FAILED")
		}
		f.setStatus(api.Status{Major: api.StatusMajorConnection, Minor: api.StatusMinorConnConnecting})
		f.log(api.LogCategoryInfo, "Connecting to 198.18.0.1:1194 over UDP")
		switch {
		case pw != f.password:
			f.setStatus(api.Status{Major: api.StatusMajorConnection, Minor: api.StatusMinorConnAuthFailed, Message: "AUTH_FAILED"})
		case wantChallenge:
			f.setStatus(api.Status{Major: api.StatusMajorConnection, Minor: api.StatusMinorCfgRequireUser, Message: "Dynamic Challenge"})
		default:
			f.setStatus(api.Status{Major: api.StatusMajorConnection, Minor: api.StatusMinorConnConnected})
		}
	}()
	return nil
}

func (s fakeSession) LogForward(enable bool) *dbus.Error {
	if err := s.f.unborn("LogForward"); err != nil {
		return err
	}
	if enable {
		s.f.forwardOnce.Do(func() { close(s.f.forwardAsked) })
	}
	s.f.mu.Lock()
	wait := enable && s.f.forwardAwaitsReady
	hold := s.f.holdForwardOff
	s.f.mu.Unlock()
	if !enable && hold != nil {
		s.f.awaitOr(hold, &s.f.forwardOffHeld)
	}
	if wait {
		s.f.awaitOr(s.f.readyAsked, &s.f.forwardAlone)
	}
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	s.f.forwards = append(s.f.forwards, enable)
	return nil
}

func (s fakeSession) Disconnect() *dbus.Error {
	f := s.f
	f.mu.Lock()
	stopped := f.stopped
	f.mu.Unlock()
	if stopped {
		go func() { // the session manager notices the dead backend later
			time.Sleep(200 * time.Millisecond)
			f.remove()
		}()
		return api.Error(api.DomainGDBusPP, "VPN session is stopped")
	}
	f.remove()
	return nil
}

func (f *fakeServices) remove() {
	f.mu.Lock()
	p := f.session
	f.session = ""
	f.mu.Unlock()
	f.conn.Export(nil, p, api.InterfaceSessions)
	f.conn.Export(nil, p, api.InterfaceProperties)
	_ = f.conn.Emit(api.PathSessions, api.InterfaceSessions+".SessionManagerEvent", p, uint16(api.SessionEventDestroyed), uint32(0))
}

// fakeProps serves Properties of a profile or the session.
type fakeProps struct {
	f    *fakeServices
	path dbus.ObjectPath
}

func (p fakeProps) all() map[string]dbus.Variant {
	p.f.mu.Lock()
	defer p.f.mu.Unlock()
	if name, ok := p.f.profiles[p.path]; ok {
		return map[string]dbus.Variant{
			"name": dbus.MakeVariant(name), "owner": dbus.MakeVariant(uint32(0)), "valid": dbus.MakeVariant(true),
			"import_timestamp": dbus.MakeVariant(uint64(1700000000)), "tags": dbus.MakeVariant([]string{"work"}),
			"overrides": dbus.MakeVariant(map[string]dbus.Variant{"persist-tun": dbus.MakeVariant(true)}),
		}
	}
	st := p.f.status
	return map[string]dbus.Variant{
		"owner": dbus.MakeVariant(uint32(0)),
		// (uus) and (ssu) as structs, as GDBus sends them
		"status": dbus.MakeVariant(struct {
			A, B uint32
			C    string
		}{uint32(st.Major), uint32(st.Minor), st.Message}),
		"connected_to": dbus.MakeVariant(struct {
			A, B string
			C    uint32
		}{"UDP", "198.18.0.1", 1194}),
		"device_name": dbus.MakeVariant("ovpn0"),
		"device_path": dbus.MakeVariant(dbus.ObjectPath("/net/openvpn/v3/netcfg/1_ovpn0")),
		"statistics":  dbus.MakeVariant(map[string]int64{"BYTES_IN": 10}),
	}
}

func (p fakeProps) Get(iface, name string) (dbus.Variant, *dbus.Error) {
	p.f.mu.Lock()
	_, profile := p.f.profiles[p.path]
	p.f.mu.Unlock()
	if !profile {
		if err := p.f.unborn("Get " + name); err != nil {
			return dbus.Variant{}, err
		}
	}
	if name == "status" {
		p.f.mu.Lock()
		p.f.statusReads++
		wait := p.f.statusAwaitsForward && p.f.statusReads == 1
		p.f.mu.Unlock()
		if wait {
			p.f.awaitOr(p.f.forwardAsked, &p.f.statusAlone)
		}
	}
	v, ok := p.all()[name]
	if !ok {
		return dbus.Variant{}, api.ErrNoSuchProperty(name)
	}
	return v, nil
}

func (p fakeProps) GetAll(iface string) (map[string]dbus.Variant, *dbus.Error) {
	return p.all(), nil
}

func (p fakeProps) Set(iface, name string, v dbus.Variant) *dbus.Error {
	return api.ErrNotWritable(name)
}

func (f *fakeServices) snapshot() (connects int, forwards []bool, answers map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a := map[string]string{}
	for k, v := range f.answers {
		a[k] = v
	}
	return f.connects, append([]bool(nil), f.forwards...), a
}
