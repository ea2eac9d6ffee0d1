// Package sharedroute manages the routes that live outside every tunnel
// and that several sessions may need at once: the host route that keeps a
// VPN server reachable outside its tunnel, excluded (net_gateway) and
// bypassed networks, and the unreachable routes of block-ipv6.
//
// Each route is reference counted by its owners (netcfg devices): the
// first owner installs it, the last one removes it, so two sessions to the
// same server, or two sessions that both block IPv6, can come and go
// independently. "Pinned" routes keep a destination on the path it takes
// outside the tunnels; the table follows route changes (netlink
// RTNLGRP_IPV4_ROUTE/IPV6_ROUTE) and moves a pinned route when that path
// changes, e.g. when the default gateway does. Every route is written to
// the journal before it is installed.
package sharedroute

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/ovpn3go/ovpn3go/helper/netcfg/journal"
	"github.com/ovpn3go/ovpn3go/helper/netcfg/nsexec"
	"github.com/ovpn3go/ovpn3go/helper/netcfg/sysrec"
)

// Kind says what a shared route does.
type Kind int

const (
	// Pin keeps Prefix on the path it takes outside every tunnel.
	Pin Kind = iota
	// Unreachable answers traffic to Prefix with ICMP unreachable.
	Unreachable
)

func (k Kind) String() string {
	if k == Unreachable {
		return "unreachable"
	}
	return "pin"
}

// Spec is one shared route.
type Spec struct {
	Kind   Kind
	Prefix netip.Prefix // masked
	Metric int
}

func (s Spec) String() string { return fmt.Sprintf("%s %v metric %d", s.Kind, s.Prefix, s.Metric) }

type entry struct {
	refs    int
	have    bool          // we installed cur
	cur     netlink.Route // what we installed
	id      string        // journal id of cur
	foreign bool          // an identical route was already there: not ours
}

type owner struct {
	specs   []Spec
	tunnels []int // link indexes of the owner's tunnel devices
}

// Table is the set of shared routes in one network namespace.
type Table struct {
	log *slog.Logger
	j   *journal.Journal

	mu      sync.Mutex
	ns      netns.NsHandle
	nlh     *netlink.Handle
	names   map[int]string // link index -> name, for journal records
	owners  map[string]*owner
	entries map[Spec]*entry
	seq     int
	closed  bool

	stop context.CancelFunc
	done chan struct{}
}

// New returns a table working in namespace ns (<= 0: the process's own),
// recording its routes in j (nil: no journal). The table owns j from now
// on.
func New(ns netns.NsHandle, j *journal.Journal, logger *slog.Logger) (*Table, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	t := &Table{log: logger, j: j, owners: map[string]*owner{}, entries: map[Spec]*entry{}, names: map[int]string{}}
	if ns > 0 {
		fd, err := unix.FcntlInt(uintptr(ns), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("shared routes: duplicate namespace handle: %w", err)
		}
		t.ns = netns.NsHandle(fd)
	} else {
		// Unopened: sockets for the own namespace need no setns() and so
		// no CAP_SYS_ADMIN (nsexec.Run gives a thread in it).
		t.ns = netns.None()
	}
	if err := nsexec.Run(netns.None(), func() (err error) { t.nlh, err = netlink.NewHandleAt(t.ns); return err }); err != nil {
		if t.ns.IsOpen() {
			t.ns.Close()
		}
		return nil, fmt.Errorf("shared routes: netlink: %w", err)
	}
	return t, nil
}

// Start follows route changes until Close, moving pinned routes when the
// path they copy changes.
func (t *Table) Start() error {
	ch := make(chan netlink.RouteUpdate, 256)
	done := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	ns := t.ns
	errc := make(chan error, 1)
	// The socket is made on a thread in the process's namespace (see New).
	err := nsexec.Run(netns.None(), func() error {
		return netlink.RouteSubscribeWithOptions(ch, done, netlink.RouteSubscribeOptions{
			Namespace: &ns,
			ErrorCallback: func(err error) {
				select {
				case errc <- err:
				default:
				}
			},
		})
	})
	if err != nil {
		cancel()
		return fmt.Errorf("shared routes: subscribe to route changes: %w", err)
	}
	t.mu.Lock()
	t.stop = cancel
	t.done = make(chan struct{})
	t.mu.Unlock()
	go func() {
		defer close(t.done)
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case err := <-errc:
				t.log.Error("route change subscription failed; pinned routes no longer follow changes", "err", err)
				return
			case _, ok := <-ch:
				if !ok {
					return
				}
				// Take every change already queued, then look once.
				for drained := false; !drained; {
					select {
					case <-ch:
					default:
						drained = true
					}
				}
				t.refresh()
			}
		}
	}()
	return nil
}

// Acquire adds specs to owner's shared routes, installing those nobody
// held yet. On error nothing of this call stays acquired.
func (t *Table) Acquire(ownerID string, specs []Spec) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return errors.New("shared routes: table closed")
	}
	o := t.owners[ownerID]
	if o == nil {
		o = &owner{}
		t.owners[ownerID] = o
	}
	var added []Spec
	for _, s := range specs {
		s.Prefix = s.Prefix.Masked()
		if slices.Contains(o.specs, s) || slices.Contains(added, s) {
			continue
		}
		e := t.entries[s]
		if e == nil {
			e = &entry{}
			t.entries[s] = e
		}
		e.refs++
		added = append(added, s)
		if e.refs == 1 {
			if err := t.installLocked(s, e); err != nil {
				for _, a := range added {
					t.releaseLocked(a)
				}
				if len(o.specs) == 0 && len(o.tunnels) == 0 {
					delete(t.owners, ownerID)
				}
				return err
			}
		}
	}
	o.specs = append(o.specs, added...)
	return nil
}

// SetTunnel tells the table that linkIndex is a tunnel device of owner's:
// pinned routes never take a path through it.
func (t *Table) SetTunnel(ownerID string, linkIndex int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	o := t.owners[ownerID]
	if o == nil {
		o = &owner{}
		t.owners[ownerID] = o
	}
	if !slices.Contains(o.tunnels, linkIndex) {
		o.tunnels = append(o.tunnels, linkIndex)
	}
}

// Release drops everything owner holds; routes nobody holds any more are
// removed.
func (t *Table) Release(ownerID string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	o := t.owners[ownerID]
	if o == nil {
		return nil
	}
	delete(t.owners, ownerID)
	var errs []error
	for _, s := range slices.Backward(o.specs) {
		errs = append(errs, t.releaseLocked(s))
	}
	return errors.Join(errs...)
}

func (t *Table) releaseLocked(s Spec) error {
	e := t.entries[s]
	if e == nil {
		return nil
	}
	e.refs--
	if e.refs > 0 {
		return nil
	}
	delete(t.entries, s)
	return t.removeLocked(s, e)
}

// Close removes every route, stops following changes and deletes the
// journal when all is undone (else it stays for the next start).
func (t *Table) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	stop, done := t.stop, t.done
	t.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	var errs []error
	for s, e := range t.entries {
		errs = append(errs, t.removeLocked(s, e))
	}
	t.entries = map[Spec]*entry{}
	t.owners = map[string]*owner{}
	err := errors.Join(errs...)
	if err == nil {
		err = t.jRemove()
	}
	t.nlh.Close()
	if t.ns.IsOpen() {
		t.ns.Close()
	}
	return err
}

// desired is the route spec s needs now; ok false when there is nothing
// to install (no path outside the tunnels).
func (t *Table) desiredLocked(s Spec) (netlink.Route, bool, error) {
	if s.Kind == Unreachable {
		r := sysrec.Route{Dst: s.Prefix, Metric: s.Metric, Type: unix.RTN_UNREACHABLE}
		return normalize(r.Netlink(0)), true, nil
	}
	family := netlink.FAMILY_V4
	if s.Prefix.Addr().Is6() {
		family = netlink.FAMILY_V6
	}
	routes, err := t.nlh.RouteListFiltered(family, &netlink.Route{}, 0)
	if err != nil {
		return netlink.Route{}, false, fmt.Errorf("shared routes: list routes: %w", err)
	}
	tunnel := map[int]bool{}
	for _, o := range t.owners {
		for _, i := range o.tunnels {
			tunnel[i] = true
		}
	}
	var best *netlink.Route
	for i := range routes {
		r := &routes[i]
		if r.Type != unix.RTN_UNICAST || r.Table != unix.RT_TABLE_MAIN {
			continue
		}
		dst := sysrec.Prefix(r.Dst)
		if r.Dst == nil && family == netlink.FAMILY_V6 {
			dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		}
		if dst.Bits() > s.Prefix.Bits() || !dst.Contains(s.Prefix.Addr()) {
			continue
		}
		link, gw := r.LinkIndex, r.Gw
		if len(r.MultiPath) > 0 {
			link, gw = r.MultiPath[0].LinkIndex, r.MultiPath[0].Gw
		}
		if tunnel[link] || r.Flags&(unix.RTNH_F_LINKDOWN|unix.RTNH_F_DEAD) != 0 || t.isOursLocked(r) {
			continue
		}
		if best == nil || dst.Bits() > sysrec.Prefix(best.Dst).Bits() ||
			(dst.Bits() == sysrec.Prefix(best.Dst).Bits() && r.Priority < best.Priority) {
			c := *r
			c.LinkIndex, c.Gw = link, gw
			if r.Dst == nil {
				c.Dst = sysrec.IPNet(dst)
			}
			best = &c
		}
	}
	if best == nil {
		return netlink.Route{}, false, nil
	}
	nr := netlink.Route{Dst: sysrec.IPNet(s.Prefix), LinkIndex: best.LinkIndex, Gw: best.Gw, Priority: s.Metric}
	if best.Gw == nil && family == netlink.FAMILY_V4 {
		nr.Scope = netlink.SCOPE_LINK
	}
	return nr, true, nil
}

// isOursLocked reports whether r is one of the routes we installed.
func (t *Table) isOursLocked(r *netlink.Route) bool {
	for _, e := range t.entries {
		if e.have && sameRoute(e.cur, *r) {
			return true
		}
	}
	return false
}

func sameRoute(a, b netlink.Route) bool {
	return sysrec.Prefix(a.Dst) == sysrec.Prefix(b.Dst) && a.Priority == b.Priority &&
		a.LinkIndex == b.LinkIndex && a.Gw.Equal(b.Gw) && a.Type == b.Type
}

func (t *Table) nameLocked(index int) string {
	if index == 0 {
		return ""
	}
	if n, ok := t.names[index]; ok {
		return n
	}
	l, err := t.nlh.LinkByIndex(index)
	if err != nil {
		return ""
	}
	t.names[index] = l.Attrs().Name
	return l.Attrs().Name
}

func (t *Table) installLocked(s Spec, e *entry) error {
	want, ok, err := t.desiredLocked(s)
	if err != nil {
		return err
	}
	if !ok {
		t.log.Info("no path outside the tunnels; nothing to pin for now", "route", s)
		return nil
	}
	return t.putLocked(s, e, want)
}

// putLocked installs want for s, replacing what e had: journal first, then
// the kernel, then the old record goes.
func (t *Table) putLocked(s Spec, e *entry, want netlink.Route) error {
	want = normalize(want)
	rec := sysrec.FromNetlink(want, t.nameLocked(want.LinkIndex))
	t.seq++
	id := fmt.Sprintf("%s#%d", s.Prefix, t.seq)
	if err := t.jAdd(id, sysrec.KindRoute, rec); err != nil {
		return fmt.Errorf("shared routes: %w", err)
	}
	var err error
	if e.have {
		err = t.nlh.RouteReplace(&want)
	} else {
		err = t.nlh.RouteAdd(&want)
	}
	if errors.Is(err, unix.EEXIST) && !e.have {
		// Somebody else's identical route: use it, never remove it.
		_ = t.jDrop(id)
		e.foreign = true
		t.log.Info("route already present, left as it is", "route", rec)
		return nil
	}
	if err != nil {
		_ = t.jDrop(id)
		return fmt.Errorf("shared routes: add %s: %w", rec, err)
	}
	if e.have && e.id != "" {
		_ = t.jDrop(e.id)
	}
	e.have, e.cur, e.id = true, want, id
	t.log.Info("shared route installed", "route", rec, "for", s)
	return nil
}

func (t *Table) removeLocked(s Spec, e *entry) error {
	if !e.have {
		return nil
	}
	r := e.cur
	err := t.nlh.RouteDel(&r)
	if err != nil && !sysrec.Gone(err) {
		return fmt.Errorf("shared routes: delete %s: %w", sysrec.FromNetlink(r, t.nameLocked(r.LinkIndex)), err)
	}
	e.have = false
	if err := t.jDrop(e.id); err != nil {
		return fmt.Errorf("shared routes: %w", err)
	}
	t.log.Info("shared route removed", "route", s)
	return nil
}

// refresh moves pinned routes whose outside path changed.
func (t *Table) refresh() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	clear(t.names) // indexes may have been reused
	for s, e := range t.entries {
		if s.Kind != Pin || e.foreign {
			continue
		}
		want, ok, err := t.desiredLocked(s)
		if err != nil {
			t.log.Warn("cannot re-check a pinned route", "route", s, "err", err)
			continue
		}
		switch {
		case !ok && e.have:
			if err := t.removeLocked(s, e); err != nil {
				t.log.Warn("pinned route lost its path; removing it failed", "route", s, "err", err)
			}
		case ok && e.have && sameRoute(normalize(want), e.cur):
		case ok:
			if e.have && !t.stillThereLocked(e.cur) {
				e.have = false // the kernel dropped it with its device
				_ = t.jDrop(e.id)
			}
			if err := t.putLocked(s, e, want); err != nil {
				t.log.Warn("cannot move a pinned route", "route", s, "err", err)
			}
		}
	}
}

// normalize fills in what the kernel reports back for r, so that routes
// we installed compare equal to their listing: the unicast type, and the
// IPv6 default metric 1024 for "no metric".
func normalize(r netlink.Route) netlink.Route {
	if r.Type == 0 {
		r.Type = unix.RTN_UNICAST
	}
	if r.Priority == 0 && sysrec.Prefix(r.Dst).Addr().Is6() {
		r.Priority = 1024
	}
	return r
}

func (t *Table) stillThereLocked(r netlink.Route) bool {
	family := netlink.FAMILY_V4
	if sysrec.Prefix(r.Dst).Addr().Is6() {
		family = netlink.FAMILY_V6
	}
	list, err := t.nlh.RouteListFiltered(family, &netlink.Route{Dst: r.Dst, Table: unix.RT_TABLE_MAIN},
		netlink.RT_FILTER_DST|netlink.RT_FILTER_TABLE)
	if err != nil {
		return true
	}
	for _, x := range list {
		if sameRoute(r, x) {
			return true
		}
	}
	return false
}

func (t *Table) jAdd(id, kind string, v any) error {
	if t.j == nil {
		return nil
	}
	return t.j.Add(id, kind, v)
}

func (t *Table) jDrop(id string) error {
	if t.j == nil {
		return nil
	}
	return t.j.Drop(id)
}

func (t *Table) jRemove() error {
	if t.j == nil {
		return nil
	}
	return t.j.Remove()
}

// Held lists the installed routes owner holds.
func (t *Table) Held(ownerID string) []sysrec.Route {
	t.mu.Lock()
	defer t.mu.Unlock()
	o := t.owners[ownerID]
	if o == nil {
		return nil
	}
	var out []sysrec.Route
	for _, s := range o.specs {
		if e := t.entries[s]; e != nil && e.have {
			out = append(out, sysrec.FromNetlink(e.cur, t.nameLocked(e.cur.LinkIndex)))
		}
	}
	return out
}

// Outside reports the path traffic to addr takes outside every tunnel:
// the link and the gateway (zero when on-link); ok is false when there is
// none.
func (t *Table) Outside(addr netip.Addr) (linkIndex int, gw netip.Addr, ok bool, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r, ok, err := t.desiredLocked(Spec{Kind: Pin, Prefix: netip.PrefixFrom(addr, addr.BitLen())})
	if err != nil || !ok {
		return 0, netip.Addr{}, false, err
	}
	g, _ := netip.AddrFromSlice(r.Gw)
	return r.LinkIndex, g.Unmap(), true, nil
}
