// Package dns applies the resolver settings of VPN tunnels to the host and
// takes them back: through systemd-resolved over D-Bus when it runs (per
// link: servers, search and routing domains, default route, DNSSEC, DNS over
// TLS), else by rewriting /etc/resolv.conf and restoring the original byte
// for byte. Each backend writes what it needs to undo its changes to a
// journal in the helper's state directory before it changes anything, and
// Recover undoes what a crashed helper left behind.
package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"
)

// Link is what one tunnel device asks of the resolver.
type Link struct {
	// Key identifies the tunnel (the netcfg device path).
	Key string
	// Index and Name are the kernel's for the device.
	Index int
	Name  string
	// Servers in order of preference; port 0 means 53.
	Servers []netip.AddrPort
	// SNI is the TLS server name with DNS over TLS.
	SNI string
	// Search domains are appended to names without a dot and, in
	// systemd-resolved, also route lookups below them to the link.
	Search []string
	// Routing domains only route lookups below them to the link (split
	// DNS); they are not used for search.
	Routing []string
	// DefaultRoute: the link takes every lookup no other link has a more
	// specific routing domain for (full DNS, "~.").
	DefaultRoute bool
	// DNSSEC is "", "yes", "no" or "optional"; Transport "", "plain" or
	// "dot". Empty leaves the resolver's default.
	DNSSEC    string
	Transport string
}

// Applied is what a backend really configured for one link; netcfg reports
// it in global_dns_* and NetworkChange.
type Applied struct {
	Servers []string // "addr" or "addr:port" / "[addr]:port"
	Search  []string // search domains, routing domains prefixed with '~'
}

// Backend is one way of configuring the host's resolver.
type Backend interface {
	// Name is "systemd-resolved" or "resolv.conf".
	Name() string
	// Apply configures l (new or changed); all are every active link in
	// order of activation, l included.
	Apply(ctx context.Context, l Link, all []Link) (Applied, error)
	// Revert removes what Apply configured for l; rest are the links that
	// stay active.
	Revert(ctx context.Context, l Link, rest []Link) error
	// Recover undoes what an earlier run of the helper left applied, as
	// recorded in its journal.
	Recover(ctx context.Context) error
}

// Manager keeps the active links of one backend.
type Manager struct {
	log *slog.Logger
	// pick chooses the backend again whenever no link is active, so a
	// resolved started (or stopped) after the helper is noticed; nil
	// keeps b.
	pick func(context.Context) Backend

	mu      sync.Mutex
	b       Backend
	links   []Link // activation order
	applied map[string]Applied
	// chosenAt: Choose picked b while no link was active, for the next
	// Apply (zero: that Apply picks). A choice older than chooseFresh is
	// made again.
	chosenAt time.Time
	now      func() time.Time // time.Now; tests move it
}

// chooseFresh is how long a backend chosen ahead (Choose) stands for the
// next Apply: a tunnel's handshake takes well under it, and a choice that
// old is made again.
const chooseFresh = 30 * time.Second

// NewManager returns a manager applying through b.
func NewManager(b Backend, logger *slog.Logger) *Manager {
	if logger == nil {
		logger = slog.Default()
	}
	return &Manager{b: b, log: logger, applied: map[string]Applied{}, now: time.Now}
}

// Choose makes ahead the choice of backend that the next Apply with no
// link active would make (asking the bus whether systemd-resolved runs),
// and has that backend write its journal ahead where it can (the
// resolv.conf backend's original, see ResolvConf.Prime), so that the Apply,
// on the way to connected, need not: netcfg calls it when a device is
// prepared during the handshake. Neither changes the host's resolver. With
// a link active it does nothing (the backend and journal in use stay).
func (m *Manager) Choose(ctx context.Context) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.links) != 0 {
		return
	}
	if m.pick != nil {
		m.chooseLocked(ctx)
		m.chosenAt = m.now()
	}
	if p, ok := m.b.(primer); ok {
		if err := p.Prime(ctx); err != nil {
			m.log.Warn("DNS journal not written ahead; the DNS setup will write it", "backend", m.b.Name(), "err", err)
		}
	}
}

// primer is a backend that can write its journal before it knows a link's
// settings.
type primer interface {
	Prime(ctx context.Context) error
}

func (m *Manager) chooseLocked(ctx context.Context) {
	if b := m.pick(ctx); b.Name() != m.b.Name() {
		m.log.Info("DNS resolver backend changed", "from", m.b.Name(), "to", b.Name())
		m.b = b
	}
}

// Backend names the backend in use (or, with no link active, the one used
// last).
func (m *Manager) Backend() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.b.Name()
}

// Apply configures l, replacing what was applied under l.Key before. On
// error nothing of l stays applied.
func (m *Manager) Apply(ctx context.Context, l Link) (Applied, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.links) == 0 && m.pick != nil {
		if t := m.chosenAt; t.IsZero() || m.now().Sub(t) >= chooseFresh || m.now().Before(t) {
			m.chooseLocked(ctx)
		}
	}
	m.chosenAt = time.Time{} // a choice ahead stands for one Apply
	all := slices.DeleteFunc(slices.Clone(m.links), func(x Link) bool { return x.Key == l.Key })
	all = append(all, l)
	a, err := m.b.Apply(ctx, l, all)
	if err != nil {
		rest := all[:len(all)-1]
		if rerr := m.b.Revert(ctx, l, rest); rerr != nil {
			m.log.Error("undoing a failed DNS setup", "link", l.Name, "err", rerr)
		}
		m.links = rest
		delete(m.applied, l.Key)
		return Applied{}, fmt.Errorf("dns (%s) for %s: %w", m.b.Name(), l.Name, err)
	}
	m.links = all
	m.applied[l.Key] = a
	m.log.Info("DNS applied", "backend", m.b.Name(), "link", l.Name, "servers", a.Servers, "domains", a.Search, "default_route", l.DefaultRoute)
	return a, nil
}

// Revert takes back what was applied under key and returns it; a key with
// nothing applied is no error.
func (m *Manager) Revert(ctx context.Context, key string) (Applied, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	i := slices.IndexFunc(m.links, func(x Link) bool { return x.Key == key })
	if i < 0 {
		return Applied{}, nil
	}
	l := m.links[i]
	rest := slices.Delete(slices.Clone(m.links), i, i+1)
	a := m.applied[key]
	m.links = rest
	delete(m.applied, key)
	if err := m.b.Revert(ctx, l, rest); err != nil {
		return a, fmt.Errorf("dns (%s) revert for %s: %w", m.b.Name(), l.Name, err)
	}
	m.log.Info("DNS reverted", "backend", m.b.Name(), "link", l.Name)
	return a, nil
}

// Global returns the servers and domains applied for all links, in order
// of activation, without duplicates.
func (m *Manager) Global() (servers, search []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	servers, search = []string{}, []string{}
	for _, l := range m.links {
		a := m.applied[l.Key]
		for _, s := range a.Servers {
			if !slices.Contains(servers, s) {
				servers = append(servers, s)
			}
		}
		for _, s := range a.Search {
			if !slices.Contains(search, s) {
				search = append(search, s)
			}
		}
	}
	return servers, search
}

// Options say where the resolvers are.
type Options struct {
	// StateDir holds the backends' journals (the helper's state
	// directory).
	StateDir string
	// ResolvConf is the file of the resolv.conf backend;
	// DefaultResolvConf when empty.
	ResolvConf string
	// Bus is where systemd-resolved may run (the system bus); nil: never
	// use resolved.
	Bus *dbus.Conn
	// LinkName looks up a link's name by index where the tunnel devices
	// live; see Resolved.LinkName.
	LinkName func(index int) (string, error)
	Logger   *slog.Logger
}

// New undoes what an earlier helper left applied in either backend's
// journal, then returns a manager using systemd-resolved when it owns its
// bus name on o.Bus and the resolv.conf file sends lookups to it, else the
// resolv.conf file; the choice is made again whenever no tunnel has DNS
// applied. (A resolved that glibc does not ask would get the tunnel's DNS
// while every lookup still went to the file's servers.)
func New(ctx context.Context, o Options) (*Manager, error) {
	if o.ResolvConf == "" {
		o.ResolvConf = DefaultResolvConf
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	rc := NewResolvConf(o.ResolvConf, o.StateDir, o.Logger)
	var b Backend = rc
	var res *Resolved
	if o.Bus != nil {
		res = NewResolved(o.Bus, o.StateDir, o.Logger)
		res.LinkName = o.LinkName
	}
	useResolved := func(ctx context.Context) bool {
		return res != nil && Running(ctx, o.Bus) && ResolvConfUsesResolved(o.ResolvConf)
	}
	if useResolved(ctx) {
		b = res
	}
	var errs []error
	if err := rc.Recover(ctx); err != nil {
		errs = append(errs, fmt.Errorf("dns (resolv.conf) recovery: %w", err))
	}
	if res != nil {
		if err := res.Recover(ctx); err != nil {
			errs = append(errs, fmt.Errorf("dns (systemd-resolved) recovery: %w", err))
		}
	}
	if b == rc {
		// The journal written now, not during the first tunnel's
		// handshake (Prime; Revert keeps it for the tunnels after).
		if err := rc.Prime(ctx); err != nil {
			o.Logger.Warn("DNS journal not written ahead; the DNS setup will write it", "backend", rc.Name(), "err", err)
		}
	}
	m := NewManager(b, o.Logger)
	if res != nil {
		m.pick = func(ctx context.Context) Backend {
			if useResolved(ctx) {
				return res
			}
			return rc
		}
	}
	return m, errors.Join(errs...)
}

// serverString renders a server as resolved and netcfg's AddDNS write it.
func serverString(s netip.AddrPort) string {
	if s.Port() == 0 {
		return s.Addr().String()
	}
	return s.String()
}

// ParseServer reads "addr", "addr:port" or "[v6addr]:port" (port 0 or
// absent: 53), optionally followed by "#servername" for DNS over TLS.
func ParseServer(s string) (netip.AddrPort, string, error) {
	host, sni := s, ""
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '#' {
			host, sni = s[:i], s[i+1:]
			break
		}
	}
	if a, err := netip.ParseAddr(host); err == nil && a.Zone() == "" {
		return netip.AddrPortFrom(a.Unmap(), 0), sni, nil
	}
	ap, err := netip.ParseAddrPort(host)
	if err != nil || ap.Addr().Zone() != "" {
		return netip.AddrPort{}, "", fmt.Errorf("invalid DNS server address %s", strconv.Quote(host))
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), sni, nil
}

// ResolvConfUsesResolved reports whether the resolv.conf at path sends
// lookups to systemd-resolved: a symlink into resolved's directory, or a
// file naming its stub listener (127.0.0.53, or 127.0.0.54 in proxy mode).
func ResolvConfUsesResolved(path string) bool {
	if target, err := os.Readlink(path); err == nil && strings.Contains(target, "systemd/resolve/") {
		return true
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "nameserver" && (f[1] == "127.0.0.53" || f[1] == "127.0.0.54") {
			return true
		}
	}
	return false
}
