package netcfg

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/netcfg/dns"
	"github.com/ovpn3go/ovpn3go/helper/netcfg/tundev"
)

// dnsRevertTimeout bounds taking a device's DNS settings back when the
// device goes, whoever asked for that.
const dnsRevertTimeout = 10 * time.Second

// SetDNS makes the service apply the devices' DNS settings through m when
// they are established and take them back when they go. Without it (nil,
// the default) there is no resolver backend: settings are only stored, as
// upstream does when none is configured. Call it before Export.
func (s *Service) SetDNS(m *dns.Manager) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dns = m
}

func (s *Service) dnsManager() *dns.Manager {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dns
}

// chooseTimeout bounds the resolver backend's choice ahead (a question to
// the bus).
const chooseTimeout = 10 * time.Second

// chooseResolver has the DNS manager choose its backend ahead (whether
// systemd-resolved runs: a bus round trip) in the background, beside a
// device's Prepare, so neither the Prepare nor the Establish waits for it.
// The service owns the goroutine: Close waits for it.
func (s *Service) chooseResolver() {
	s.mu.Lock()
	m := s.dns
	if m == nil || s.closed {
		s.mu.Unlock()
		return
	}
	s.choosing.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.choosing.Done()
		ctx, cancel := context.WithTimeout(context.Background(), chooseTimeout)
		defer cancel()
		m.Choose(ctx)
	}()
}

// globalDNS is what global_dns_servers and global_dns_search report.
func (s *Service) globalDNS() (servers, search []string) {
	if m := s.dnsManager(); m != nil {
		return m.Global()
	}
	return []string{}, []string{}
}

// dnsLink turns the device's queued DNS settings into a dns.Link. Search
// entries starting with '~' are routing-only domains (resolved's notation;
// "~." asks for all DNS). The tunnel takes all DNS when the scope is global
// and no routing domain narrows it. d.mu is held.
func (d *device) dnsLink(tun *tundev.Device) (dns.Link, error) {
	l := dns.Link{Key: string(d.path), Index: tun.Index(), Name: tun.Name()}
	for _, s := range d.dnsServers {
		ap, sni, err := dns.ParseServer(s)
		if err != nil {
			return l, err // checked by AddDNS already
		}
		l.Servers = append(l.Servers, ap)
		if l.SNI == "" {
			l.SNI = sni
		}
	}
	all := false
	for _, dom := range d.dnsSearch {
		switch {
		case dom == "~.":
			all = true
		case strings.HasPrefix(dom, "~"):
			l.Routing = append(l.Routing, strings.TrimPrefix(dom, "~"))
		default:
			l.Search = append(l.Search, dom)
		}
	}
	if len(l.Servers) > 0 {
		l.DefaultRoute = all || d.dnsScope == "global" && len(l.Routing) == 0
	}
	if d.dnssec != "unset" {
		l.DNSSEC = d.dnssec
	}
	switch d.transport {
	case "plain", "dot":
		l.Transport = d.transport
	case "doh":
		return l, errors.New("DNS over HTTPS is not supported by any resolver backend")
	}
	return l, nil
}

func (d *device) hasDNS() bool {
	return len(d.dnsServers) > 0 || len(d.dnsSearch) > 0 || d.dnssec != "unset" || d.transport != "unset"
}

// applyDNS configures the resolver for an established device and announces
// what was applied. d.mu is held.
func (d *device) applyDNS(ctx context.Context, tun *tundev.Device) error {
	if !d.hasDNS() {
		return nil
	}
	m := d.svc.dnsManager()
	if m == nil {
		d.log.Error("DNS settings not applied: no resolver backend is configured",
			"servers", d.dnsServers, "search", d.dnsSearch, "dnssec", d.dnssec, "transport", d.transport)
		return nil
	}
	l, err := d.dnsLink(tun)
	if err != nil {
		return err
	}
	a, err := m.Apply(ctx, l)
	if err != nil {
		return err
	}
	d.dnsApplied = true
	d.announceDNS(tun.Name(), a, true)
	return nil
}

// revertDNS takes the device's DNS settings back.
func (d *device) revertDNS(tun *tundev.Device) {
	d.mu.Lock()
	applied := d.dnsApplied
	d.dnsApplied = false
	d.mu.Unlock()
	d.revertApplied(tun, applied)
}

// revertDNSLocked is revertDNS with d.mu held.
func (d *device) revertDNSLocked(tun *tundev.Device) {
	applied := d.dnsApplied
	d.dnsApplied = false
	d.revertApplied(tun, applied)
}

// revertApplied takes the DNS settings back if they were applied.
func (d *device) revertApplied(tun *tundev.Device, applied bool) {
	m := d.svc.dnsManager()
	if !applied || m == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), dnsRevertTimeout)
	defer cancel()
	a, err := m.Revert(ctx, string(d.path))
	if err != nil {
		d.log.Error("DNS settings not fully reverted", "err", err)
	}
	d.announceDNS(tun.Name(), a, false)
}

func (d *device) announceDNS(dev string, a dns.Applied, added bool) {
	srvType, searchType := api.NetCfgDNSServerRemoved, api.NetCfgDNSSearchRemoved
	if added {
		srvType, searchType = api.NetCfgDNSServerAdded, api.NetCfgDNSSearchAdded
	}
	for _, s := range a.Servers {
		d.svc.notify(d.path, srvType, dev, map[string]string{"dns_server": s})
	}
	for _, s := range a.Search {
		d.svc.notify(d.path, searchType, dev, map[string]string{"search_domain": s})
	}
}
