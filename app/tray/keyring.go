package tray

import (
	"context"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/app/tray/secrets"
)

// KeyringStore keeps remembered answers in the Secret Service, one item per
// profile and slot with the attributes application=ovpn3go,
// profile=<profile object path>, slot=<slot name>.
type KeyringStore struct{ S *secrets.Service }

const keyringApp = "ovpn3go"

func attrs(profile dbus.ObjectPath, slot string) map[string]string {
	m := map[string]string{"application": keyringApp, "profile": string(profile)}
	if slot != "" {
		m["slot"] = slot
	}
	return m
}

func (k KeyringStore) Lookup(ctx context.Context, profile dbus.ObjectPath, slot string) (string, bool, error) {
	return k.S.Lookup(ctx, attrs(profile, slot))
}

func (k KeyringStore) Store(ctx context.Context, profile dbus.ObjectPath, profileName, slot, value string) error {
	return k.S.Store(ctx, "ovpn3go: "+profileName+" ("+slot+")", attrs(profile, slot), value)
}

func (k KeyringStore) Delete(ctx context.Context, profile dbus.ObjectPath) error {
	return k.S.Delete(ctx, attrs(profile, ""))
}
