package netcfg

import (
	"fmt"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/busobj"
)

// describeSetting is one element of Describe's list (the wire type is in
// package api, shared with the client).
type describeSetting = api.NetCfgSetting

// describe is ovpn3go's own Describe: every setting of the device in one
// call, applied in order as the methods and property Sets of the same
// names would be (the same checks, the same errors; no PropertiesChanged),
// so that a backend describes its tunnel in one round trip instead of one
// per setting. It stops at the first setting refused.
func (d *device) describe(c *busobj.Call) ([]any, error) {
	var list []describeSetting
	if err := dbus.Store(c.Args, &list); err != nil {
		return nil, netcfgError("[Describe] Invalid setting list: %v", err)
	}
	iface := d.iface()
	for _, s := range list {
		if err := d.describeOne(c, iface, s); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// establishWith is ovpn3go's own EstablishWith: Describe's settings, then
// Establish, in one call. A setting refused establishes nothing.
func (d *device) establishWith(c *busobj.Call) ([]any, error) {
	if _, err := d.describe(c); err != nil {
		return nil, err
	}
	return d.establish(c) // takes no arguments of c

}

// describeOne applies one setting of Describe.
func (d *device) describeOne(c *busobj.Call, iface *busobj.Interface, s describeSetting) error {
	sub := &busobj.Call{Ctx: c.Ctx, Server: c.Server, Path: c.Path, Interface: c.Interface, Member: s.Name,
		Sender: c.Sender, UID: c.UID, PID: c.PID, Message: c.Message}
	for _, m := range iface.Methods {
		if m.Name != s.Name || !describable[m.Name] {
			continue
		}
		if len(s.Args) != len(m.In) {
			return netcfgError("[Describe] %s takes %d arguments, not %d", m.Name, len(m.In), len(s.Args))
		}
		for i, a := range s.Args {
			if got := a.Signature().String(); !sameType(got, m.In[i].Type) {
				return netcfgError("[Describe] %s argument %d is of type %s, not %s", m.Name, i, got, m.In[i].Type)
			}
			sub.Args = append(sub.Args, a.Value())
		}
		sub.Op = busobj.OpMethod
		_, err := m.Handler(sub)
		return err
	}
	for _, p := range iface.Properties {
		if p.Name != s.Name || p.Set == nil {
			continue
		}
		if len(s.Args) != 1 {
			return netcfgError("[Describe] property %s takes one value, not %d", p.Name, len(s.Args))
		}
		if got := s.Args[0].Signature().String(); !sameType(got, p.Type) {
			return netcfgError("[Describe] property %s is of type %s, not %s", p.Name, p.Type, got)
		}
		sub.Op = busobj.OpSet
		if err := p.Set(sub, s.Args[0].Value()); err != nil {
			return netcfgError("[Describe] %s: %v", p.Name, err)
		}
		return nil
	}
	return netcfgError("[Describe] %s is not a setting of the device", fmt.Sprintf("%q", s.Name))
}

// describable are the device methods Describe may call: those that only
// store a setting.
var describable = map[string]bool{
	"AddIPAddress": true, "SetRemoteAddress": true, "AddNetworks": true, "AddNetworksVia": true,
	"AddDNS": true, "AddDNSSearch": true, "SetDNSSEC": true, "SetDNSTransport": true,
}

// sameType reports whether a decoded variant's signature got fits the
// declared type want. godbus decodes an array of structs into a variant
// of arrays of variants ("aav"); its handler converts it with dbus.Store,
// which checks the structure.
func sameType(got, want string) bool {
	return got == want || got == "aav" && len(want) > 2 && want[:2] == "a("
}
