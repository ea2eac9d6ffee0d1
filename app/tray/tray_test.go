package tray

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"github.com/ovpn3go/ovpn3go/helper/api"
)

type fakeHost struct {
	present bool
	ch      chan bool
}

func (h *fakeHost) Watch(context.Context) (bool, <-chan bool, error) { return h.present, h.ch, nil }

func runTray(t *testing.T, tr *Tray) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { tr.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func menuText(tr *Tray) string {
	m := tr.Menu()
	if m == nil {
		return ""
	}
	return strings.Join(labels(m, ""), "|")
}

// TestTrayFollowsServices drives the whole controller with the fake
// backend: a session started elsewhere appears, its forwarded status moves
// the icon and menu and notifies once, web sign-in opens the browser once,
// the session going away clears it, the helper vanishing says so and its
// return recovers.
func TestTrayFollowsServices(t *testing.T) {
	b := newFake()
	b.profiles = []Profile{{Path: profA, Name: "alpha"}}
	rec := &recSender{}
	var mu sync.Mutex
	var opened []string
	tr := newTestTray(t, b, Options{Notify: rec, OpenURL: func(u string) error {
		mu.Lock()
		defer mu.Unlock()
		opened = append(opened, u)
		return nil
	}})
	runTray(t, tr)
	waitFor(t, func() bool { return menuText(tr) == "Connect alpha|-|Import profile…|Settings…|Quit" })

	// the CLI starts a session
	b.mu.Lock()
	b.sessions = []Session{{Path: sessA, ConfigPath: profA, ConfigName: "alpha", Status: st(api.StatusMinorCfgOK, "")}}
	b.mu.Unlock()
	b.events <- Event{Kind: EventSessionCreated, Session: sessA}
	waitFor(t, func() bool { return strings.Contains(menuText(tr), "alpha: Connecting") })
	if !strings.Contains(menuText(tr), "(Connect alpha)") {
		t.Errorf("Connect stays sensitive while the profile runs: %s", menuText(tr))
	}
	f := b.followCh(sessA)
	f <- SessionSignal{IsStatus: true, Status: st(api.StatusMinorConnConnecting, "")}
	f <- SessionSignal{Category: api.LogCategoryInfo, Message: "Connected: tunnel ovpn0, AES-256-GCM"}
	f <- SessionSignal{IsStatus: true, Status: st(api.StatusMinorConnConnected, "")}
	waitFor(t, func() bool { return tr.Model().Icon() == IconConnected })
	f <- SessionSignal{IsStatus: true, Status: st(api.StatusMinorConnConnected, "")}
	f <- SessionSignal{IsStatus: true, Status: st(api.StatusMinorConnReconnecting, "")}
	f <- SessionSignal{IsStatus: true, Status: st(api.StatusMinorConnConnecting, "")}
	f <- SessionSignal{IsStatus: true, Status: st(api.StatusMinorConnReconnecting, "")}
	f <- SessionSignal{IsStatus: true, Status: st(api.StatusMinorConnConnected, "")}
	waitFor(t, func() bool { return len(rec.all()) == 3 })
	if m := rec.all(); m[0].Body != "Connected" || m[1].Body == "Connected" || m[2].Body != "Connected" {
		t.Errorf("notifications %+v", m)
	}
	tr.mu.Lock()
	cipher := tr.cipher[sessA]
	tr.mu.Unlock()
	if cipher != "AES-256-GCM" {
		t.Errorf("cipher from the log: %q", cipher)
	}
	// web sign-in: AttentionRequired(OPEN_URL) then SESS_AUTH_URL: opened once
	url := "https://sso.example.test/login?x=1"
	// events are handled in order: the file: URL first, which must not open
	b.events <- Event{Kind: EventAttention, Session: sessA, Attention: api.AttentionGroupOpenURL, Message: "file:///etc/passwd"}
	b.events <- Event{Kind: EventAttention, Session: sessA, Attention: api.AttentionGroupOpenURL, Message: url}
	f <- SessionSignal{IsStatus: true, Status: api.Status{Major: api.StatusMajorSession, Minor: api.StatusMinorSessAuthURL, Message: url}}
	waitFor(t, func() bool { return tr.Model().Icon() == IconAttention })
	waitFor(t, func() bool {
		n := len(rec.all())
		return n > 0 && rec.all()[n-1].Actions[ActionOpenURL] != ""
	})
	mu.Lock()
	if len(opened) != 1 || opened[0] != url {
		t.Errorf("opened %v, want the URL once (and never a file: URL)", opened)
	}
	mu.Unlock()
	// the notification's "Open sign-in page" opens it again
	last := rec.all()[len(rec.all())-1]
	id := last.Replaces
	if id == 0 {
		id = uint32(len(rec.all()))
	}
	tr.NotificationAction(id, ActionOpenURL)
	mu.Lock()
	if len(opened) != 2 || opened[1] != url {
		t.Errorf("after the notification action opened %v", opened)
	}
	mu.Unlock()
	// the session ends
	b.mu.Lock()
	b.sessions = nil
	b.mu.Unlock()
	b.events <- Event{Kind: EventSessionDestroyed, Session: sessA}
	waitFor(t, func() bool { return tr.Model().Icon() == IconDisconnected && !strings.Contains(menuText(tr), "alpha:") })
	// the helper goes away and comes back
	b.mu.Lock()
	saved := b.profiles
	b.mu.Unlock()
	bGone := &goneBackend{fakeBackend: b}
	tr.opt.Backend = bGone
	b.events <- Event{Kind: EventHelperDown}
	waitFor(t, func() bool {
		return tr.Model().Icon() == IconError && strings.Contains(menuText(tr), "(The VPN service is not running)")
	})
	tr.opt.Backend = b
	b.mu.Lock()
	b.profiles = saved
	b.mu.Unlock()
	b.events <- Event{Kind: EventHelperUp}
	waitFor(t, func() bool { return menuText(tr) == "Connect alpha|-|Import profile…|Settings…|Quit" })
}

// goneBackend fails every listing like an absent helper.
type goneBackend struct{ *fakeBackend }

func (g *goneBackend) Profiles(context.Context) ([]Profile, error) { return nil, ErrSessionGone }

// TestConnectRemembersAndReasks: Connect shows the dialog, a wrong
// password is refused, the dialog asks again saying why, the right one
// is remembered and the next Connect needs no dialog.
func TestConnectRemembersAndReasks(t *testing.T) {
	b := newFake()
	b.profiles = []Profile{{Path: profA, Name: "alpha"}}
	b.slots = []Slot{slotUser, slotPass}
	store := &memStore{}
	tr := newTestTray(t, b, Options{Secrets: store})
	runTray(t, tr)
	waitFor(t, func() bool { return strings.HasPrefix(menuText(tr), "Connect alpha") })
	tr.Menu().Items[0].Action()
	answerWhenShown(t, tr.Credentials(), "/net/openvpn/v3/sessions/s1", []string{"alice", "wrong"}, true)
	f := func() *CredForm {
		var f *CredForm
		waitFor(t, func() bool { f = tr.Credentials().Open("/net/openvpn/v3/sessions/s2"); return f != nil })
		return f
	}()
	ui(func() {
		if !strings.Contains(test.RenderObjectToMarkup(f.Content), "Authentication failed") || f.Entries[1].Text != "" {
			t.Error("second round does not say why or offers the rejected password")
		}
		f.Entries[0].SetText("alice")
		f.Entries[1].SetText("right")
		f.Remember.SetChecked(true)
		test.Tap(f.Submit)
	})
	waitFor(t, func() bool { return store.slots()[string(profA)+"|password"] == "right" })
	waitFor(t, func() bool { tr.mu.Lock(); defer tr.mu.Unlock(); return !tr.starting[profA] })
	tr.Do(Action{ActConnect, profA})
	waitFor(t, func() bool { b.mu.Lock(); defer b.mu.Unlock(); return b.starts == 3 && len(b.answers) == 3 })
	if tr.Credentials().Open("/net/openvpn/v3/sessions/s3") != nil {
		t.Fatal("dialog shown although the secret is stored")
	}
	b.mu.Lock()
	if got := strings.Join(b.answers[2], ","); got != "alice,right" {
		t.Errorf("third start answered %q", got)
	}
	b.mu.Unlock()
}

// TestActionsReachBackend: Pause, Resume, Restart, Disconnect call the
// backend for the session; Statistics and Log open their windows.
func TestActionsReachBackend(t *testing.T) {
	b := newFake()
	b.profiles = []Profile{{Path: profA, Name: "alpha"}}
	b.sessions = []Session{{Path: sessA, ConfigPath: profA, ConfigName: "alpha", Status: st(api.StatusMinorConnConnected, "")}}
	b.details = Details{Server: "udp:198.18.0.1:1194", Stats: map[string]int64{"BYTES_IN": 2048}}
	tr := newTestTray(t, b, Options{})
	runTray(t, tr)
	waitFor(t, func() bool { return strings.Contains(menuText(tr), "alpha: Connected") })
	for _, k := range []ActionKind{ActPause, ActResume, ActRestart, ActDisconnect} {
		tr.Do(Action{k, sessA})
	}
	waitFor(t, func() bool { b.mu.Lock(); defer b.mu.Unlock(); return len(b.calls) == 4 })
	b.mu.Lock()
	got := strings.Join(b.calls, ",")
	b.mu.Unlock()
	for _, w := range []string{"pause " + string(sessA), "resume", "restart", "disconnect"} {
		if !strings.Contains(got, w) {
			t.Errorf("calls %s lack %s", got, w)
		}
	}
	tr.Do(Action{ActStatistics, sessA})
	waitFor(t, func() bool {
		tr.mu.Lock()
		sw := tr.statsWins[sessA]
		tr.mu.Unlock()
		ok := false
		ui(func() {
			ok = sw != nil && sw.view.Values["server"].Text == "udp:198.18.0.1:1194" && sw.view.Values["bytes_in"].Text == "2.0 KiB"
		})
		return ok
	})
	b.followCh(sessA) <- SessionSignal{Category: api.LogCategoryInfo, Message: "line before the viewer"}
	waitFor(t, func() bool { tr.mu.Lock(); defer tr.mu.Unlock(); return len(tr.logs[sessA]) == 1 })
	tr.Do(Action{ActLog, sessA})
	b.followCh(sessA) <- SessionSignal{Category: api.LogCategoryWarn, Message: "line after"}
	waitFor(t, func() bool {
		tr.mu.Lock()
		v := tr.logViews[sessA]
		tr.mu.Unlock()
		return v != nil && strings.Contains(v.Text(), "line before the viewer") && strings.Contains(v.Text(), "line after")
	})
}

// TestFallbackWindow: without a tray host the main window opens with the
// note and the same controls; a host appearing hides it.
func TestFallbackWindow(t *testing.T) {
	b := newFake()
	b.profiles = []Profile{{Path: profA, Name: "alpha"}}
	host := &fakeHost{present: false, ch: make(chan bool, 1)}
	tr := newTestTray(t, b, Options{Watcher: host})
	runTray(t, tr)
	waitFor(t, func() bool { return tr.MainWindow() != nil })
	w := tr.MainWindow()
	markup := func() (m string) { ui(func() { m = test.RenderToMarkup(w.Canvas()) }); return m }
	waitFor(t, func() bool {
		m := markup()
		return strings.Contains(m, "No system tray was found") && strings.Contains(m, "Connect alpha")
	})
	if strings.Count(markup(), "No system tray was found") != 1 {
		t.Error("the note is shown more than once")
	}
	// a tap on the window's Connect reaches the backend
	var connect *widget.Button
	var find func(o fyne.CanvasObject)
	find = func(o fyne.CanvasObject) {
		switch x := o.(type) {
		case *widget.Button:
			if x.Text == "Connect alpha" {
				connect = x
			}
		case *fyne.Container:
			for _, c := range x.Objects {
				find(c)
			}
		case *container.Scroll:
			find(x.Content)
		}
	}
	ui(func() { find(w.Content()) })
	if connect == nil {
		t.Fatal("no Connect button in the main window")
	}
	ui(func() { test.Tap(connect) })
	waitFor(t, func() bool { b.mu.Lock(); defer b.mu.Unlock(); return b.starts == 1 })
	if !tr.MainWindowShown() {
		t.Fatal("main window not shown")
	}
	host.ch <- true
	waitFor(t, func() bool { return tr.HostPresent() && !tr.MainWindowShown() })
	host.ch <- false
	waitFor(t, func() bool { return tr.MainWindowShown() })
	if strings.Count(markup(), "No system tray was found") != 1 {
		t.Error("the note is not shown exactly once after the host left again")
	}
}

// TestMenuRebuiltOnlyOnChange: republishing an unchanged model keeps the
// published menu (its exported item ids stay valid for the tray host).
func TestMenuRebuiltOnlyOnChange(t *testing.T) {
	b := newFake()
	b.profiles = []Profile{{Path: profA, Name: "alpha"}}
	tr := newTestTray(t, b, Options{})
	runTray(t, tr)
	waitFor(t, func() bool { return menuText(tr) == "Connect alpha|-|Import profile…|Settings…|Quit" })
	first := tr.Menu()
	tr.reloadSoon()
	b.events <- Event{Kind: EventProfilesChanged}
	time.Sleep(100 * time.Millisecond)
	if tr.Menu() != first {
		t.Fatal("menu rebuilt although nothing changed")
	}
	b.mu.Lock()
	b.profiles = append(b.profiles, Profile{Path: profB, Name: "beta"})
	b.mu.Unlock()
	b.events <- Event{Kind: EventProfilesChanged}
	waitFor(t, func() bool { return tr.Menu() != first && strings.Contains(menuText(tr), "Connect beta") })
}

// TestAutoConnect: the profile chosen in the settings is started when the
// tray starts, unless a session of it already runs.
func TestAutoConnect(t *testing.T) {
	b := newFake()
	b.profiles = []Profile{{Path: profA, Name: "alpha"}, {Path: profB, Name: "beta"}}
	tr := newTestTray(t, b, Options{})
	tr.app.Preferences().SetString(prefAutoConnect, "beta")
	runTray(t, tr)
	waitFor(t, func() bool { b.mu.Lock(); defer b.mu.Unlock(); return b.starts == 1 })

	b2 := newFake()
	b2.profiles = []Profile{{Path: profB, Name: "beta"}}
	b2.sessions = []Session{{Path: sessA, ConfigPath: profB, ConfigName: "beta", Status: st(api.StatusMinorConnConnected, "")}}
	tr2 := newTestTray(t, b2, Options{})
	tr2.app.Preferences().SetString(prefAutoConnect, "beta")
	t.Cleanup(func() { // runs after the tray and its goroutines stopped
		b2.mu.Lock()
		defer b2.mu.Unlock()
		if b2.starts != 0 {
			t.Error("auto-connect started a profile that already runs")
		}
	})
	runTray(t, tr2)
	waitFor(t, func() bool { return strings.Contains(menuText(tr2), "beta: Connected") })
}
