package profile

import (
	"fmt"
	"slices"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/push"
)

// PushAssembler returns an assembler for the server's push reply that
// applies this profile's route-nopull and pull-filter rules and its own
// network options (route, redirect-gateway, dhcp-option, dns, …).
func (p *Profile) PushAssembler() *push.Assembler {
	f := push.Filter{RouteNoPull: p.RouteNoPull, Decompress: p.Decompress()}
	for _, pf := range p.PullFilters {
		f.PullFilters = append(f.PullFilters, push.PullFilter{Action: pf.Action, Text: pf.Text})
	}
	return &push.Assembler{Filter: f, Local: slices.Clone(p.NetOptions)}
}

// Compression is the data-channel framing the profile asks for until the
// server pushes one (this client never compresses).
func (p *Profile) Compression() push.Compression {
	return push.ProfileCompression(p.CompLZO, p.Compress)
}

// Decompress reports whether compressed packets from the server are
// accepted and decompressed ("allow-compression asym"; "yes" means the
// same here, as this client never compresses). Default: refused.
func (p *Profile) Decompress() bool {
	return p.AllowCompression == "asym" || p.AllowCompression == "yes"
}

// SetAllowCompression sets allow-compression as the override of the same
// name does (no, asym, yes; yes is taken as asym).
func (p *Profile) SetAllowCompression(v string) error {
	switch v {
	case "no", "asym", "yes":
		p.AllowCompression = v
		return nil
	}
	return fmt.Errorf("allow-compression %q: want no, asym or yes", v)
}
