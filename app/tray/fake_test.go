package tray

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/app/tray/notify"
)

func TestMain(m *testing.M) {
	// a fixed English locale whatever the machine says (LANG=C makes
	// Fyne log a parse error)
	os.Setenv("LANGUAGE", "en")
	os.Setenv("LANG", "en_US.UTF-8")
	if err := LoadTranslations(); err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// fakeBackend is a scripted Backend: Start asks the prompter for slots
// and accepts password "right" only.
type fakeBackend struct {
	mu        sync.Mutex
	profiles  []Profile
	sessions  []Session
	slots     []Slot // asked by Start
	pending   map[dbus.ObjectPath][]Slot
	answers   [][]string
	starts    int
	calls     []string
	details   Details
	importErr error
	imported  map[string]string
	dco       map[dbus.ObjectPath]bool
	events    chan Event
	follow    map[dbus.ObjectPath]chan SessionSignal
}

func newFake() *fakeBackend {
	return &fakeBackend{pending: map[dbus.ObjectPath][]Slot{}, imported: map[string]string{},
		dco: map[dbus.ObjectPath]bool{}, events: make(chan Event, 16), follow: map[dbus.ObjectPath]chan SessionSignal{}}
}

func (f *fakeBackend) Profiles(context.Context) ([]Profile, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Profile(nil), f.profiles...), nil
}

func (f *fakeBackend) Sessions(context.Context) ([]Session, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Session(nil), f.sessions...), nil
}

func (f *fakeBackend) Start(ctx context.Context, profile dbus.ObjectPath, p Prompter) (dbus.ObjectPath, error) {
	f.mu.Lock()
	f.starts++
	s := dbus.ObjectPath(fmt.Sprintf("/net/openvpn/v3/sessions/s%d", f.starts))
	slots := f.slots
	f.pending[s] = slots
	f.mu.Unlock()
	if len(slots) == 0 {
		return s, nil
	}
	vals, err := p(ctx, s, slots)
	if err != nil {
		return s, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answers = append(f.answers, vals)
	delete(f.pending, s)
	for i, sl := range slots {
		if sl.Name == "password" && vals[i] != "right" {
			return s, ErrAuthFailed
		}
	}
	return s, nil
}

func (f *fakeBackend) rec(s string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, s)
	return nil
}

func (f *fakeBackend) Pause(_ context.Context, s dbus.ObjectPath) error {
	return f.rec("pause " + string(s))
}
func (f *fakeBackend) Resume(_ context.Context, s dbus.ObjectPath) error {
	return f.rec("resume " + string(s))
}
func (f *fakeBackend) Restart(_ context.Context, s dbus.ObjectPath) error {
	return f.rec("restart " + string(s))
}
func (f *fakeBackend) Disconnect(_ context.Context, s dbus.ObjectPath) error {
	return f.rec("disconnect " + string(s))
}

func (f *fakeBackend) PendingSlots(_ context.Context, s dbus.ObjectPath) ([]Slot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.pending[s]
	if !ok {
		return nil, ErrSessionGone
	}
	return p, nil
}

func (f *fakeBackend) Details(context.Context, dbus.ObjectPath) (Details, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.details, nil
}

func (f *fakeBackend) Import(_ context.Context, name, text string) (dbus.ObjectPath, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.importErr != nil {
		return "", f.importErr
	}
	f.imported[name] = text
	return "/net/openvpn/v3/configuration/new", nil
}

func (f *fakeBackend) SetDCO(_ context.Context, p dbus.ObjectPath, on bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dco[p] = on
	return nil
}

func (f *fakeBackend) Events(context.Context) (<-chan Event, error) { return f.events, nil }

func (f *fakeBackend) Follow(_ context.Context, s dbus.ObjectPath) (<-chan SessionSignal, error) {
	return f.followCh(s), nil
}

// followCh is session s's signal channel, made on first use.
func (f *fakeBackend) followCh(s dbus.ObjectPath) chan SessionSignal {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch, ok := f.follow[s]
	if !ok {
		ch = make(chan SessionSignal, 16)
		f.follow[s] = ch
	}
	return ch
}

// memStore is a SecretStore in memory.
type memStore struct {
	mu sync.Mutex
	m  map[string]string
}

func (s *memStore) key(p dbus.ObjectPath, slot string) string { return string(p) + "|" + slot }

func (s *memStore) Lookup(_ context.Context, p dbus.ObjectPath, slot string) (string, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[s.key(p, slot)]
	return v, ok, nil
}

func (s *memStore) Store(_ context.Context, p dbus.ObjectPath, _, slot, v string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]string{}
	}
	s.m[s.key(p, slot)] = v
	return nil
}

func (s *memStore) Delete(_ context.Context, p dbus.ObjectPath) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.m {
		if len(k) > len(p) && k[:len(p)+1] == string(p)+"|" {
			delete(s.m, k)
		}
	}
	return nil
}

func (s *memStore) slots() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]string{}
	for k, v := range s.m {
		out[k] = v
	}
	return out
}

// recSender records notifications.
type recSender struct {
	mu   sync.Mutex
	msgs []notify.Message
	err  error
}

func (r *recSender) Notify(_ context.Context, m notify.Message) (uint32, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return 0, r.err
	}
	r.msgs = append(r.msgs, m)
	if m.Replaces != 0 {
		return m.Replaces, nil
	}
	return uint32(len(r.msgs)), nil
}

func (r *recSender) all() []notify.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]notify.Message(nil), r.msgs...)
}

var errBoom = errors.New("boom")
