package client

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second) // a hung test, not a speed assertion
	t.Cleanup(cancel)
	return ctx
}

// answers is a Prompter answering by slot name and recording the order.
type answers struct {
	values map[string]string
	asked  []string
}

func (a *answers) Answer(_ context.Context, _ *Session, sl Slot) (string, error) {
	a.asked = append(a.asked, sl.Name)
	return a.values[sl.Name], nil
}

func TestStartAnswersEveryRoundAndConnects(t *testing.T) {
	f, c := startFake(t, true)
	ctx := testCtx(t)
	prof, err := c.ImportProfile(ctx, "work", "client\nremote 198.18.0.1\n", ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	created, err := c.SessionManagerEvents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	attention, err := c.AttentionRequired(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.NewTunnel(ctx, prof.Path)
	if err != nil {
		t.Fatal(err)
	}
	if ev := <-created; ev.Path != s.Path || ev.Type != api.SessionEventCreated {
		t.Fatalf("SessionManagerEvent = %+v, want SESS_CREATED of %s", ev, s.Path)
	}
	if a := <-attention; a.Path != s.Path || a.Group != api.AttentionGroupUserPassword {
		t.Fatalf("AttentionRequired = %+v", a)
	}
	p := &answers{values: map[string]string{"username": "alice", "password": "secret", "dynamic_challenge": "424242"}}
	var statuses []api.StatusMinor
	err = s.Start(ctx, StartOptions{Prompter: p, Timeout: 30 * time.Second,
		OnStatus: func(st api.Status) { statuses = append(statuses, st.Minor) }})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if want := []string{"username", "password", "dynamic_challenge"}; !reflect.DeepEqual(p.asked, want) {
		t.Errorf("asked %v, want %v", p.asked, want)
	}
	c.Close() // waits for the LogForward(false) Start left on its way
	connects, forwards, got := f.snapshot()
	if connects != 2 {
		t.Errorf("Connect called %d times, want 2 (password round, challenge round)", connects)
	}
	if !reflect.DeepEqual(got, p.values) {
		t.Errorf("the service got %v, want %v", got, p.values)
	}
	if len(forwards) != 2 || !forwards[0] || forwards[1] {
		t.Errorf("LogForward calls %v, want [true false]: Start follows the session and stops", forwards)
	}
	if len(statuses) == 0 || statuses[len(statuses)-1] != api.StatusMinorConnConnected {
		t.Errorf("statuses seen %v, want ending in CONN_CONNECTED", statuses)
	}
	in, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if in.ConnectedTo.String() != "UDP:198.18.0.1:1194" || in.DeviceName != "ovpn0" || in.Status.Minor != api.StatusMinorConnConnected ||
		in.DevicePath != "/net/openvpn/v3/netcfg/1_ovpn0" {
		t.Errorf("Info = %+v", in)
	}
	if err := s.Disconnect(ctx); err != nil {
		t.Fatal(err)
	}
	if ev := <-created; ev.Path != s.Path || ev.Type != api.SessionEventDestroyed {
		t.Fatalf("SessionManagerEvent = %+v, want SESS_DESTROYED", ev)
	}
}

func TestStartReportsAuthFailure(t *testing.T) {
	_, c := startFake(t, false)
	ctx := testCtx(t)
	prof, err := c.ImportProfile(ctx, "work", "client\n", ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.NewTunnel(ctx, prof.Path)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Start(ctx, StartOptions{Prompter: &answers{values: map[string]string{"username": "a", "password": "wrong"}}})
	var se *StartError
	if !errors.As(err, &se) || !errors.Is(err, ErrAuthFailed) || se.Status.Message != "AUTH_FAILED" {
		t.Fatalf("Start = %v, want a StartError of kind ErrAuthFailed with the status message", err)
	}
	if !strings.Contains(err.Error(), "user authentication failed: AUTH_FAILED") {
		t.Errorf("message %q", err)
	}
}

func TestStartWithoutPrompterNeedsInput(t *testing.T) {
	_, c := startFake(t, false)
	ctx := testCtx(t)
	prof, err := c.ImportProfile(ctx, "work", "client\n", ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.NewTunnel(ctx, prof.Path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx, StartOptions{}); !errors.Is(err, ErrNeedsInput) {
		t.Fatalf("Start = %v, want ErrNeedsInput", err)
	}
	// The empty answer is refused by the service and reported, not sent
	// on as if answered.
	var notices []string
	err = s.Start(ctx, StartOptions{Prompter: PromptFunc(func(context.Context, *Session, Slot) (string, error) {
		return "", nil
	}), OnNotice: func(m string) { notices = append(notices, m) }})
	if !errors.Is(err, ErrNeedsInput) || len(notices) == 0 || notices[0] != "Empty input not allowed" {
		t.Fatalf("Start = %v, notices %q", err, notices)
	}
}

func TestErrorsAreTyped(t *testing.T) {
	_, c := startFake(t, false)
	ctx := testCtx(t)
	prof, err := c.ImportProfile(ctx, "work", "client\n", ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.NewTunnel(ctx, prof.Path)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Ready(ctx)
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrNotReady) || e.Domain != api.DomainReady ||
		e.Text != "Missing user credentials" || e.Op != "Ready" || e.Path != s.Path ||
		e.Name != api.ErrorName(api.DomainReady) {
		t.Fatalf("Ready = %#v", err)
	}
	if errors.Is(err, ErrObjectGone) {
		t.Error("a not-ready error is also 'object gone'")
	}
	if err := prof.Validate(ctx); ErrorText(err) != "Configuration profile is missing required options: --ca" {
		t.Errorf("Validate = %v", err)
	}
	if _, err := c.ImportProfile(ctx, "x", "", ImportOptions{}); ErrorText(err) != "Invalid configuration profile: empty" {
		t.Errorf("Import = %v", err)
	}
	_, err = c.Session("/net/openvpn/v3/sessions/none").Status(ctx)
	if !errors.Is(err, ErrObjectGone) {
		t.Errorf("Status of a missing session = %v, want ErrObjectGone", err)
	}
	if err := s.Set(ctx, "owner", uint32(1)); !strings.Contains(ErrorText(err), "is not writable") {
		t.Errorf("Set owner = %v", err)
	}
	_, err = New(c.Conn()).ServiceVersion(ctx, api.ServiceNetCfg)
	if !errors.Is(err, ErrServiceUnknown) {
		t.Errorf("version of a service nobody runs = %v, want ErrServiceUnknown", err)
	}
}

func TestProfilesAndInfo(t *testing.T) {
	_, c := startFake(t, false)
	ctx := testCtx(t)
	events, err := c.ConfigurationEvents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	prof, err := c.ImportProfile(ctx, "work", "client\n", ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ev := <-events; ev.Path != prof.Path || ev.Type != api.ConfigEventCreated {
		t.Errorf("ConfigurationManagerEvent = %+v, want CFG_CREATED of %s", ev, prof.Path)
	}
	found, err := c.LookupProfile(ctx, "work")
	if err != nil || len(found) != 1 || found[0].Path != prof.Path {
		t.Fatalf("LookupProfile = %v, %v", found, err)
	}
	in, err := prof.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if in.Name != "work" || !in.Valid || in.Imported.Unix() != 1700000000 || !in.LastUsed.IsZero() ||
		!reflect.DeepEqual(in.Tags, []string{"work"}) || in.Overrides["persist-tun"] != true {
		t.Errorf("Info = %+v", in)
	}
}

func TestFollowDeliversAndStops(t *testing.T) {
	f, c := startFake(t, false)
	ctx := testCtx(t)
	prof, err := c.ImportProfile(ctx, "work", "client\n", ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.NewTunnel(ctx, prof.Path)
	if err != nil {
		t.Fatal(err)
	}
	fctx, stop := context.WithCancel(ctx)
	events, err := s.Follow(fctx)
	if err != nil {
		t.Fatal(err)
	}
	// A second Follow of the same session shares the one forward.
	f2ctx, stop2 := context.WithCancel(ctx)
	events2, err := s.Follow(f2ctx)
	if err != nil {
		t.Fatal(err)
	}
	f.log(api.LogCategoryWarn, "hello")
	f.setStatus(api.Status{Major: api.StatusMajorConnection, Minor: api.StatusMinorConnConnecting})
	for _, ch := range []<-chan Event{events, events2} {
		l, ok := (<-ch).(LogLine)
		if !ok || l.Message != "hello" || l.Category != api.LogCategoryWarn || l.Group != api.LogGroupClient || l.Path != s.Path {
			t.Fatalf("first event %+v, want the log line", l)
		}
		st, ok := (<-ch).(StatusChange)
		if !ok || st.Status.Minor != api.StatusMinorConnConnecting {
			t.Fatalf("second event %+v, want CONN_CONNECTING", st)
		}
	}
	stop2()
	for range events2 { // closed once stopped
	}
	if _, fw, _ := f.snapshot(); len(fw) != 1 {
		t.Errorf("LogForward calls %v after one of two Follows ended, want [true]", fw)
	}
	stop()
	for range events {
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, fw, _ := f.snapshot()
		if reflect.DeepEqual(fw, []bool{true, false}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("LogForward calls %v, want [true false]", fw)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestServiceOwners(t *testing.T) {
	f, c := startFake(t, false)
	ctx := testCtx(t)
	owners, err := c.ServiceOwners(ctx, api.ServiceSessions, api.ServiceNetCfg)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := <-owners, <-owners; a != (ServiceOwner{api.ServiceSessions, true}) || b != (ServiceOwner{api.ServiceNetCfg, false}) {
		t.Fatalf("initial owners %v %v", a, b)
	}
	if _, err := f.conn.ReleaseName(api.ServiceSessions); err != nil {
		t.Fatal(err)
	}
	if o := <-owners; o != (ServiceOwner{api.ServiceSessions, false}) {
		t.Fatalf("after release: %v", o)
	}
}

// The end of a session can be polled before its forwarded failure is read:
// awaitFailure must still find the reason among the pending events.
func TestAwaitFailureFindsPendingReason(t *testing.T) {
	path := dbus.ObjectPath("/net/openvpn/v3/sessions/x")
	events := make(chan Event, 4)
	events <- StatusChange{path, api.Status{Major: api.StatusMajorConnection, Minor: api.StatusMinorConnConnecting}}
	events <- StatusChange{path, api.Status{Major: api.StatusMajorConnection, Minor: api.StatusMinorConnFailed, Message: "no response from server"}}
	w := &waiter{events: events}
	st, ok := w.awaitFailure()
	if !ok || st.Minor != api.StatusMinorConnFailed || st.Message != "no response from server" {
		t.Fatalf("awaitFailure = %v, %v", st, ok)
	}
}

// form is a FormPrompter: it is asked once per round with all slots.
type form struct {
	values map[string]string
	rounds [][]string
}

func (f *form) Answer(context.Context, *Session, Slot) (string, error) {
	return "", errors.New("Answer called on a FormPrompter")
}

func (f *form) AnswerAll(_ context.Context, _ *Session, slots []Slot) ([]string, error) {
	var names, out []string
	for _, sl := range slots {
		names = append(names, sl.Name)
		out = append(out, f.values[sl.Name])
	}
	f.rounds = append(f.rounds, names)
	return out, nil
}

func TestStartAsksAFormPrompterPerRound(t *testing.T) {
	_, c := startFake(t, true)
	ctx := testCtx(t)
	prof, err := c.ImportProfile(ctx, "work", "client\n", ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.NewTunnel(ctx, prof.Path)
	if err != nil {
		t.Fatal(err)
	}
	f := &form{values: map[string]string{"username": "alice", "password": "secret", "dynamic_challenge": "1"}}
	if err := s.Start(ctx, StartOptions{Prompter: f}); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if want := [][]string{{"username", "password"}, {"dynamic_challenge"}}; !reflect.DeepEqual(f.rounds, want) {
		t.Errorf("rounds %v, want %v", f.rounds, want)
	}
}

// A session whose backend already ended refuses Disconnect until the
// session manager notices; Close returns once it is really gone.
func TestCloseWaitsForAStoppedSession(t *testing.T) {
	f, c := startFake(t, false)
	ctx := testCtx(t)
	prof, err := c.ImportProfile(ctx, "work", "client\n", ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.NewTunnel(ctx, prof.Path)
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.stopped = true
	f.mu.Unlock()
	if err := s.Disconnect(ctx); !errors.Is(err, ErrSessionStopped) {
		t.Fatalf("Disconnect = %v, want ErrSessionStopped", err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := s.Status(ctx); !errors.Is(err, ErrObjectGone) {
		t.Errorf("after Close the session is still there: %v", err)
	}
}

// TestStartSendsReadyBesideLogForward: Start does not wait for LogForward's
// reply before it calls Ready (they go out side by side, with the status
// read before Connect). The fake holds LogForward until Ready came.
func TestStartSendsReadyBesideLogForward(t *testing.T) {
	f, c := startFake(t, false)
	f.mu.Lock()
	f.forwardAwaitsReady = true
	f.mu.Unlock()
	ctx := testCtx(t)
	s := workSession(ctx, t, c)
	if err := s.Start(ctx, aliceStart()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	c.Close()
	f.mu.Lock()
	alone, forwards := f.forwardAlone, f.forwards
	f.mu.Unlock()
	if alone {
		t.Error("Ready came only after LogForward had been answered")
	}
	if len(forwards) != 2 || !forwards[0] || forwards[1] {
		t.Errorf("LogForward calls %v, want [true false]", forwards)
	}
	// What ovpn3 session-start prints once connected.
	if ep, err := s.ConnectedTo(ctx); err != nil || ep.String() != "UDP:198.18.0.1:1194" {
		t.Errorf("ConnectedTo = %v, %v", ep, err)
	}
	if dev, err := s.DeviceName(ctx); err != nil || dev != "ovpn0" {
		t.Errorf("DeviceName = %q, %v", dev, err)
	}
}

// TestStartSendsConnectBesideReady: Start's first Connect goes out with
// the first Ready, not after its answer (the fake holds that Ready until
// a Connect came). A session that asks nothing is connected by it; one
// that asks refuses it, as openvpn3's backend does, and is connected once
// the answers are in.
func TestStartSendsConnectBesideReady(t *testing.T) {
	for _, asks := range []bool{false, true} {
		t.Run(fmt.Sprintf("asks=%v", asks), func(t *testing.T) {
			f, c := startFake(t, false)
			ctx := testCtx(t)
			s := workSession(ctx, t, c)
			p := &answers{values: map[string]string{"username": "alice", "password": "secret"}}
			f.mu.Lock()
			f.readyAwaitsConnect = true
			if !asks {
				f.slots = nil
				f.answers["password"] = f.password
			}
			f.mu.Unlock()
			if err := s.Start(ctx, StartOptions{Prompter: p, Timeout: 30 * time.Second}); err != nil {
				t.Fatalf("Start: %v", err)
			}
			c.Close()
			f.mu.Lock()
			alone, taken, refused := f.readyAlone, f.connects, f.refusedConnects
			f.mu.Unlock()
			if alone {
				t.Error("the first Connect came only after the first Ready had been answered")
			}
			wantAsked, wantRefused := []string(nil), 0
			if asks {
				wantAsked, wantRefused = []string{"username", "password"}, 1
			}
			if taken != 1 || refused != wantRefused || !reflect.DeepEqual(p.asked, wantAsked) {
				t.Errorf("%d Connects taken, %d refused, asked %v; want 1, %d, %v", taken, refused, p.asked, wantRefused, wantAsked)
			}
		})
	}
}

// TestStartLeavesForwardOffBehind: once connected, Start returns without
// waiting for its LogForward(false) to be answered (ovpn3 session-start
// prints and exits right then); Close waits for it, and a new Follow's
// LogForward(true) goes only after it. The fake holds LogForward(false)
// until the test lets it go.
func TestStartLeavesForwardOffBehind(t *testing.T) {
	f, c := startFake(t, false)
	c.unforwardTimeout = time.Minute // longer than the fake's hold
	release := make(chan struct{})
	f.mu.Lock()
	f.holdForwardOff = release
	f.mu.Unlock()
	ctx := testCtx(t)
	s := workSession(ctx, t, c)
	if err := s.Start(ctx, aliceStart()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	f.mu.Lock()
	held := f.forwardOffHeld
	f.mu.Unlock()
	if held {
		t.Fatal("Start returned only after LogForward(false) had been answered")
	}
	// Following again waits for the switch-off on its way.
	type followed struct {
		stop func()
		err  error
	}
	done := make(chan followed, 1)
	go func() {
		_, stop, err := s.follow(ctx)
		done <- followed{stop, err}
	}()
	close(release)
	fl := <-done
	if fl.err != nil {
		t.Fatal(fl.err)
	}
	if _, fw, _ := f.snapshot(); !reflect.DeepEqual(fw, []bool{true, false, true}) {
		t.Errorf("LogForward calls %v, want [true false true]", fw)
	}
	fl.stop()
	c.Close()
	if _, fw, _ := f.snapshot(); !reflect.DeepEqual(fw, []bool{true, false, true, false}) {
		t.Errorf("LogForward calls after Close %v, want [true false true false]", fw)
	}
}

// TestStartOneRoundTripBeforeConnect: after NewTunnel, Start sends its
// match rules, LogForward, Ready and one read of the status without
// waiting for any answer in between, then Connect: one round trip. The
// fake holds the first status read until LogForward came.
func TestStartOneRoundTripBeforeConnect(t *testing.T) {
	f, c := startFake(t, false)
	f.mu.Lock()
	f.statusAwaitsForward = true
	f.slots = nil
	f.mu.Unlock()
	ctx := testCtx(t)
	s := workSession(ctx, t, c)
	f.mu.Lock()
	f.slots = nil // nothing to ask: Ready passes at once
	f.answers["password"] = f.password
	f.mu.Unlock()
	if err := s.Start(ctx, StartOptions{Timeout: 30 * time.Second}); err != nil {
		t.Fatalf("Start: %v", err)
	}
	f.mu.Lock()
	alone, reads, connects := f.statusAlone, f.statusReads, f.connects
	f.mu.Unlock()
	if alone {
		t.Error("LogForward went out only after the first status read was answered")
	}
	// One read before Connect, one once Connect returned (the waiter's
	// first check).
	if connects != 1 || reads != 2 {
		t.Errorf("%d status reads, %d Connects; want 2 reads (one before Connect), 1 Connect", reads, connects)
	}
}

// TestStartWatchBeforeNewTunnel: with a StartWatch made before NewTunnel,
// the match rules Start follows are in place when NewTunnel arrives at
// the session manager (the bus's own list of the caller's rules), Start
// adds none of its own, and the watch delivers the session's forwarded
// status (the fake's status property never changes here, so only the
// forwarded CONN_CONNECTED can end Start) and not another session's
// (a forwarded AUTH_FAILED of another path comes first).
func TestStartWatchBeforeNewTunnel(t *testing.T) {
	f, c := startFake(t, false)
	f.mu.Lock()
	f.frozenStatus, f.strayFirst, f.statusAwaitsForward = true, true, true
	f.mu.Unlock()
	ctx := testCtx(t)
	prof, err := c.ImportProfile(ctx, "work", "client\nremote 198.18.0.1\n", ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w := c.WatchStart(ctx)
	defer w.Stop()
	s, err := c.NewTunnel(ctx, prof.Path)
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	atNewTunnel := f.rulesAtNewTunnel
	f.slots = nil // nothing to ask: Ready passes at once
	f.answers["password"] = f.password
	f.mu.Unlock()
	// The bus lists a rule's parts in its own order.
	hasRule := func(rules []string, parts ...string) bool {
		for _, r := range rules {
			all := true
			for _, p := range parts {
				all = all && strings.Contains(r, p)
			}
			if all {
				return true
			}
		}
		return false
	}
	if !hasRule(atNewTunnel, "sender='"+api.ServiceLog+"'", "interface='"+api.InterfaceBackends+"'") ||
		!hasRule(atNewTunnel, "sender='"+api.ServiceSessions+"'", "member='SessionManagerEvent'") {
		t.Errorf("the caller's rules when NewTunnel arrived:\n%s\nwant the forwarded events' and SessionManagerEvent's", strings.Join(atNewTunnel, "\n"))
	}
	var seen []api.StatusMinor
	opts := StartOptions{Timeout: 30 * time.Second, Watch: w, OnStatus: func(st api.Status) { seen = append(seen, st.Minor) }}
	if err := s.Start(ctx, opts); err != nil {
		t.Fatalf("Start: %v (statuses seen %v)", err, seen)
	}
	if len(seen) == 0 || seen[len(seen)-1] != api.StatusMinorConnConnected {
		t.Errorf("statuses seen %v; want the forwarded ones ending in CONN_CONNECTED", seen)
	}
	f.mu.Lock()
	alone, connects, atConnect := f.statusAlone, f.connects, f.rulesAtConnect
	f.mu.Unlock()
	if got := strings.Join(atConnect, "\n"); strings.Contains(got, string(s.Path)) || strings.Count(got, "type='signal'") != 2 {
		t.Errorf("the caller's rules at Connect:\n%s\nwant only the watch's two (Start added none)", got)
	}
	if alone || connects != 1 {
		t.Errorf("status read alone %v, %d Connects; want LogForward beside it and 1 Connect", alone, connects)
	}
}

// TestStartWaitsForALateSession: openvpn3-linux answers NewTunnel before
// the session object exists. Start's first calls then fail as for a
// missing object; it waits for the object and asks again.
func TestStartWaitsForALateSession(t *testing.T) {
	f, c := startFake(t, false)
	ctx := testCtx(t)
	s := workSession(ctx, t, c)
	f.mu.Lock()
	f.hidden = true
	f.mu.Unlock()
	started := make(chan error, 1)
	go func() { started <- s.Start(ctx, aliceStart()) }()
	for {
		f.mu.Lock()
		all := f.hiddenCalls["Ready"] > 0 && f.hiddenCalls["LogForward"] > 0 && f.hiddenCalls["Get status"] > 0
		if all {
			f.hidden = false
		}
		f.mu.Unlock()
		if all {
			break
		}
		select {
		case err := <-started:
			t.Fatalf("Start ended while the session did not exist: %v", err)
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
	if err := <-started; err != nil {
		t.Fatalf("Start: %v", err)
	}
	c.Close()
	if connects, fw, _ := f.snapshot(); connects != 1 || !reflect.DeepEqual(fw, []bool{true, false}) {
		t.Errorf("%d Connects, LogForward calls %v; want 1, [true false]", connects, fw)
	}
}

// aliceStart is the Start tests' options: alice's credentials on request.
func aliceStart() StartOptions {
	return StartOptions{Prompter: &answers{values: map[string]string{"username": "alice", "password": "secret"}}, Timeout: 30 * time.Second}
}

// workSession imports a small profile named "work" and starts a tunnel of
// it: the session the Start tests drive.
func workSession(ctx context.Context, t *testing.T, c *Client) *Session {
	t.Helper()
	prof, err := c.ImportProfile(ctx, "work", "client\nremote 198.18.0.1\n", ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.NewTunnel(ctx, prof.Path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
