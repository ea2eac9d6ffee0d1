package configmgr

import (
	"slices"
	"strings"

	"github.com/godbus/dbus/v5"
	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/busobj"
)

// writeMethods are refused on sealed profiles and allowed to the owner only.
var writeMethods = map[string]bool{
	"AccessGrant": true, "AccessRevoke": true, "SetOption": true, "SetOverride": true,
	"UnsetOverride": true, "AddTag": true, "RemoveTag": true,
}

// overrideTypes lists the override keys of spec §2.2.1 and their types.
var overrideTypes = map[string]string{
	"server-override": "s", "port-override": "s", "proto-override": "s", "ipv6": "s", "persist-tun": "b",
	"log-level": "s", "dns-fallback-google": "b", "dns-setup-disabled": "b", "dns-scope": "s",
	"dns-sync-lookup": "b", "auth-fail-retry": "b", "allow-compression": "s", "enable-legacy-algorithms": "b",
	"tls-version-min": "s", "tls-cert-profile": "s", "proxy-host": "s", "proxy-port": "s",
	"proxy-username": "s", "proxy-password": "s", "proxy-auth-cleartext": "b", "enterprise-profile": "s",
	"automatic-restart": "s",
}

// secretOverrides are shown only to the profile's owner and its session's
// backend (which uses them).
var secretOverrides = map[string]bool{"proxy-password": true}

// isBackend reports whether the caller is the backend of a session of the
// profile at path (SetBackends); such a backend plays the role of
// upstream's $OVPN user for that profile only. Without SetBackends there
// are no backends.
func (s *Service) isBackend(c *busobj.Call, path dbus.ObjectPath) bool {
	s.mu.Lock()
	f := s.backendOf
	s.mu.Unlock()
	return f != nil && f(c, path)
}

func (s *Service) authorize(p *profile) func(c *busobj.Call) error {
	return func(c *busobj.Call) error {
		s.mu.Lock()
		owner, acl, public := c.UID == p.Owner, p.inACL(c.UID), p.PublicAccess
		sealed, locked := p.Readonly, p.LockedDown
		s.mu.Unlock()
		switch c.Op {
		case busobj.OpMethod:
			switch {
			case writeMethods[c.Member]:
				if sealed {
					return busobj.Deny(textSealed)
				}
				if owner {
					return nil
				}
			case c.Member == "FetchForBackend":
				if s.isBackend(c, p.Path) {
					return nil
				}
			case c.Member == "Fetch" || c.Member == "FetchJSON":
				// public_access does not grant Fetch (spec §5.2)
				if owner || !locked && acl || s.isBackend(c, p.Path) {
					return nil
				}
			case c.Member == "Seal" || c.Member == "Remove":
				if owner {
					return nil
				}
			default:
				if owner || acl || public {
					return nil
				}
			}
			return busobj.Deny(textDenied)
		case busobj.OpGet:
			if c.Member == "owner" || owner || acl || public {
				return nil
			}
			switch c.Member {
			case "public_access", "acl", "single_use":
			default:
				if s.isBackend(c, p.Path) {
					return nil
				}
			}
			return busobj.Deny(textDenied)
		case busobj.OpSet:
			if sealed {
				return busobj.Deny(textSealed)
			}
			switch c.Member {
			case "name", "locked_down", "public_access":
				if owner {
					return nil
				}
			default:
				if owner || acl {
					return nil
				}
			}
			return busobj.Deny(textOwnerOnly)
		}
		return busobj.Deny(textDenied)
	}
}

func (s *Service) profileInterface(p *profile) *busobj.Interface {
	// get/set wrap a field accessor in the service lock; set also persists.
	get := func(f func() any) func(*busobj.Call) (any, error) {
		return func(*busobj.Call) (any, error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			return f(), nil
		}
	}
	setBool := func(f func(bool)) func(*busobj.Call, any) error {
		return func(_ *busobj.Call, v any) error {
			s.mu.Lock()
			defer s.mu.Unlock()
			f(v.(bool))
			s.persistLocked(p)
			return nil
		}
	}
	// method wraps a handler that mutates p under the lock and persists it.
	method := func(name string, in []busobj.Arg, f func(c *busobj.Call) error) busobj.Method {
		return busobj.Method{Name: name, In: in, Handler: func(c *busobj.Call) ([]any, error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			err := f(c)
			s.persistLocked(p) // Validate changes `valid` even when it fails
			return nil, err
		}}
	}
	gerr := func(text string) error { return api.Error(api.DomainGDBusPP, text) }
	uidArg := []busobj.Arg{{Name: "uid", Type: "u"}}
	tagArg := []busobj.Arg{{Name: "tag", Type: "s"}}

	return &busobj.Interface{
		Name:      api.InterfaceConfiguration,
		Authorize: s.authorize(p),
		Methods: []busobj.Method{
			method("Validate", nil, func(*busobj.Call) error {
				problems := assess(p.Config)
				p.Valid = len(problems) == 0
				if !p.Valid {
					return gerr(strings.Join(problems, "; "))
				}
				return nil
			}),
			{Name: "FetchJSON", Out: []busobj.Arg{{Name: "config_json", Type: "s"}}, Handler: func(c *busobj.Call) ([]any, error) {
				s.mu.Lock()
				text := p.Config
				s.mu.Unlock()
				js, err := fetchJSON(text)
				if err != nil {
					return nil, gerr("Configuration profile is invalid: " + err.Error())
				}
				return []any{js}, nil
			}},
			{Name: "Fetch", Out: []busobj.Arg{{Name: "config", Type: "s"}}, Handler: func(c *busobj.Call) ([]any, error) {
				return []any{s.fetch(c, p)}, nil
			}},
			// ovpn3go's own, for the profile's backend only: what it
			// reads at registration (the properties name, dco and
			// overrides, then Fetch) in one round trip instead of two.
			// The properties are read before the Fetch, which removes
			// a single-use profile.
			{Name: "FetchForBackend", Out: []busobj.Arg{{Name: "name", Type: "s"}, {Name: "dco", Type: "b"},
				{Name: "overrides", Type: "a{sv}"}, {Name: "config", Type: "s"}},
				Handler: func(c *busobj.Call) ([]any, error) {
					s.mu.Lock()
					name, dco, ov := p.Name, p.DCO, p.overridesFor(true)
					s.mu.Unlock()
					return []any{name, dco, ov, s.fetch(c, p)}, nil
				}},
			method("SetOption", []busobj.Arg{{Name: "option", Type: "s"}, {Name: "value", Type: "s"}},
				func(*busobj.Call) error { return nil }), // upstream: accepted, does nothing
			method("SetOverride", []busobj.Arg{{Name: "name", Type: "s"}, {Name: "value", Type: "v"}}, func(c *busobj.Call) error {
				k, v := c.Args[0].(string), c.Args[1].(dbus.Variant)
				want, ok := overrideTypes[k]
				if !ok {
					return gerr("Invalid override key '" + k + "'")
				}
				if got := v.Signature().String(); got != want {
					if got != "s" && got != "b" {
						return gerr("Unsupported override data type: " + got)
					}
					return gerr("(SetOverride) Invalid override data type for '" + k + "': " + got)
				}
				val := v.Value()
				if str, ok := val.(string); ok {
					if len(str) > maxOverrideLen {
						return gerr("Override value for '" + k + "' is too long")
					}
					val = cleanText(str)
				}
				p.Overrides[k] = val
				return nil
			}),
			method("UnsetOverride", []busobj.Arg{{Name: "name", Type: "s"}}, func(c *busobj.Call) error {
				k := c.Args[0].(string)
				if _, ok := p.Overrides[k]; !ok {
					return gerr("Override '" + k + "' has not been set")
				}
				delete(p.Overrides, k)
				return nil
			}),
			method("AddTag", tagArg, func(c *busobj.Call) error {
				tag := cleanText(c.Args[0].(string))
				switch {
				case tag == "":
					return gerr("Tag value cannot be empty")
				case len(tag) > maxTagLength:
					return gerr("Tag value too long")
				case slices.Contains(p.Tags, tag):
					return gerr("Tag already exists")
				case len(p.Tags) >= maxTags:
					return gerr("Too many tags")
				}
				p.Tags = append(p.Tags, tag)
				return nil
			}),
			method("RemoveTag", tagArg, func(c *busobj.Call) error {
				tag := cleanText(c.Args[0].(string))
				switch {
				case tag == "":
					return gerr("Tag value cannot be empty")
				case len(tag) > maxTagLength:
					return gerr("Tag value too long")
				}
				i := slices.Index(p.Tags, tag)
				if i < 0 {
					return gerr("Non-existing tag")
				}
				p.Tags = slices.Delete(p.Tags, i, i+1)
				return nil
			}),
			method("AccessGrant", uidArg, func(c *busobj.Call) error {
				uid := c.Args[0].(uint32)
				if p.inACL(uid) {
					return gerr("UID already granted access")
				}
				p.ACL = append(p.ACL, uid)
				return nil
			}),
			method("AccessRevoke", uidArg, func(c *busobj.Call) error {
				i := slices.Index(p.ACL, c.Args[0].(uint32))
				if i < 0 {
					return gerr("UID not granted access")
				}
				p.ACL = slices.Delete(p.ACL, i, i+1)
				return nil
			}),
			method("Seal", nil, func(*busobj.Call) error {
				if !p.Valid {
					return gerr(textNotValid)
				}
				p.Readonly = true
				return nil
			}),
			{Name: "Remove", Handler: func(*busobj.Call) ([]any, error) {
				s.remove(p.Path)
				return nil, nil
			}},
		},
		Properties: []busobj.Property{
			{Name: "owner", Type: "u", Get: get(func() any { return p.Owner })},
			{Name: "acl", Type: "au", Get: get(func() any { return slices.Clone(p.ACL) })},
			{Name: "name", Type: "s", Get: get(func() any { return p.Name }),
				Set: func(_ *busobj.Call, v any) error {
					name := cleanText(v.(string))
					if len(name) > maxNameLength {
						return api.ErrFailed("Configuration name is too long")
					}
					s.mu.Lock()
					defer s.mu.Unlock()
					p.Name = name
					s.persistLocked(p)
					return nil
				}},
			{Name: "public_access", Type: "b", Get: get(func() any { return p.PublicAccess }),
				Set: setBool(func(b bool) { p.PublicAccess = b })},
			{Name: "persistent", Type: "b", Get: get(func() any { return p.Persistent })},
			{Name: "import_timestamp", Type: "t", Get: get(func() any { return p.ImportTimestamp })},
			{Name: "last_used_timestamp", Type: "t", Get: get(func() any { return p.LastUsedTimestamp })},
			{Name: "locked_down", Type: "b", Get: get(func() any { return p.LockedDown }),
				Set: setBool(func(b bool) { p.LockedDown = b })},
			{Name: "overrides", Type: "a{sv}", Get: func(c *busobj.Call) (any, error) {
				// Secrets (a proxy password) only for the owner and
				// the profile's own backend, not for the ACL or public.
				all := c.UID == p.Owner || s.isBackend(c, p.Path)
				s.mu.Lock()
				defer s.mu.Unlock()
				return p.overridesFor(all), nil
			}},
			{Name: "readonly", Type: "b", Get: get(func() any { return p.Readonly })},
			{Name: "single_use", Type: "b", Get: get(func() any { return p.SingleUse })},
			{Name: "tags", Type: "as", Get: get(func() any { return slices.Clone(p.Tags) })},
			{Name: "transfer_owner_session", Type: "b", Get: get(func() any { return p.TransferOwnerSession }),
				Set: setBool(func(b bool) { p.TransferOwnerSession = b })},
			{Name: "used_count", Type: "u", Get: get(func() any { return p.UsedCount })},
			{Name: "dco", Type: "b", Get: get(func() any { return p.DCO }),
				Set: setBool(func(b bool) { p.DCO = b })},
			{Name: "valid", Type: "b", Get: get(func() any { return p.Valid })},
		},
	}
}

// overridesFor is the overrides property's value; the secret ones only
// with all (the owner, the profile's backend). s.mu is held.
func (p *profile) overridesFor(all bool) map[string]dbus.Variant {
	m := make(map[string]dbus.Variant, len(p.Overrides))
	for k, v := range p.Overrides {
		if all || !secretOverrides[k] {
			m[k] = dbus.MakeVariant(v)
		}
	}
	return m
}

// fetch returns the profile text. A backend's Fetch counts as a use, and
// removes a single-use profile (the reply still carries the text). The
// use is written to a persistent profile's file once the reply is on its
// way: that write syncs the file and its directory (milliseconds on a real
// disk), and the backend, whose connection starts with the text, need not
// wait for two counters.
func (s *Service) fetch(c *busobj.Call, p *profile) string {
	s.mu.Lock()
	text := p.Config
	s.mu.Unlock()
	if !s.isBackend(c, p.Path) {
		return text
	}
	s.mu.Lock()
	p.UsedCount++
	p.LastUsedTimestamp = uint64(s.now().Unix())
	single := p.SingleUse
	s.mu.Unlock()
	if single {
		s.remove(p.Path) // its file goes: no use to write
		return text
	}
	c.AfterReply(func() { s.writeUse(p) })
	return text
}

// writeUse writes a backend's use to the profile's file, unless the
// profile was removed meanwhile.
func (s *Service) writeUse(p *profile) {
	s.mu.Lock()
	hook := s.useHook
	s.mu.Unlock()
	if hook != nil {
		hook()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.profiles[p.Path] == p {
		s.persistLocked(p)
	}
}

// checkRequired lists the required options a profile lacks (Validate's
// rule) and whether it is a server-locked profile.
func checkRequired(text string) (missing []string, serverLocked bool) {
	have := map[string]bool{}
	inline := ""
	for _, line := range strings.Split(text, "\n") {
		l := strings.TrimSpace(line)
		if inline != "" {
			if l == "</"+inline+">" {
				inline = ""
			}
			continue
		}
		if l == "" || l[0] == '#' || l[0] == ';' {
			continue
		}
		if strings.HasPrefix(l, "<") && strings.HasSuffix(l, ">") {
			inline = l[1 : len(l)-1]
			have[inline] = true
			continue
		}
		f := strings.Fields(l)
		have[strings.TrimPrefix(f[0], "--")] = true
		if f[0] == "setenv" && len(f) > 1 && f[1] == "GENERIC_CONFIG" {
			serverLocked = true
		}
	}
	// peer-fingerprint and pkcs12 stand in for a CA, as the parser and
	// the engine accept.
	if !have["ca"] && !have["peer-fingerprint"] && !have["pkcs12"] {
		missing = append(missing, "--ca")
	}
	if !have["client"] && !have["tls-client"] {
		missing = append(missing, "--client or --tls-client")
	}
	if !have["dev"] {
		missing = append(missing, "--dev")
	}
	if !have["remote"] && !have["connection"] {
		missing = append(missing, "--remote")
	}
	return missing, serverLocked
}
