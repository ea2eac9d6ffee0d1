// Package configmgr implements net.openvpn.v3.configuration: the manager
// object /net/openvpn/v3/configuration (Import, listings, lookups) and one
// object per imported profile, with the owner/ACL rules of spec §5.2 (root
// has no special rights on profiles; the backend of a session, as the
// session manager knows it (SetBackends), plays upstream's $OVPN user for
// that session's profile only; secret overrides are shown to the owner and
// that backend only). Profiles are parsed with helper/openvpn/profile: line errors
// refuse the import, whole-profile gaps import it with valid=false.
//
// Persistent profiles live as <id>.json files (0600) in the state
// directory, written atomically and reloaded at start with their stored
// text unchanged; unreadable, corrupt or untrusted files are logged and
// skipped, never deleted. The session manager uses the in-process Lookup.
package configmgr

import (
	"fmt"
	"log/slog"
	"os/user"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/busobj"
	"github.com/ovpn3go/ovpn3go/helper/ratelimit"
	"github.com/ovpn3go/ovpn3go/internal/version"
)

// DefaultStateDir is where persistent profiles are kept unless --state-dir
// says otherwise.
const DefaultStateDir = "/var/lib/ovpn3go"

// Texts of spec §4.3.
const (
	textDenied     = "Access to the configuration profile is denied."
	textSealed     = "Configuration profile is sealed and read-only"
	textOwnerOnly  = "Configuration can only be modified by the profile owner"
	textNotValid   = "Configuration is not currently valid"
	maxTagLength   = 128
	maxTags        = 64 // per profile
	maxNameLength  = 1024
	maxOverrideLen = 4096 // bytes of a string override value
)

// Limits protect the helper and its other users from one user's profiles:
// caps per owner UID on the number of profiles and on the bytes of their
// text (root is not capped). Zero or negative fields take the defaults.
type Limits struct {
	MaxProfiles     int // profiles per owner
	MaxProfileBytes int // bytes of profile text per owner, all profiles together
	// ImportRate limits Import calls per UID (zero: unlimited).
	ImportRate ratelimit.Rate
}

// DefaultLimits are the limits unless the helper's command line says
// otherwise (ovpn3-helper --max-profiles-per-user, --max-profile-bytes-per-user).
var DefaultLimits = Limits{MaxProfiles: 100, MaxProfileBytes: 8 << 20, ImportRate: ratelimit.Rate{PerMinute: 30, Burst: 20}}

func (l Limits) withDefaults() Limits {
	if l.MaxProfiles <= 0 {
		l.MaxProfiles = DefaultLimits.MaxProfiles
	}
	if l.MaxProfileBytes <= 0 {
		l.MaxProfileBytes = DefaultLimits.MaxProfileBytes
	}
	return l
}

// Service is the configuration manager.
type Service struct {
	logger *slog.Logger
	store  store
	now    func() time.Time

	srv *busobj.Server // set by Export

	mu        sync.Mutex
	profiles  map[dbus.ObjectPath]*profile
	backendOf func(c *busobj.Call, profile dbus.ObjectPath) bool
	limits    Limits
	imports   *ratelimit.Limiter
	useHook   func() // runs before a backend's use is written (tests)
}

// SetLimits sets the per-user caps checked by later imports; profiles
// already held are kept even when they exceed them.
func (s *Service) SetLimits(l Limits) {
	s.mu.Lock()
	s.limits = l.withDefaults()
	s.imports = ratelimit.New(l.ImportRate, nil)
	s.mu.Unlock()
}

// SetBackends tells the service how to recognise the backend of a session
// started from a profile (the session manager's BackendOf): it may Fetch
// that profile and read its properties, secrets included, as upstream's
// $OVPN user may — that profile only.
func (s *Service) SetBackends(backendOf func(c *busobj.Call, profile dbus.ObjectPath) bool) {
	s.mu.Lock()
	s.backendOf = backendOf
	s.mu.Unlock()
}

// New returns a configuration manager keeping persistent profiles in
// stateDir (DefaultStateDir when empty).
func New(stateDir string, logger *slog.Logger) *Service {
	if stateDir == "" {
		stateDir = DefaultStateDir
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &Service{
		logger:   logger,
		store:    store{dir: stateDir},
		now:      time.Now,
		profiles: map[dbus.ObjectPath]*profile{},
		limits:   DefaultLimits,
		imports:  ratelimit.New(DefaultLimits.ImportRate, nil),
	}
}

// Export loads the persistent profiles and exports the manager and every
// profile object on srv. It does not request the bus name.
func (s *Service) Export(srv *busobj.Server) error {
	s.mu.Lock()
	s.srv = srv
	loaded := s.store.loadAll(func(file string, err error) {
		s.logger.Error("skipping unusable profile file", "dir", s.store.dir, "file", file, "err", err)
	}, func(file string, err error) {
		s.logger.Warn("stored profile is not valid", "dir", s.store.dir, "file", file, "err", err)
	})
	for _, p := range loaded {
		s.profiles[p.Path] = p
	}
	s.mu.Unlock()
	if err := srv.Export(api.PathConfiguration, s.managerInterface()); err != nil {
		return fmt.Errorf("configmgr: %w", err)
	}
	for _, p := range loaded {
		if err := srv.Export(p.Path, s.profileInterface(p)); err != nil {
			return fmt.Errorf("configmgr: %w", err)
		}
		s.logger.Info("loaded persistent profile", "path", p.Path, "name", p.Name, "owner", p.Owner)
	}
	return nil
}

// Profile returns a snapshot of the profile at path, for the session manager.
func (s *Service) Profile(path dbus.ObjectPath) (Info, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.profiles[path]
	if !ok {
		return Info{}, false
	}
	return p.info(), true
}

// Lookup is Profile under the name the layout agreed on.
func (s *Service) Lookup(path dbus.ObjectPath) (Info, bool) { return s.Profile(path) }

func (s *Service) managerInterface() *busobj.Interface {
	paths := []busobj.Arg{{Name: "paths", Type: "ao"}}
	return &busobj.Interface{
		Name: api.InterfaceConfiguration,
		Methods: []busobj.Method{
			{Name: "Import", In: []busobj.Arg{{Name: "name", Type: "s"}, {Name: "config_str", Type: "s"},
				{Name: "single_use", Type: "b"}, {Name: "persistent", Type: "b"}},
				Out: []busobj.Arg{{Name: "config_path", Type: "o"}}, Handler: s.importProfile},
			{Name: "FetchAvailableConfigs", Out: paths, Handler: func(c *busobj.Call) ([]any, error) {
				return []any{s.visible(c.UID, func(*profile) bool { return true })}, nil
			}},
			{Name: "LookupConfigName", In: []busobj.Arg{{Name: "config_name", Type: "s"}},
				Out: []busobj.Arg{{Name: "config_paths", Type: "ao"}}, Handler: func(c *busobj.Call) ([]any, error) {
					name := c.Args[0].(string)
					return []any{s.visible(c.UID, func(p *profile) bool { return p.Name == name })}, nil
				}},
			{Name: "SearchByTag", In: []busobj.Arg{{Name: "tag", Type: "s"}}, Out: paths,
				Handler: func(c *busobj.Call) ([]any, error) {
					tag := c.Args[0].(string)
					return []any{s.visible(c.UID, func(p *profile) bool { return slices.Contains(p.Tags, tag) })}, nil
				}},
			{Name: "SearchByOwner", In: []busobj.Arg{{Name: "owner", Type: "s"}}, Out: paths,
				Handler: func(c *busobj.Call) ([]any, error) {
					uid, err := lookupUID(c.Args[0].(string))
					if err != nil {
						return nil, api.Error(api.DomainGDBusPP, err.Error())
					}
					return []any{s.visible(c.UID, func(p *profile) bool { return p.Owner == uid })}, nil
				}},
			{Name: "TransferOwnership", In: []busobj.Arg{{Name: "path", Type: "o"}, {Name: "new_owner_uid", Type: "u"}},
				Handler: s.transferOwnership},
		},
		Signals: []busobj.Signal{
			{Name: "Log", Args: []busobj.Arg{{Name: "group", Type: "u"}, {Name: "level", Type: "u"}, {Name: "message", Type: "s"}}},
			{Name: "ConfigurationManagerEvent", Args: []busobj.Arg{{Name: "path", Type: "o"}, {Name: "type", Type: "q"}, {Name: "owner", Type: "u"}}},
		},
		Properties: []busobj.Property{
			{Name: "version", Type: "s", Get: func(*busobj.Call) (any, error) { return version.Service(), nil }},
		},
	}
}

func lookupUID(s string) (uint32, error) {
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return uint32(n), nil
	}
	u, err := user.Lookup(s)
	if err != nil {
		return 0, fmt.Errorf("Unknown user: %s", s)
	}
	n, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("Unknown user: %s", s)
	}
	return uint32(n), nil
}

// visible lists the profiles uid may see (owner, ACL, public; root is not
// special) that match, sorted for stable output.
func (s *Service) visible(uid uint32, match func(*profile) bool) []dbus.ObjectPath {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []dbus.ObjectPath{}
	for _, p := range s.profiles {
		if p.canUse(uid) && match(p) {
			out = append(out, p.Path)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func (s *Service) importProfile(c *busobj.Call) ([]any, error) {
	s.mu.Lock()
	imports := s.imports
	s.mu.Unlock()
	if err := imports.Check(c.UID, "Import"); err != nil {
		s.logger.Warn("import refused: rate limit", "owner", c.UID)
		return nil, err
	}
	name := cleanText(c.Args[0].(string))
	text := c.Args[1].(string)
	singleUse, persistent := c.Args[2].(bool), c.Args[3].(bool)
	if len(name) > maxNameLength {
		return nil, api.Error(api.DomainRequest, "Invalid configuration profile: name is too long")
	}
	pr, err := parseProfile(text)
	if err != nil {
		return nil, api.Error(api.DomainRequest, "Invalid configuration profile: "+err.Error())
	}
	now := uint64(s.now().Unix())
	p := &profile{
		Path: api.NewConfigPath(), Name: name, Owner: c.UID, ACL: []uint32{}, SingleUse: singleUse,
		Persistent: persistent, Valid: len(assess(pr.text)) == 0, ImportTimestamp: now, Tags: []string{},
		Overrides: map[string]any{}, Config: pr.text,
	}
	s.mu.Lock()
	if err := s.checkLimitsLocked(c.UID, len(p.Config)); err != nil {
		s.mu.Unlock()
		s.logger.Warn("import refused", "owner", c.UID, "err", api.ErrorText(err))
		return nil, err
	}
	if persistent {
		if err := s.store.save(p); err != nil {
			s.mu.Unlock()
			s.logger.Error("cannot store persistent profile", "path", p.Path, "err", err)
			return nil, api.Error(api.DomainRequest, "Could not store the persistent configuration profile")
		}
	}
	s.profiles[p.Path] = p
	s.mu.Unlock()
	if err := s.srv.Export(p.Path, s.profileInterface(p)); err != nil {
		s.mu.Lock()
		delete(s.profiles, p.Path)
		s.mu.Unlock()
		_ = s.store.remove(p)
		return nil, err
	}
	s.logger.Info("profile imported", "path", p.Path, "name", name, "owner", c.UID, "persistent", persistent, "single_use", singleUse)
	s.emitEvent(p.Path, api.ConfigEventCreated, p.Owner)
	return []any{p.Path}, nil
}

// checkLimitsLocked refuses a new profile of size bytes for owner uid when
// it would pass the owner's caps; root is not capped. s.mu is held.
func (s *Service) checkLimitsLocked(uid uint32, size int) error {
	if uid == 0 {
		return nil
	}
	n, bytes := 0, 0
	for _, q := range s.profiles {
		if q.Owner == uid {
			n++
			bytes += len(q.Config)
		}
	}
	if n >= s.limits.MaxProfiles {
		return api.Error(api.DomainRequest, fmt.Sprintf("Too many configuration profiles: this user already has %d (limit %d)", n, s.limits.MaxProfiles))
	}
	if bytes+size > s.limits.MaxProfileBytes {
		return api.Error(api.DomainRequest, fmt.Sprintf("Configuration profiles too large: this user's profiles would hold %d bytes (limit %d)", bytes+size, s.limits.MaxProfileBytes))
	}
	return nil
}

func (s *Service) emitEvent(path dbus.ObjectPath, t api.ConfigEventType, owner uint32) {
	if err := s.srv.Emit(api.PathConfiguration, api.InterfaceConfiguration, "ConfigurationManagerEvent", path, t, owner); err != nil {
		s.logger.Warn("ConfigurationManagerEvent not sent", "err", err)
	}
}

func (s *Service) transferOwnership(c *busobj.Call) ([]any, error) {
	// The bus policy restricts this to root upstream; we check it here too,
	// since a missing policy file must not open it to everyone.
	if c.UID != 0 {
		return nil, api.Error(api.DomainGDBusPP, textDenied)
	}
	path, newOwner := c.Args[0].(dbus.ObjectPath), c.Args[1].(uint32)
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.profiles[path]
	if !ok { // upstream: silently nothing
		return nil, nil
	}
	p.Owner = newOwner
	s.persistLocked(p)
	return nil, nil
}

// persistLocked rewrites a persistent profile's file; s.mu is held.
func (s *Service) persistLocked(p *profile) {
	if !p.Persistent {
		return
	}
	if err := s.store.save(p); err != nil {
		s.logger.Error("cannot update persistent profile", "path", p.Path, "err", err)
	}
}

// remove drops a profile: object, file, event.
func (s *Service) remove(path dbus.ObjectPath) {
	s.mu.Lock()
	p, ok := s.profiles[path]
	if ok {
		delete(s.profiles, path)
		if p.Persistent {
			if err := s.store.remove(p); err != nil {
				s.logger.Error("cannot remove profile file", "path", path, "err", err)
			}
		}
	}
	s.mu.Unlock()
	if !ok {
		return
	}
	s.srv.Unexport(path)
	s.logger.Info("profile removed", "path", path)
	s.emitEvent(path, api.ConfigEventDestroyed, p.Owner)
}
