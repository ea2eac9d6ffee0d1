package client

import (
	"context"
	"fmt"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
)

// Profile is a configuration profile object of net.openvpn.v3.configuration.
type Profile struct {
	Path dbus.ObjectPath
	c    *Client
}

// Profile is the handle of the profile at path (nothing is checked).
func (c *Client) Profile(path dbus.ObjectPath) *Profile { return &Profile{Path: path, c: c} }

// ImportOptions are Import's flags.
type ImportOptions struct {
	SingleUse  bool // removed by the first session that fetches it
	Persistent bool // kept across restarts of the service
}

// ImportProfile imports profile text under name. The text must be
// self-contained (files embedded as inline blocks): the service cannot read
// the caller's files.
func (c *Client) ImportProfile(ctx context.Context, name, text string, opts ImportOptions) (*Profile, error) {
	var path dbus.ObjectPath
	if err := c.configMgr(ctx, "Import", []any{name, text, opts.SingleUse, opts.Persistent}, &path); err != nil {
		return nil, err
	}
	return c.Profile(path), nil
}

// Profiles lists the profiles the caller may use.
func (c *Client) Profiles(ctx context.Context) ([]*Profile, error) {
	return c.profileList(ctx, "FetchAvailableConfigs")
}

// LookupProfile lists the profiles named name.
func (c *Client) LookupProfile(ctx context.Context, name string) ([]*Profile, error) {
	return c.profileList(ctx, "LookupConfigName", name)
}

// ProfilesByTag lists the profiles tagged tag.
func (c *Client) ProfilesByTag(ctx context.Context, tag string) ([]*Profile, error) {
	return c.profileList(ctx, "SearchByTag", tag)
}

// ProfilesByOwner lists the profiles of owner (a user name or UID).
func (c *Client) ProfilesByOwner(ctx context.Context, owner string) ([]*Profile, error) {
	return c.profileList(ctx, "SearchByOwner", owner)
}

func (c *Client) profileList(ctx context.Context, method string, args ...any) ([]*Profile, error) {
	var paths []dbus.ObjectPath
	if err := c.configMgr(ctx, method, args, &paths); err != nil {
		return nil, err
	}
	out := make([]*Profile, len(paths))
	for i, p := range paths {
		out[i] = c.Profile(p)
	}
	return out, nil
}

func (c *Client) configMgr(ctx context.Context, method string, args []any, out ...any) error {
	return c.Call(ctx, api.ServiceConfiguration, api.PathConfiguration, api.InterfaceConfiguration, method, args, out...)
}

// ProfileInfo is every property of a profile (spec §2.2).
type ProfileInfo struct {
	Path                 dbus.ObjectPath
	Name                 string
	Owner                uint32
	ACL                  []uint32
	PublicAccess         bool
	Persistent           bool
	LockedDown           bool
	Readonly             bool // sealed
	SingleUse            bool
	Valid                bool
	DCO                  bool
	TransferOwnerSession bool
	Imported             time.Time
	LastUsed             time.Time // zero: never used
	UsedCount            uint32
	Tags                 []string
	Overrides            map[string]any // key → string or bool
}

// Info reads all properties of the profile.
func (p *Profile) Info(ctx context.Context) (ProfileInfo, error) {
	props, err := p.c.GetAllProperties(ctx, api.ServiceConfiguration, p.Path, api.InterfaceConfiguration)
	if err != nil {
		return ProfileInfo{}, err
	}
	in := ProfileInfo{Path: p.Path, Tags: []string{}, Overrides: map[string]any{}}
	var imported, used uint64
	var overrides map[string]dbus.Variant
	storeProp(props, "name", &in.Name)
	storeProp(props, "owner", &in.Owner)
	storeProp(props, "acl", &in.ACL)
	storeProp(props, "public_access", &in.PublicAccess)
	storeProp(props, "persistent", &in.Persistent)
	storeProp(props, "locked_down", &in.LockedDown)
	storeProp(props, "readonly", &in.Readonly)
	storeProp(props, "single_use", &in.SingleUse)
	storeProp(props, "valid", &in.Valid)
	storeProp(props, "dco", &in.DCO)
	storeProp(props, "transfer_owner_session", &in.TransferOwnerSession)
	storeProp(props, "import_timestamp", &imported)
	storeProp(props, "last_used_timestamp", &used)
	storeProp(props, "used_count", &in.UsedCount)
	storeProp(props, "tags", &in.Tags)
	storeProp(props, "overrides", &overrides)
	in.Imported, in.LastUsed = unixTime(imported), unixTime(used)
	for k, v := range overrides {
		in.Overrides[k] = v.Value()
	}
	return in, nil
}

// Name reads the profile's name.
func (p *Profile) Name(ctx context.Context) (string, error) {
	var s string
	err := p.Get(ctx, "name", &s)
	return s, err
}

// Get reads one property into out.
func (p *Profile) Get(ctx context.Context, name string, out any) error {
	return p.c.GetProperty(ctx, api.ServiceConfiguration, p.Path, api.InterfaceConfiguration, name, out)
}

// Set writes one property: name (string), public_access, locked_down,
// transfer_owner_session, dco (bool).
func (p *Profile) Set(ctx context.Context, name string, value any) error {
	return p.c.SetProperty(ctx, api.ServiceConfiguration, p.Path, api.InterfaceConfiguration, name, value)
}

// Rename sets the profile's name.
func (p *Profile) Rename(ctx context.Context, name string) error { return p.Set(ctx, "name", name) }

// SetDCO sets the DCO default of sessions started from the profile.
func (p *Profile) SetDCO(ctx context.Context, on bool) error { return p.Set(ctx, "dco", on) }

func (p *Profile) call(ctx context.Context, method string, args []any, out ...any) error {
	return p.c.Call(ctx, api.ServiceConfiguration, p.Path, api.InterfaceConfiguration, method, args, out...)
}

// Fetch returns the profile text.
func (p *Profile) Fetch(ctx context.Context) (string, error) {
	var s string
	err := p.call(ctx, "Fetch", nil, &s)
	return s, err
}

// FetchJSON returns the profile as openvpn3's JSON object.
func (p *Profile) FetchJSON(ctx context.Context) (string, error) {
	var s string
	err := p.call(ctx, "FetchJSON", nil, &s)
	return s, err
}

// Validate checks the profile again; the error names what is missing.
func (p *Profile) Validate(ctx context.Context) error { return p.call(ctx, "Validate", nil) }

// SetOverride sets an override (spec §2.2.1); value is a string or a bool
// as the key demands.
func (p *Profile) SetOverride(ctx context.Context, key string, value any) error {
	switch value.(type) {
	case string, bool:
	default:
		return fmt.Errorf("override %s: value must be a string or a bool, not %T", key, value)
	}
	return p.call(ctx, "SetOverride", []any{key, dbus.MakeVariant(value)})
}

// UnsetOverride removes an override.
func (p *Profile) UnsetOverride(ctx context.Context, key string) error {
	return p.call(ctx, "UnsetOverride", []any{key})
}

// AddTag tags the profile.
func (p *Profile) AddTag(ctx context.Context, tag string) error {
	return p.call(ctx, "AddTag", []any{tag})
}

// RemoveTag removes a tag.
func (p *Profile) RemoveTag(ctx context.Context, tag string) error {
	return p.call(ctx, "RemoveTag", []any{tag})
}

// Grant gives uid access to the profile.
func (p *Profile) Grant(ctx context.Context, uid uint32) error {
	return p.call(ctx, "AccessGrant", []any{uid})
}

// Revoke takes uid's access away.
func (p *Profile) Revoke(ctx context.Context, uid uint32) error {
	return p.call(ctx, "AccessRevoke", []any{uid})
}

// Seal makes the profile read-only for good.
func (p *Profile) Seal(ctx context.Context) error { return p.call(ctx, "Seal", nil) }

// Remove deletes the profile.
func (p *Profile) Remove(ctx context.Context) error { return p.call(ctx, "Remove", nil) }

// Properties reads every property of the profile the caller may read, as
// the service sends them.
func (p *Profile) Properties(ctx context.Context) (map[string]dbus.Variant, error) {
	return p.c.GetAllProperties(ctx, api.ServiceConfiguration, p.Path, api.InterfaceConfiguration)
}
