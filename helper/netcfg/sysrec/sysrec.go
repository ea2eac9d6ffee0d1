// Package sysrec describes the kernel objects netcfg creates (links,
// addresses, routes) as journal records, and undoes them. tundev and the
// shared route table write these records before each change; the helper
// replays them through Register's undo functions when it starts after a
// crash. Records name links by name, not index: indexes are not stable
// across a crash, names of our own devices are.
package sysrec

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ovpn3go/ovpn3go/helper/netcfg/journal"
)

// Journal entry kinds.
const (
	KindLink  = "net.link"
	KindAddr  = "net.addr"
	KindRoute = "net.route"
)

// Link is a virtual device we created.
type Link struct {
	Name string `json:"name"`
	// Type is the netlink link type ("tuntap", "ovpn"); undo deletes a
	// link of that name only when its type matches.
	Type string `json:"type"`
}

// Addr is an address we added to one of our links.
type Addr struct {
	Link   string       `json:"link"`
	Prefix netip.Prefix `json:"prefix"`
	Peer   netip.Addr   `json:"peer,omitzero"`
}

// Route is a route we added.
type Route struct {
	Dst    netip.Prefix `json:"dst"`
	Gw     netip.Addr   `json:"gw,omitzero"`
	Link   string       `json:"link,omitempty"` // empty: no device (unreachable)
	Metric int          `json:"metric,omitempty"`
	Table  int          `json:"table,omitempty"`
	Type   int          `json:"type,omitempty"` // RTN_*; 0 = unicast
	Scope  int          `json:"scope,omitempty"`
}

// FromNetlink describes r, whose link is called link.
func FromNetlink(r netlink.Route, link string) Route {
	gw, _ := netip.AddrFromSlice(r.Gw)
	return Route{Dst: Prefix(r.Dst), Gw: gw.Unmap(), Link: link, Metric: r.Priority,
		Table: r.Table, Type: r.Type, Scope: int(r.Scope)}
}

// Netlink is the route as netlink wants it; the link index must be
// resolved by the caller (0 for routes without a device).
func (r Route) Netlink(linkIndex int) netlink.Route {
	nr := netlink.Route{Dst: IPNet(r.Dst), LinkIndex: linkIndex, Priority: r.Metric,
		Table: r.Table, Type: r.Type, Scope: netlink.Scope(r.Scope)}
	if r.Gw.IsValid() {
		nr.Gw = r.Gw.AsSlice()
	}
	if nr.Type == unix.RTN_UNREACHABLE || nr.Type == unix.RTN_BLACKHOLE {
		nr.Family = netlink.FAMILY_V4
		if r.Dst.Addr().Is6() {
			nr.Family = netlink.FAMILY_V6
		}
	}
	return nr
}

// String is the route in ip-route style, for logs and errors.
func (r Route) String() string {
	s := r.Dst.String()
	switch r.Type {
	case unix.RTN_UNREACHABLE:
		s = "unreachable " + s
	case unix.RTN_BLACKHOLE:
		s = "blackhole " + s
	}
	if r.Gw.IsValid() {
		s += " via " + r.Gw.String()
	}
	if r.Link != "" {
		s += " dev " + r.Link
	}
	if r.Metric != 0 {
		s += fmt.Sprintf(" metric %d", r.Metric)
	}
	return s
}

// Register adds the undo functions of the three kinds to u; h returns the
// netlink handle of the namespace the records were made in. Everything
// already gone counts as undone.
func Register(u *journal.Undoers, h func() (*netlink.Handle, error)) {
	with := func(fn func(*netlink.Handle, journal.Entry) error) journal.UndoFunc {
		return func(_ context.Context, e journal.Entry) error {
			nlh, err := h()
			if err != nil {
				return err
			}
			return fn(nlh, e)
		}
	}
	u.Register(KindLink, with(func(nlh *netlink.Handle, e journal.Entry) error {
		var l Link
		if err := decode(e, &l); err != nil {
			return err
		}
		return UndoLink(nlh, l)
	}))
	u.Register(KindAddr, with(func(nlh *netlink.Handle, e journal.Entry) error {
		var a Addr
		if err := decode(e, &a); err != nil {
			return err
		}
		return UndoAddr(nlh, a)
	}))
	u.Register(KindRoute, with(func(nlh *netlink.Handle, e journal.Entry) error {
		var r Route
		if err := decode(e, &r); err != nil {
			return err
		}
		return UndoRoute(nlh, r)
	}))
}

func decode(e journal.Entry, v any) error {
	if err := json.Unmarshal(e.Data, v); err != nil {
		return fmt.Errorf("%s record %s: %w", e.Kind, e.ID, err)
	}
	return nil
}

// UndoLink deletes the link if it still exists with the recorded type.
func UndoLink(nlh *netlink.Handle, l Link) error {
	link, err := nlh.LinkByName(l.Name)
	if err != nil {
		if IsLinkNotFound(err) {
			return nil
		}
		return fmt.Errorf("look up link %s: %w", l.Name, err)
	}
	if link.Type() != l.Type {
		return nil // the name now belongs to something that is not ours
	}
	if err := nlh.LinkDel(link); err != nil && !Gone(err) {
		return fmt.Errorf("delete link %s: %w", l.Name, err)
	}
	return nil
}

// UndoAddr deletes the address from its link, if both still exist.
func UndoAddr(nlh *netlink.Handle, a Addr) error {
	link, err := nlh.LinkByName(a.Link)
	if err != nil {
		if IsLinkNotFound(err) {
			return nil
		}
		return fmt.Errorf("look up link %s: %w", a.Link, err)
	}
	na := &netlink.Addr{IPNet: IPNet(a.Prefix)}
	if err := nlh.AddrDel(link, na); err != nil && !Gone(err) {
		return fmt.Errorf("delete address %v from %s: %w", a.Prefix, a.Link, err)
	}
	return nil
}

// UndoRoute deletes the route if it is still there.
func UndoRoute(nlh *netlink.Handle, r Route) error {
	idx := 0
	if r.Link != "" {
		link, err := nlh.LinkByName(r.Link)
		if err != nil {
			if IsLinkNotFound(err) {
				return nil // its device went, and the route with it
			}
			return fmt.Errorf("look up link %s: %w", r.Link, err)
		}
		idx = link.Attrs().Index
	}
	nr := r.Netlink(idx)
	if err := nlh.RouteDel(&nr); err != nil && !Gone(err) {
		return fmt.Errorf("delete route %s: %w", r, err)
	}
	return nil
}

// Gone reports errors that mean "already not there".
func Gone(err error) bool {
	return errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENODEV) ||
		errors.Is(err, unix.EADDRNOTAVAIL) || errors.Is(err, unix.ENOENT)
}

// IsLinkNotFound reports netlink's "no such link".
func IsLinkNotFound(err error) bool {
	var lnf netlink.LinkNotFoundError
	return errors.As(err, &lnf) || errors.Is(err, unix.ENODEV)
}

// IPNet converts a prefix for netlink.
func IPNet(p netip.Prefix) *net.IPNet {
	a := p.Addr().Unmap()
	return &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(p.Bits(), a.BitLen())}
}

// Prefix converts a netlink destination; nil is the default route, whose
// family netlink does not say: it comes back as the IPv4 default.
func Prefix(n *net.IPNet) netip.Prefix {
	if n == nil {
		return netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	}
	ip, _ := netip.AddrFromSlice(n.IP)
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(ip.Unmap(), ones)
}
