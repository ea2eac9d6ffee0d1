package dns

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"sync"

	"github.com/godbus/dbus/v5"
)

// systemd-resolved's D-Bus names (org.freedesktop.resolve1(5)).
const (
	ResolvedName    = "org.freedesktop.resolve1"
	resolvedPath    = "/org/freedesktop/resolve1"
	resolvedManager = ResolvedName + ".Manager"
)

// Resolved configures each tunnel as a link of systemd-resolved. Before a
// link is touched its index and name are journalled; resolved itself forgets
// a link's settings when the link goes away, so Recover only has to revert
// links that still exist under the same name. The journal is not synced:
// a helper killed leaves it in the page cache, and after a crash of the
// machine the tunnel links it names, and resolved's settings for them, are
// gone (a journal torn by it is dropped); two fsyncs on every connect's
// way bought nothing.
type Resolved struct {
	conn *dbus.Conn
	j    journal
	log  *slog.Logger
	// LinkName returns the current name of the link with that index (it
	// must look in the network namespace the devices live in);
	// net.InterfaceByIndex when nil.
	LinkName func(index int) (string, error)
}

// NewResolved returns the backend talking to resolved on conn (the system
// bus), journalling in stateDir.
func NewResolved(conn *dbus.Conn, stateDir string, logger *slog.Logger) *Resolved {
	if logger == nil {
		logger = slog.Default()
	}
	return &Resolved{conn: conn, j: journal{filepath.Join(stateDir, JournalDir, "resolved.json")}, log: logger}
}

// Name implements Backend.
func (r *Resolved) Name() string { return "systemd-resolved" }

type resolvedLink struct {
	Index int
	Name  string
}

type resolvedRecord struct{ Links []resolvedLink }

func (r *Resolved) journalLink(l Link, add bool) error {
	var rec resolvedRecord
	if _, err := r.j.load(&rec); err != nil {
		return err
	}
	rec.Links = slices.DeleteFunc(rec.Links, func(x resolvedLink) bool { return x.Index == l.Index })
	if add {
		rec.Links = append(rec.Links, resolvedLink{l.Index, l.Name})
	}
	if len(rec.Links) == 0 {
		return r.j.removeUnsynced()
	}
	return r.j.storeUnsynced(rec)
}

func (r *Resolved) call(ctx context.Context, method string, args ...any) error {
	err := r.conn.Object(ResolvedName, resolvedPath).CallWithContext(ctx, resolvedManager+"."+method, 0, args...).Err
	if err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	return nil
}

func unknownMethod(err error) bool {
	var e dbus.Error
	return errors.As(err, &e) && e.Name == "org.freedesktop.DBus.Error.UnknownMethod"
}

// dnsEx is one SetLinkDNSEx entry.
type dnsEx struct {
	Family  int32
	Address []byte
	Port    uint16
	Name    string
}

// dnsPlain is one SetLinkDNS entry.
type dnsPlain struct {
	Family  int32
	Address []byte
}

type domainEntry struct {
	Domain      string
	RoutingOnly bool
}

func family(ap []byte) int32 {
	if len(ap) == 4 {
		return 2 // AF_INET
	}
	return 10 // AF_INET6
}

// Apply implements Backend. The link is new when netcfg calls this right
// after creating it; resolved still knows it, because the kernel queued its
// RTM_NEWLINK before our call was sent and resolved handles rtnetlink at a
// higher priority than the bus.
func (r *Resolved) Apply(ctx context.Context, l Link, _ []Link) (Applied, error) {
	if l.Index <= 0 {
		return Applied{}, fmt.Errorf("link %q has no index", l.Name)
	}
	if err := r.journalLink(l, true); err != nil {
		return Applied{}, err
	}
	a := Applied{Servers: []string{}, Search: []string{}}
	ex := make([]dnsEx, 0, len(l.Servers))
	plain := make([]dnsPlain, 0, len(l.Servers))
	ports := false
	for _, s := range l.Servers {
		b := s.Addr().AsSlice()
		name := ""
		if l.Transport == "dot" {
			name = l.SNI
		}
		ex = append(ex, dnsEx{family(b), b, s.Port(), name})
		plain = append(plain, dnsPlain{family(b), b})
		ports = ports || s.Port() != 0 && s.Port() != 53
		a.Servers = append(a.Servers, serverString(s))
	}
	var doms []domainEntry
	for _, d := range l.Search {
		doms = append(doms, domainEntry{d, false})
		a.Search = append(a.Search, d)
	}
	for _, d := range l.Routing {
		if !slices.Contains(l.Search, d) {
			doms = append(doms, domainEntry{d, true})
			a.Search = append(a.Search, "~"+d)
		}
	}
	if l.DefaultRoute {
		// "~." makes the link win over links that only have the default
		// route flag; without it resolved would also ask the others.
		doms = append(doms, domainEntry{".", true})
		a.Search = append(a.Search, "~.")
	}
	if doms == nil {
		doms = []domainEntry{}
	}
	// The settings are independent of each other: they go to resolved
	// side by side (one round trip instead of up to five); the first
	// failure, in this order, is returned once all have answered.
	steps := []func() error{
		func() error {
			err := r.call(ctx, "SetLinkDNSEx", int32(l.Index), ex)
			if unknownMethod(err) { // resolved before v246
				if ports || l.SNI != "" && l.Transport == "dot" {
					return errors.New("this systemd-resolved has no SetLinkDNSEx: cannot use DNS server ports or names")
				}
				err = r.call(ctx, "SetLinkDNS", int32(l.Index), plain)
			}
			return err
		},
		func() error { return r.call(ctx, "SetLinkDomains", int32(l.Index), doms) },
		func() error {
			err := r.call(ctx, "SetLinkDefaultRoute", int32(l.Index), l.DefaultRoute)
			if unknownMethod(err) {
				r.log.Warn("systemd-resolved has no SetLinkDefaultRoute; relying on the routing domains", "link", l.Name)
				return nil
			}
			return err
		},
	}
	if mode := map[string]string{"yes": "yes", "no": "no", "optional": "allow-downgrade"}[l.DNSSEC]; mode != "" {
		steps = append(steps, func() error {
			err := r.call(ctx, "SetLinkDNSSEC", int32(l.Index), mode)
			if err != nil && (unknownMethod(err) || notSupported(err)) {
				r.log.Warn("systemd-resolved cannot set DNSSEC on a link", "link", l.Name, "err", err)
				return nil
			}
			return err
		})
	}
	if mode := map[string]string{"dot": "yes", "plain": "no"}[l.Transport]; mode != "" {
		steps = append(steps, func() error {
			err := r.call(ctx, "SetLinkDNSOverTLS", int32(l.Index), mode)
			if err != nil && l.Transport != "dot" && (unknownMethod(err) || notSupported(err)) {
				r.log.Warn("systemd-resolved cannot set DNS over TLS on a link", "link", l.Name, "err", err)
				return nil
			}
			return err
		})
	}
	errs := make([]error, len(steps))
	var wg sync.WaitGroup
	for i, step := range steps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = step()
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return Applied{}, err
		}
	}
	return a, nil
}

func notSupported(err error) bool {
	var e dbus.Error
	return errors.As(err, &e) && e.Name == "org.freedesktop.DBus.Error.NotSupported"
}

// linkGone reports resolved's answer for a link it does not know (any
// more): nothing to revert.
func linkGone(err error) bool {
	var e dbus.Error
	return errors.As(err, &e) && (e.Name == "org.freedesktop.resolve1.NoSuchLink" ||
		e.Name == "org.freedesktop.DBus.Error.InvalidArgs")
}

// Revert implements Backend.
func (r *Resolved) Revert(ctx context.Context, l Link, _ []Link) error {
	if l.Index <= 0 {
		return nil
	}
	if err := r.call(ctx, "RevertLink", int32(l.Index)); err != nil && !linkGone(err) {
		return err
	}
	return r.journalLink(l, false)
}

// Recover implements Backend.
func (r *Resolved) Recover(ctx context.Context) error {
	var rec resolvedRecord
	ok, err := r.j.load(&rec)
	var syntax *json.SyntaxError
	if errors.As(err, &syntax) || errors.Is(err, io.ErrUnexpectedEOF) {
		// Torn by a crash of the machine (it is not synced), which took
		// the links it named with it.
		r.log.Warn("unreadable systemd-resolved journal dropped", "err", err)
		return r.j.removeUnsynced()
	}
	if err != nil || !ok {
		return err
	}
	if !Running(ctx, r.conn) {
		// Its per-link settings of links gone since are gone with it.
		return r.j.remove()
	}
	name := r.LinkName
	if name == nil {
		name = func(i int) (string, error) {
			ifc, err := net.InterfaceByIndex(i)
			if err != nil {
				return "", err
			}
			return ifc.Name, nil
		}
	}
	var errs []error
	for _, l := range rec.Links {
		if n, err := name(l.Index); err != nil || n != l.Name {
			continue // gone, and resolved forgot it with it
		}
		r.log.Info("reverting DNS of a link left by a crashed helper", "link", l.Name, "index", l.Index)
		if err := r.call(ctx, "RevertLink", int32(l.Index)); err != nil && !linkGone(err) {
			errs = append(errs, fmt.Errorf("%s: %w", l.Name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return r.j.remove()
}

// Running reports whether systemd-resolved owns its name on conn.
func Running(ctx context.Context, conn *dbus.Conn) bool {
	if conn == nil {
		return false
	}
	var has bool
	err := conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.NameHasOwner", 0, ResolvedName).Store(&has)
	return err == nil && has
}
