package tray

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"regexp"
	"sync"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/driver/desktop"
	"fyne.io/fyne/v2/lang"
	"fyne.io/fyne/v2/widget"
	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/assets"
	"github.com/ovpn3go/ovpn3go/helper/api"
)

// Options are the tray's collaborators; only Backend is required.
type Options struct {
	Backend Backend
	Secrets SecretStore // nil: nothing is remembered
	Notify  Sender      // nil: no notifications
	// OpenURL opens a web sign-in page (xdg-open or the OpenURI portal:
	// fyne.App.OpenURL does both); nil uses the app's.
	OpenURL func(string) error
	// Watcher tells whether a StatusNotifierItem host runs and when that
	// changes; nil means "assume one runs".
	Watcher HostWatcher
	// AutostartDir and Executable are where the autostart entry goes and
	// what it starts.
	AutostartDir string
	Executable   string
	Log          *slog.Logger
}

// HostWatcher reports whether a tray host (org.kde.StatusNotifierWatcher)
// exists now and each change after that.
type HostWatcher interface {
	Watch(ctx context.Context) (present bool, changes <-chan bool, err error)
}

// Tray is the running application.
type Tray struct {
	app   fyne.App
	opt   Options
	log   *slog.Logger
	creds *Credentials
	notes *Notifier
	ctx   context.Context

	mu         sync.Mutex
	model      Model
	attention  map[dbus.ObjectPath]api.AttentionGroup
	follows    map[dbus.ObjectPath]context.CancelFunc
	statsWins  map[dbus.ObjectPath]*statsWindow
	logViews   map[dbus.ObjectPath]*LogView
	logs       map[dbus.ObjectPath][]LogLine // kept so a viewer opened later shows history
	cipher     map[dbus.ObjectPath]string
	connAt     map[dbus.ObjectPath]time.Time
	starting   map[dbus.ObjectPath]bool // profiles the tray is starting
	opened     map[dbus.ObjectPath]string
	hostUp     bool
	saidNoHost bool
	mainShown  bool
	menuSig    string    // what the published menu shows (Model.signature)
	icon       IconState // the published icon
	iconSet    bool
	wg         sync.WaitGroup // goroutines started for actions; Run waits for them
	mainWin    fyne.Window
	menu       *fyne.Menu
	reload     chan struct{}
	signals    chan sessionSignal
	// OnModel, if set, is called (on the Fyne thread) after every model
	// change: tests and the test control use it.
	OnModel func(Model)
}

type sessionSignal struct {
	path dbus.ObjectPath
	sig  SessionSignal
	end  bool
}

type statsWindow struct {
	w    fyne.Window
	view *StatsView
}

// New makes the tray for app a. Call Run to start it.
func New(a fyne.App, o Options) *Tray {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	t := &Tray{app: a, opt: o, log: o.Log,
		creds:     &Credentials{App: a, Store: o.Secrets},
		attention: map[dbus.ObjectPath]api.AttentionGroup{},
		follows:   map[dbus.ObjectPath]context.CancelFunc{},
		statsWins: map[dbus.ObjectPath]*statsWindow{},
		logViews:  map[dbus.ObjectPath]*LogView{},
		logs:      map[dbus.ObjectPath][]LogLine{},
		cipher:    map[dbus.ObjectPath]string{},
		connAt:    map[dbus.ObjectPath]time.Time{},
		starting:  map[dbus.ObjectPath]bool{},
		opened:    map[dbus.ObjectPath]string{},
		hostUp:    true,
		reload:    make(chan struct{}, 1),
		signals:   make(chan sessionSignal, 64),
		ctx:       context.Background(),
	}
	if o.Notify != nil {
		t.notes = &Notifier{Sender: o.Notify, Enabled: func() bool {
			return a.Preferences().BoolWithFallback(prefNotifications, true)
		}}
	}
	return t
}

// Credentials is the tray's credential handling (tests and the test
// control reach the open dialogs through it).
func (t *Tray) Credentials() *Credentials { return t.creds }

// Model returns a copy of what the tray shows now.
func (t *Tray) Model() Model {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.model
	m.Profiles = append([]Profile(nil), m.Profiles...)
	m.Sessions = append([]SessionView(nil), m.Sessions...)
	return m
}

// Run drives the tray until ctx ends: it follows the services' events,
// keeps the icon, menu and windows current, and reacts to the menu.
func (t *Tray) Run(ctx context.Context) {
	t.mu.Lock()
	t.ctx = ctx
	t.mu.Unlock()
	t.publish()
	events, err := t.opt.Backend.Events(ctx)
	if err != nil {
		t.log.Error("cannot follow the VPN services", "err", err)
	}
	hostChanges := t.watchHost(ctx)
	t.refresh(ctx)
	t.goBg(func() { t.autoConnect(ctx) })
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			t.mu.Lock()
			for _, cancel := range t.follows {
				cancel()
			}
			t.mu.Unlock()
			t.wg.Wait()
			return
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			t.handleEvent(ctx, ev)
		case s := <-t.signals:
			t.handleSignal(ctx, s)
		case <-t.reload:
			t.refresh(ctx)
		case up, ok := <-hostChanges:
			if !ok {
				hostChanges = nil
				continue
			}
			t.setHost(up)
		case now := <-tick.C:
			t.everySecond(ctx, now)
		}
	}
}

// context is Run's context (Background before Run).
func (t *Tray) context() context.Context {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.ctx
}

// goBg runs f in a goroutine that Run waits for before it returns; f must
// end when Run's context ends.
func (t *Tray) goBg(f func()) {
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		f()
	}()
}

// reloadSoon asks Run to re-read profiles and sessions.
func (t *Tray) reloadSoon() {
	select {
	case t.reload <- struct{}{}:
	default:
	}
}

// refresh re-reads profiles and sessions; a failure means the helper is
// absent (the icon says so until it comes back).
func (t *Tray) refresh(ctx context.Context) {
	profiles, err := t.opt.Backend.Profiles(ctx)
	var sessions []Session
	if err == nil {
		sessions, err = t.opt.Backend.Sessions(ctx)
	}
	t.mu.Lock()
	if err != nil {
		if t.model.HelperUp {
			t.log.Warn("VPN service not reachable", "err", err)
		}
		t.model = Model{HelperUp: false}
		for p, cancel := range t.follows {
			cancel()
			delete(t.follows, p)
		}
		t.mu.Unlock()
		t.publish()
		return
	}
	old := map[dbus.ObjectPath]SessionView{}
	for _, s := range t.model.Sessions {
		old[s.Path] = s
	}
	t.model.HelperUp = true
	t.model.Profiles = profiles
	t.model.Sessions = nil
	live := map[dbus.ObjectPath]bool{}
	for _, s := range sessions {
		live[s.Path] = true
		v := SessionView{Session: s}
		if g, ok := t.attention[s.Path]; ok {
			v.Attention, v.AttentionMessage = true, g.String()
		}
		if o, ok := old[s.Path]; ok && s.Status == (api.Status{}) {
			v.Status = o.Status
		}
		t.model.Sessions = append(t.model.Sessions, v)
		if _, ok := t.follows[s.Path]; !ok {
			t.follow(ctx, s.Path)
		}
		if s.Status.Minor == api.StatusMinorConnConnected {
			if _, ok := t.connAt[s.Path]; !ok {
				t.connAt[s.Path] = time.Now()
			}
		}
	}
	var gone []dbus.ObjectPath
	for p, cancel := range t.follows {
		if !live[p] {
			cancel()
			delete(t.follows, p)
			gone = append(gone, p)
		}
	}
	t.mu.Unlock()
	for _, p := range gone {
		t.sessionGone(ctx, p, old[p])
	}
	t.publish()
}

// follow starts forwarding a session's signals (called with t.mu held).
func (t *Tray) follow(ctx context.Context, path dbus.ObjectPath) {
	fctx, cancel := context.WithCancel(ctx)
	t.follows[path] = cancel
	t.goBg(func() {
		ch, err := t.opt.Backend.Follow(fctx, path)
		if err != nil {
			t.log.Debug("cannot follow session", "session", path, "err", err)
			return
		}
		for {
			var s SessionSignal
			var ok bool
			select {
			case s, ok = <-ch:
				if !ok {
					return
				}
			case <-fctx.Done():
				return
			}
			select {
			case t.signals <- sessionSignal{path: path, sig: s}:
			case <-fctx.Done():
				return
			}
		}
	})
}

func (t *Tray) sessionGone(ctx context.Context, path dbus.ObjectPath, last SessionView) {
	if t.notes != nil && last.Path != "" {
		t.notes.Status(ctx, path, last.ConfigName, api.Status{Major: api.StatusMajorSession, Minor: api.StatusMinorProcStopped})
		t.notes.Forget(path)
	}
	t.mu.Lock()
	delete(t.attention, path)
	delete(t.cipher, path)
	delete(t.connAt, path)
	delete(t.opened, path)
	delete(t.logs, path)
	sw := t.statsWins[path]
	delete(t.statsWins, path)
	t.mu.Unlock()
	if sw != nil {
		onUI(func() { sw.view.Values["since"].SetText(lang.L("Disconnected")) })
	}
	t.creds.AnsweredElsewhere(path, nil)
}

func (t *Tray) handleEvent(ctx context.Context, ev Event) {
	switch ev.Kind {
	case EventAttention:
		t.mu.Lock()
		t.attention[ev.Session] = ev.Attention
		t.mu.Unlock()
		if ev.Attention == api.AttentionGroupOpenURL {
			t.openWebAuth(ev.Session, ev.Message)
		}
		t.refresh(ctx)
	case EventHelperDown:
		t.mu.Lock()
		t.model.HelperUp = false
		t.mu.Unlock()
		t.refresh(ctx)
	default:
		t.refresh(ctx)
	}
}

// cipherRE finds the data-channel cipher in the backend's log lines.
var cipherRE = regexp.MustCompile(`\b(AES-(?:128|192|256)-(?:GCM|CBC)|CHACHA20-POLY1305|BF-CBC)\b`)

func (t *Tray) handleSignal(ctx context.Context, s sessionSignal) {
	t.mu.Lock()
	var view SessionView
	found := false
	for i := range t.model.Sessions {
		if t.model.Sessions[i].Path == s.path {
			if s.sig.IsStatus {
				t.model.Sessions[i].Status = s.sig.Status
				if s.sig.Status.Minor != api.StatusMinorCfgRequireUser && s.sig.Status.Minor != api.StatusMinorSessAuthURL {
					delete(t.attention, s.path)
					t.model.Sessions[i].Attention = false
				}
			}
			view, found = t.model.Sessions[i], true
		}
	}
	var lv *LogView
	if !s.sig.IsStatus {
		line := LogLine{Time: s.sig.Time, Category: s.sig.Category, Message: s.sig.Message}
		if line.Time.IsZero() {
			line.Time = time.Now()
		}
		t.logs[s.path] = append(t.logs[s.path], line)
		if len(t.logs[s.path]) > maxLogLines {
			t.logs[s.path] = t.logs[s.path][1:]
		}
		if m := cipherRE.FindString(s.sig.Message); m != "" {
			t.cipher[s.path] = m
		}
		lv = t.logViews[s.path]
	} else if s.sig.Status.Minor == api.StatusMinorConnConnected {
		t.connAt[s.path] = time.Now()
	}
	t.mu.Unlock()
	if lv != nil {
		line := t.logs[s.path][len(t.logs[s.path])-1]
		onUI(func() { lv.Add(line) })
	}
	if !found || !s.sig.IsStatus {
		return
	}
	st := s.sig.Status
	if t.notes != nil {
		t.notes.Status(ctx, s.path, view.ConfigName, st)
	}
	switch st.Minor {
	case api.StatusMinorSessAuthURL:
		t.openWebAuth(s.path, st.Message)
	case api.StatusMinorConnAuthFailed:
		if err := t.creds.AuthFailed(ctx, view.ConfigPath, lang.L("Authentication failed")); err != nil {
			t.log.Warn("cannot discard the stored secret", "err", err)
		}
	}
	if st.Minor != api.StatusMinorCfgRequireUser {
		t.checkDialog(ctx, s.path)
	}
	t.publish()
}

// checkDialog closes a session's credential dialog once its slots were
// answered elsewhere.
func (t *Tray) checkDialog(ctx context.Context, session dbus.ObjectPath) {
	if t.creds.Open(session) == nil {
		return
	}
	pending, err := t.opt.Backend.PendingSlots(ctx, session)
	if err != nil {
		if errors.Is(err, ErrSessionGone) {
			t.creds.AnsweredElsewhere(session, nil)
		}
		return
	}
	t.creds.AnsweredElsewhere(session, pending)
}

// ErrSessionGone is what Backend methods return for a session that no
// longer exists.
var ErrSessionGone = errors.New("the session no longer exists")

func (t *Tray) everySecond(ctx context.Context, now time.Time) {
	t.mu.Lock()
	var dialogs []dbus.ObjectPath
	for _, s := range t.model.Sessions {
		if t.creds.Open(s.Path) != nil {
			dialogs = append(dialogs, s.Path)
		}
	}
	wins := map[dbus.ObjectPath]*statsWindow{}
	for p, w := range t.statsWins {
		wins[p] = w
	}
	t.mu.Unlock()
	for _, p := range dialogs {
		t.checkDialog(ctx, p)
	}
	for p, w := range wins {
		t.updateStats(ctx, p, w, now)
	}
}

func (t *Tray) updateStats(ctx context.Context, p dbus.ObjectPath, w *statsWindow, now time.Time) {
	d, err := t.opt.Backend.Details(ctx, p)
	if err != nil {
		return
	}
	t.mu.Lock()
	cipher := t.cipher[p]
	if d.ConnectedAt.IsZero() {
		d.ConnectedAt = t.connAt[p]
	}
	t.mu.Unlock()
	onUI(func() { w.view.Update(now, d, cipher) })
}

// openWebAuth opens a sign-in URL once per session and URL (a notification
// action reopens it).
func (t *Tray) openWebAuth(session dbus.ObjectPath, raw string) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") {
		t.log.Warn("ignoring a web sign-in URL that is not http(s)", "session", session)
		return
	}
	t.mu.Lock()
	if t.opened[session] == raw {
		t.mu.Unlock()
		return
	}
	t.opened[session] = raw
	t.mu.Unlock()
	t.openURL(raw)
}

func (t *Tray) openURL(raw string) {
	open := t.opt.OpenURL
	if open == nil {
		open = func(s string) error {
			u, err := url.Parse(s)
			if err != nil {
				return err
			}
			return t.app.OpenURL(u)
		}
	}
	if err := open(raw); err != nil {
		t.log.Warn("cannot open the web sign-in page", "err", err)
	}
}

// NotificationAction handles a click on a notification's action button.
func (t *Tray) NotificationAction(id uint32, action string) {
	if t.notes == nil || action != ActionOpenURL {
		return
	}
	if u, ok := t.notes.URLFor(id); ok {
		t.openURL(u)
	}
}

// Install sets the first icon and menu; call it on the main goroutine
// before fyne.App.Run, so the tray item exists from the start.
func (t *Tray) Install() {
	m := t.Model()
	menu := BuildMenu(m, t.Do)
	if d, ok := t.app.(desktop.App); ok {
		if icon, err := assets.TrayIcon(m.Icon().AssetName()); err == nil {
			d.SetSystemTrayIcon(fyne.NewStaticResource("ovpn3go-"+m.Icon().AssetName()+".png", icon))
		}
		d.SetSystemTrayMenu(menu)
	}
	t.mu.Lock()
	t.menu, t.menuSig = menu, m.signature()
	t.icon, t.iconSet = m.Icon(), true
	t.mu.Unlock()
}

// publish pushes the model to the icon, the menu and the main window.
func (t *Tray) publish() {
	m := t.Model()
	onUI(func() {
		// Every SetSystemTrayMenu rebuilds the exported dbusmenu with new
		// item ids; a host that read the layout a moment ago would then
		// click an id that is gone. So the menu is only replaced when
		// what it shows changed (and the icon only with its state).
		sig := m.signature()
		t.mu.Lock()
		same := t.menu != nil && sig == t.menuSig
		sameIcon := t.iconSet && m.Icon() == t.icon
		t.mu.Unlock()
		if same && sameIcon {
			return
		}
		menu := BuildMenu(m, t.Do)
		if d, ok := t.app.(desktop.App); ok {
			if !sameIcon {
				if icon, err := assets.TrayIcon(m.Icon().AssetName()); err == nil {
					d.SetSystemTrayIcon(fyne.NewStaticResource("ovpn3go-"+m.Icon().AssetName()+".png", icon))
				}
			}
			if !same {
				d.SetSystemTrayMenu(menu)
			}
		}
		t.mu.Lock()
		if !same {
			t.menu, t.menuSig = menu, sig
		}
		t.icon, t.iconSet = m.Icon(), true
		win := t.mainWin
		t.mu.Unlock()
		if win != nil && !same {
			win.SetContent(t.mainContent(menu, m))
		}
		if t.OnModel != nil {
			t.OnModel(m)
		}
	})
}

// Menu is the menu as last published.
func (t *Tray) Menu() *fyne.Menu {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.menu
}

// Do performs a menu action. UI work happens on the Fyne thread, calls to
// the services in goroutines so the UI never waits for the bus.
func (t *Tray) Do(a Action) {
	ctx := t.context()
	switch a.Kind {
	case ActConnect:
		t.goBg(func() { t.connect(ctx, a.Path) })
	case ActPause:
		t.goBg(func() { t.call(lang.L("Pause"), func() error { return t.opt.Backend.Pause(ctx, a.Path) }) })
	case ActResume:
		t.goBg(func() { t.call(lang.L("Resume"), func() error { return t.opt.Backend.Resume(ctx, a.Path) }) })
	case ActRestart:
		t.goBg(func() { t.call(lang.L("Restart"), func() error { return t.opt.Backend.Restart(ctx, a.Path) }) })
	case ActDisconnect:
		t.goBg(func() {
			t.call(lang.L("Disconnect"), func() error {
				err := t.opt.Backend.Disconnect(ctx, a.Path)
				t.reloadSoon()
				return err
			})
		})
	case ActAuthenticate:
		t.goBg(func() { t.authenticate(ctx, a.Path) })
	case ActStatistics:
		t.showStats(a.Path)
	case ActLog:
		t.showLog(a.Path)
	case ActImport:
		t.ShowImport()
	case ActSettings:
		t.ShowSettings()
	case ActQuit:
		t.app.Quit()
	}
}

func (t *Tray) call(what string, f func() error) {
	if err := f(); err != nil {
		t.showError(what, err.Error())
	}
}

func (t *Tray) profile(path dbus.ObjectPath) Profile {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, p := range t.model.Profiles {
		if p.Path == path {
			return p
		}
	}
	return Profile{Path: path, Name: string(path)}
}

// ErrAuthFailed is what Backend.Start returns when the server refused the
// credentials.
var ErrAuthFailed = errors.New("authentication failed")

// maxAuthRounds bounds how often one Connect asks again after a refused
// login.
const maxAuthRounds = 3

// connect starts a profile: remembered or asked-for credentials, and after
// a refused login the stored secret is discarded and the dialog asks again.
func (t *Tray) connect(ctx context.Context, profilePath dbus.ObjectPath) {
	t.mu.Lock()
	if t.starting[profilePath] {
		t.mu.Unlock()
		return
	}
	t.starting[profilePath] = true
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		delete(t.starting, profilePath)
		t.mu.Unlock()
	}()
	p := t.profile(profilePath)
	prompt := func(ctx context.Context, session dbus.ObjectPath, slots []Slot) ([]string, error) {
		return t.creds.Prompt(ctx, p, session, slots)
	}
	for round := 0; round < maxAuthRounds; round++ {
		_, err := t.opt.Backend.Start(ctx, profilePath, prompt)
		t.reloadSoon()
		switch {
		case err == nil:
			return
		case errors.Is(err, ErrAuthFailed):
			if err := t.creds.AuthFailed(ctx, profilePath, lang.L("Authentication failed")); err != nil {
				t.log.Warn("cannot discard the stored secret", "err", err)
			}
			continue
		case errors.Is(err, ErrCancelled), errors.Is(err, ErrAnsweredElsewhere), errors.Is(err, context.Canceled):
			return
		default:
			t.showError(lang.L("Connect {{.Profile}}", map[string]any{"Profile": p.Name}), err.Error())
			return
		}
	}
}

// authenticate answers a session's pending input (started elsewhere or
// after a dismissed dialog).
func (t *Tray) authenticate(ctx context.Context, session dbus.ObjectPath) {
	t.mu.Lock()
	var sv SessionView
	for _, s := range t.model.Sessions {
		if s.Path == session {
			sv = s
		}
	}
	t.mu.Unlock()
	if sv.Status.Minor == api.StatusMinorSessAuthURL {
		t.mu.Lock()
		delete(t.opened, session)
		t.mu.Unlock()
		t.openWebAuth(session, sv.Status.Message)
		return
	}
	p := t.profile(sv.ConfigPath)
	if p.Name == string(sv.ConfigPath) {
		p.Name = sv.ConfigName
	}
	if a, ok := t.opt.Backend.(Authenticator); ok {
		err := a.Authenticate(ctx, session, func(ctx context.Context, s dbus.ObjectPath, slots []Slot) ([]string, error) {
			return t.creds.Prompt(ctx, p, s, slots)
		})
		if err != nil && !errors.Is(err, ErrCancelled) && !errors.Is(err, ErrAnsweredElsewhere) {
			t.showError(lang.L("Sign in…"), err.Error())
		}
	}
}

// Authenticator is implemented by backends that can run the start loop on
// an existing session (openvpn3 session-auth).
type Authenticator interface {
	Authenticate(ctx context.Context, session dbus.ObjectPath, p Prompter) error
}

// autoConnect starts the profile chosen in the settings, once.
func (t *Tray) autoConnect(ctx context.Context) {
	name := t.app.Preferences().String(prefAutoConnect)
	if name == "" {
		return
	}
	m := t.Model()
	for _, s := range m.Sessions {
		if s.ConfigName == name {
			return
		}
	}
	for _, p := range m.Profiles {
		if p.Name == name {
			t.connect(ctx, p.Path)
			return
		}
	}
}

func (t *Tray) showError(title, text string) {
	onUI(func() {
		w := t.app.NewWindow(title)
		l := widget.NewLabel(text)
		l.Wrapping = fyne.TextWrapWord
		w.SetContent(container.NewVBox(l, widget.NewButton(lang.L("Close"), w.Close)))
		w.Resize(fyne.NewSize(420, 10))
		w.CenterOnScreen()
		w.Show()
	})
}

// window opens (or raises) a window kept by key.
func (t *Tray) newWindow(title string, size fyne.Size) fyne.Window {
	w := t.app.NewWindow(title)
	w.Resize(size)
	w.CenterOnScreen() // away from panels at the screen's edges
	return w
}

func (t *Tray) sessionName(p dbus.ObjectPath) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.model.Sessions {
		if s.Path == p {
			return s.ConfigName
		}
	}
	return string(p)
}

func (t *Tray) showStats(p dbus.ObjectPath) {
	t.mu.Lock()
	if sw := t.statsWins[p]; sw != nil {
		t.mu.Unlock()
		sw.w.RequestFocus()
		return
	}
	t.mu.Unlock()
	w := t.newWindow(lang.L("Statistics: {{.Profile}}", map[string]any{"Profile": t.sessionName(p)}), fyne.NewSize(420, 460))
	sw := &statsWindow{w: w, view: NewStatsView()}
	w.SetContent(sw.view.Content)
	w.SetOnClosed(func() {
		t.mu.Lock()
		if t.statsWins[p] == sw {
			delete(t.statsWins, p)
		}
		t.mu.Unlock()
	})
	t.mu.Lock()
	t.statsWins[p] = sw
	t.mu.Unlock()
	w.Show()
	t.goBg(func() { t.updateStats(t.context(), p, sw, time.Now()) })
}

func (t *Tray) showLog(p dbus.ObjectPath) {
	w := t.newWindow(lang.L("Log: {{.Profile}}", map[string]any{"Profile": t.sessionName(p)}), fyne.NewSize(720, 420))
	v := NewLogView(func(s string) { t.app.Clipboard().SetContent(s) })
	t.mu.Lock()
	for _, l := range t.logs[p] {
		v.lines = append(v.lines, l)
	}
	t.logViews[p] = v
	t.mu.Unlock()
	v.SetMinLevel(api.LogCategoryInfo)
	w.SetContent(v.Content)
	w.SetOnClosed(func() {
		t.mu.Lock()
		if t.logViews[p] == v {
			delete(t.logViews, p)
		}
		t.mu.Unlock()
	})
	w.Show()
}

// ShowImport opens the import window.
func (t *Tray) ShowImport() {
	w := t.newWindow(lang.L("Import profile"), fyne.NewSize(520, 200))
	v := t.NewImportView(w)
	w.SetContent(v.Content)
	w.Show()
}

// ImportFromCommandLine imports the file given with --import and shows the
// result in the import window.
func (t *Tray) ImportFromCommandLine(path string) {
	onUI(func() {
		w := t.newWindow(lang.L("Import profile"), fyne.NewSize(520, 200))
		v := t.NewImportView(w)
		w.SetContent(v.Content)
		w.Show()
		t.importPaths(v, []string{path})
	})
}

// ShowSettings opens the settings window.
func (t *Tray) ShowSettings() {
	w := t.newWindow(lang.L("Settings"), fyne.NewSize(420, 320))
	v := t.NewSettingsView(t.Model().Profiles)
	w.SetContent(v.Content)
	w.Show()
}
