// Package secrets is the small part of the freedesktop Secret Service API
// (org.freedesktop.secrets on the session bus: gnome-keyring, KeePassXC,
// KWallet) that the tray needs to remember credentials: store, look up and
// delete items of the default collection by attributes, with the "plain"
// transfer algorithm (the session bus is private to the user).
package secrets

import (
	"context"
	"errors"
	"fmt"

	"github.com/godbus/dbus/v5"
)

const (
	service        = "org.freedesktop.secrets"
	servicePath    = dbus.ObjectPath("/org/freedesktop/secrets")
	defaultAlias   = dbus.ObjectPath("/org/freedesktop/secrets/aliases/default")
	ifaceService   = "org.freedesktop.Secret.Service"
	ifaceColl      = "org.freedesktop.Secret.Collection"
	ifaceItem      = "org.freedesktop.Secret.Item"
	ifacePrompt    = "org.freedesktop.Secret.Prompt"
	propLabel      = "org.freedesktop.Secret.Item.Label"
	propAttributes = "org.freedesktop.Secret.Item.Attributes"
	noPrompt       = dbus.ObjectPath("/")
)

// ErrNoService means no Secret Service runs on the session bus.
var ErrNoService = errors.New("no Secret Service (org.freedesktop.secrets) on the session bus")

// secret is the (oayays) Secret struct of the API.
type secret struct {
	Session     dbus.ObjectPath
	Parameters  []byte
	Value       []byte
	ContentType string
}

// Service is a connection to the Secret Service.
type Service struct {
	conn    *dbus.Conn
	session dbus.ObjectPath
}

// Open opens a transfer session with the Secret Service on conn.
func Open(ctx context.Context, conn *dbus.Conn) (*Service, error) {
	var has bool
	if err := conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.NameHasOwner", 0, service).Store(&has); err != nil {
		return nil, fmt.Errorf("secret service: %w", err)
	}
	if !has {
		// the service may be D-Bus activatable; try it before giving up
		var names []string
		_ = conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.ListActivatableNames", 0).Store(&names)
		found := false
		for _, n := range names {
			found = found || n == service
		}
		if !found {
			return nil, ErrNoService
		}
	}
	var out dbus.Variant
	var sess dbus.ObjectPath
	err := conn.Object(service, servicePath).CallWithContext(ctx, ifaceService+".OpenSession", 0, "plain", dbus.MakeVariant("")).Store(&out, &sess)
	if err != nil {
		return nil, fmt.Errorf("secret service OpenSession: %w", err)
	}
	return &Service{conn: conn, session: sess}, nil
}

// Close ends the transfer session.
func (s *Service) Close() error {
	return s.conn.Object(service, s.session).Call("org.freedesktop.Secret.Session.Close", 0).Err
}

// unlock makes sure the objects are unlocked, following a prompt if the
// service asks for one (gnome-keyring shows its own dialog).
func (s *Service) unlock(ctx context.Context, objs []dbus.ObjectPath) error {
	var unlocked []dbus.ObjectPath
	var prompt dbus.ObjectPath
	if err := s.conn.Object(service, servicePath).CallWithContext(ctx, ifaceService+".Unlock", 0, objs).Store(&unlocked, &prompt); err != nil {
		return fmt.Errorf("secret service Unlock: %w", err)
	}
	return s.prompt(ctx, prompt)
}

func (s *Service) prompt(ctx context.Context, prompt dbus.ObjectPath) error {
	if prompt == noPrompt || prompt == "" {
		return nil
	}
	ch := make(chan *dbus.Signal, 4)
	opt := []dbus.MatchOption{dbus.WithMatchObjectPath(prompt), dbus.WithMatchInterface(ifacePrompt), dbus.WithMatchMember("Completed")}
	if err := s.conn.AddMatchSignalContext(ctx, opt...); err != nil {
		return fmt.Errorf("secret service prompt: %w", err)
	}
	defer s.conn.RemoveMatchSignal(opt...)
	s.conn.Signal(ch)
	defer s.conn.RemoveSignal(ch)
	if err := s.conn.Object(service, prompt).CallWithContext(ctx, ifacePrompt+".Prompt", 0, "").Err; err != nil {
		return fmt.Errorf("secret service prompt: %w", err)
	}
	for {
		select {
		case sig := <-ch:
			if sig.Path != prompt || sig.Name != ifacePrompt+".Completed" {
				continue
			}
			if len(sig.Body) > 0 {
				if dismissed, _ := sig.Body[0].(bool); dismissed {
					return errors.New("secret service: the unlock prompt was dismissed")
				}
			}
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// search returns the items matching attrs, unlocking locked ones.
func (s *Service) search(ctx context.Context, attrs map[string]string) ([]dbus.ObjectPath, error) {
	var unlocked, locked []dbus.ObjectPath
	if err := s.conn.Object(service, servicePath).CallWithContext(ctx, ifaceService+".SearchItems", 0, attrs).Store(&unlocked, &locked); err != nil {
		return nil, fmt.Errorf("secret service SearchItems: %w", err)
	}
	if len(locked) > 0 {
		if err := s.unlock(ctx, locked); err != nil {
			return nil, err
		}
		unlocked = append(unlocked, locked...)
	}
	return unlocked, nil
}

// Lookup returns the secret of the first item matching attrs.
func (s *Service) Lookup(ctx context.Context, attrs map[string]string) (string, bool, error) {
	items, err := s.search(ctx, attrs)
	if err != nil || len(items) == 0 {
		return "", false, err
	}
	var sec secret
	if err := s.conn.Object(service, items[0]).CallWithContext(ctx, ifaceItem+".GetSecret", 0, s.session).Store(&sec); err != nil {
		return "", false, fmt.Errorf("secret service GetSecret: %w", err)
	}
	return string(sec.Value), true, nil
}

// Store creates or replaces the item with attrs in the default collection.
func (s *Service) Store(ctx context.Context, label string, attrs map[string]string, value string) error {
	coll := s.conn.Object(service, defaultAlias)
	if err := s.unlock(ctx, []dbus.ObjectPath{defaultAlias}); err != nil {
		return err
	}
	props := map[string]dbus.Variant{propLabel: dbus.MakeVariant(label), propAttributes: dbus.MakeVariant(attrs)}
	sec := secret{Session: s.session, Value: []byte(value), ContentType: "text/plain; charset=utf8"}
	var item, prompt dbus.ObjectPath
	if err := coll.CallWithContext(ctx, ifaceColl+".CreateItem", 0, props, sec, true).Store(&item, &prompt); err != nil {
		return fmt.Errorf("secret service CreateItem: %w", err)
	}
	return s.prompt(ctx, prompt)
}

// Delete removes every item matching attrs.
func (s *Service) Delete(ctx context.Context, attrs map[string]string) error {
	items, err := s.search(ctx, attrs)
	if err != nil {
		return err
	}
	for _, it := range items {
		var prompt dbus.ObjectPath
		if err := s.conn.Object(service, it).CallWithContext(ctx, ifaceItem+".Delete", 0).Store(&prompt); err != nil {
			return fmt.Errorf("secret service Delete: %w", err)
		}
		if err := s.prompt(ctx, prompt); err != nil {
			return err
		}
	}
	return nil
}
