package tray

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/app/client"
	"github.com/ovpn3go/ovpn3go/helper/api"
)

// ClientBackend is the Backend on app/client: the tray's only way to the
// services.
type ClientBackend struct {
	C *client.Client
}

var _ Backend = ClientBackend{}
var _ Authenticator = ClientBackend{}

// mapErr turns "object gone" into ErrSessionGone and keeps the service's
// own text as the message a person reads.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, client.ErrObjectGone) {
		return fmt.Errorf("%w: %s", ErrSessionGone, client.ErrorText(err))
	}
	return errors.New(client.ErrorText(err))
}

func (b ClientBackend) Profiles(ctx context.Context) ([]Profile, error) {
	ps, err := b.C.Profiles(ctx)
	if err != nil {
		return nil, err
	}
	var out []Profile
	for _, p := range ps {
		in, err := p.Info(ctx)
		if err != nil {
			continue // removed meanwhile, or not readable by us
		}
		out = append(out, Profile{Path: p.Path, Name: in.Name, DCO: in.DCO})
	}
	return out, nil
}

func (b ClientBackend) Sessions(ctx context.Context) ([]Session, error) {
	ss, err := b.C.Sessions(ctx)
	if err != nil {
		return nil, err
	}
	var out []Session
	for _, s := range ss {
		in, err := s.Info(ctx)
		if err != nil {
			continue
		}
		out = append(out, Session{Path: s.Path, ConfigPath: in.ConfigPath, ConfigName: in.ConfigName, Status: in.Status})
	}
	return out, nil
}

// formPrompter asks for all slots of a round in one dialog.
type formPrompter struct{ p Prompter }

func convSlots(slots []client.Slot) []Slot {
	out := make([]Slot, len(slots))
	for i, s := range slots {
		out[i] = Slot{Type: s.Type, Group: s.Group, ID: s.ID, Name: s.Name, Description: s.Description, Hidden: s.Hidden}
	}
	return out
}

func (f formPrompter) AnswerAll(ctx context.Context, s *client.Session, slots []client.Slot) ([]string, error) {
	return f.p(ctx, s.Path, convSlots(slots))
}

func (f formPrompter) Answer(ctx context.Context, s *client.Session, slot client.Slot) (string, error) {
	v, err := f.p(ctx, s.Path, convSlots([]client.Slot{slot}))
	if err != nil {
		return "", err
	}
	return v[0], nil
}

// startOptions asks through p, all slots of a round in one dialog, and
// leaves web sign-in to the tray (it opens the page from the session's
// signals), so the start loop just keeps waiting.
func startOptions(p Prompter) client.StartOptions {
	return client.StartOptions{Prompter: formPrompter{p},
		WebAuth: func(context.Context, string) error { return nil }}
}

// Start is NewTunnel plus app/client's start loop. Web sign-in does not end
// it: the tray opens the page from the session's signals and Start keeps
// waiting for the tunnel. A session that failed or whose dialog was
// cancelled is disconnected, so the profile can be started again.
func (b ClientBackend) Start(ctx context.Context, profile dbus.ObjectPath, p Prompter) (dbus.ObjectPath, error) {
	s, err := b.C.NewTunnel(ctx, profile)
	if err != nil {
		return "", mapErr(err)
	}
	err = s.Start(ctx, startOptions(p))
	if err == nil || errors.Is(err, ErrAnsweredElsewhere) {
		return s.Path, nil
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), client.DefaultCallTimeout)
	_ = s.Close(cctx)
	cancel()
	switch {
	case errors.Is(err, client.ErrAuthFailed):
		return s.Path, fmt.Errorf("%w: %s", ErrAuthFailed, err.Error())
	case errors.Is(err, ErrCancelled), errors.Is(err, context.Canceled):
		return s.Path, err
	case errors.Is(err, client.ErrSessionEnded):
		// disconnected (here or elsewhere) before it was up: nothing to report
		return s.Path, fmt.Errorf("%w: %s", ErrCancelled, err.Error())
	}
	return s.Path, mapErr(err)
}

// Authenticate runs the start loop on an existing session (openvpn3
// session-auth).
func (b ClientBackend) Authenticate(ctx context.Context, session dbus.ObjectPath, p Prompter) error {
	err := b.C.Session(session).Start(ctx, startOptions(p))
	if err == nil || errors.Is(err, ErrCancelled) || errors.Is(err, ErrAnsweredElsewhere) || errors.Is(err, context.Canceled) {
		return err
	}
	if errors.Is(err, client.ErrAuthFailed) {
		return fmt.Errorf("%w: %s", ErrAuthFailed, err.Error())
	}
	return mapErr(err)
}

func (b ClientBackend) Pause(ctx context.Context, s dbus.ObjectPath) error {
	return mapErr(b.C.Session(s).Pause(ctx, "paused from the tray"))
}

func (b ClientBackend) Resume(ctx context.Context, s dbus.ObjectPath) error {
	return mapErr(b.C.Session(s).Resume(ctx))
}

func (b ClientBackend) Restart(ctx context.Context, s dbus.ObjectPath) error {
	return mapErr(b.C.Session(s).Restart(ctx))
}

func (b ClientBackend) Disconnect(ctx context.Context, s dbus.ObjectPath) error {
	return mapErr(b.C.Session(s).Close(ctx))
}

func (b ClientBackend) PendingSlots(ctx context.Context, s dbus.ObjectPath) ([]Slot, error) {
	slots, err := b.C.Session(s).PendingInput(ctx)
	if err != nil {
		return nil, mapErr(err)
	}
	return convSlots(slots), nil
}

func (b ClientBackend) Details(ctx context.Context, s dbus.ObjectPath) (Details, error) {
	sess := b.C.Session(s)
	in, err := sess.Info(ctx)
	if err != nil {
		return Details{}, mapErr(err)
	}
	d := Details{Server: in.ConnectedTo.String(), Device: in.DeviceName, Created: in.Created}
	if d.Stats, err = sess.Statistics(ctx); err != nil {
		d.Stats = map[string]int64{}
	}
	return d, nil
}

func (b ClientBackend) Import(ctx context.Context, name, text string) (dbus.ObjectPath, error) {
	p, err := b.C.ImportProfile(ctx, name, text, client.ImportOptions{Persistent: true})
	if err != nil {
		return "", mapErr(err)
	}
	return p.Path, nil
}

func (b ClientBackend) SetDCO(ctx context.Context, profile dbus.ObjectPath, on bool) error {
	return mapErr(b.C.Profile(profile).SetDCO(ctx, on))
}

// Events merges session manager, configuration and attention broadcasts
// and the session manager's name owner into one channel.
func (b ClientBackend) Events(ctx context.Context) (<-chan Event, error) {
	sm, err := b.C.SessionManagerEvents(ctx)
	if err != nil {
		return nil, err
	}
	cfg, err := b.C.ConfigurationEvents(ctx)
	if err != nil {
		return nil, err
	}
	att, err := b.C.AttentionRequired(ctx)
	if err != nil {
		return nil, err
	}
	owners, err := b.C.ServiceOwners(ctx, api.ServiceSessions)
	if err != nil {
		return nil, err
	}
	out := make(chan Event, 16)
	var wg sync.WaitGroup
	send := func(e Event) bool {
		select {
		case out <- e:
			return true
		case <-ctx.Done():
			return false
		}
	}
	pump := func(f func() bool) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f() {
			}
		}()
	}
	pump(func() bool {
		e, ok := <-sm
		if !ok {
			return false
		}
		k := EventSessionCreated
		if e.Type == api.SessionEventDestroyed {
			k = EventSessionDestroyed
		}
		return send(Event{Kind: k, Session: e.Path})
	})
	pump(func() bool {
		_, ok := <-cfg
		return ok && send(Event{Kind: EventProfilesChanged})
	})
	pump(func() bool {
		a, ok := <-att
		return ok && send(Event{Kind: EventAttention, Session: a.Path, Attention: a.Group, Message: a.Message})
	})
	pump(func() bool {
		o, ok := <-owners
		if !ok {
			return false
		}
		k := EventHelperDown
		if o.Running {
			k = EventHelperUp
		}
		return send(Event{Kind: k})
	})
	go func() {
		wg.Wait()
		close(out)
	}()
	return out, nil
}

// Follow forwards one session's status and log lines.
func (b ClientBackend) Follow(ctx context.Context, s dbus.ObjectPath) (<-chan SessionSignal, error) {
	ch, err := b.C.Session(s).Follow(ctx)
	if err != nil {
		return nil, mapErr(err)
	}
	out := make(chan SessionSignal, 64)
	go func() {
		defer close(out)
		for e := range ch {
			var sig SessionSignal
			switch e := e.(type) {
			case client.StatusChange:
				sig = SessionSignal{IsStatus: true, Status: e.Status}
			case client.LogLine:
				sig = SessionSignal{Category: e.Category, Message: e.Message, Time: e.Time}
			default:
				continue
			}
			select {
			case out <- sig:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}
