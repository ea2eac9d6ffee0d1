// Package push decodes what an OpenVPN server pushes to a client: it
// reassembles PUSH_REPLY messages split with push-continuation, applies the
// client's route-nopull and pull-filter rules, interprets the options the
// engine acts on (addresses, routes, DNS, keepalive, cipher, protocol
// flags, compression framing) and turns the network part into a
// netconf.Config. It does no I/O.
package push

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/ovpn3go/ovpn3go/helper/netconf"
)

// Limits against a hostile or broken server.
const (
	MaxParts       = 64      // push-continuation messages per reply
	MaxReplyBytes  = 1 << 20 // all parts together
	MaxOptions     = 4096    // option lines per reply
	MaxOptionBytes = 4096    // one option line
)

// Compression is the data-channel compression framing in effect. Only
// framings that never compress are representable: a server pushing real
// compression is refused (VORACLE).
type Compression string

const (
	CompressionNone    Compression = ""            // no framing byte
	CompressionLZOStub Compression = "comp-lzo no" // v1 header byte 0xFA
	CompressionStub    Compression = "stub"        // v1 swap form, 0xFB
	CompressionStubV2  Compression = "stub-v2"     // v2 escape only
)

// ProfileCompression maps a profile's comp-lzo and compress values to
// the framing to use until the server pushes something else. This client
// never compresses, so every algorithm maps to its no-compression
// framing: "comp-lzo" and "compress lzo" use the v1 header byte,
// "compress" / "stub" / "lz4" the v1 swap form, "stub-v2" / "lz4-v2" the
// v2 form. compress wins over comp-lzo, as in OpenVPN.
func ProfileCompression(compLZO, compress string) Compression {
	switch compress {
	case "stub", "lz4":
		return CompressionStub
	case "stub-v2", "lz4-v2":
		return CompressionStubV2
	case "lzo":
		return CompressionLZOStub
	}
	if compLZO != "" {
		return CompressionLZOStub
	}
	return CompressionNone
}

// Route is one pushed route.
type Route struct {
	Prefix netip.Prefix
	// Gateway is the explicit gateway; zero means the pushed
	// route-gateway (or on-link through the tunnel).
	Gateway netip.Addr
	Metric  int // 0: default
	// NetGateway: the route goes via the client's original default
	// gateway, i.e. it is excluded from the tunnel.
	NetGateway bool
}

// DNSServer is one "dns server N …" entry (OpenVPN 2.6+).
type DNSServer struct {
	Priority       int
	Addresses      []netip.AddrPort // port 0 = default 53
	ResolveDomains []string
	DNSSEC         string // "", "yes", "optional", "no"
	Transport      string // "", "plain", "DoH", "DoT"
	SNI            string
}

// Reply is a complete, filtered push reply.
type Reply struct {
	// Options are all option lines that passed the client's filters, in
	// the order received (push-continuation removed).
	Options []string
	// Unhandled are the option lines this package does not interpret
	// (kept for logging and for later features).
	Unhandled []string
	// Warnings describe options that were dropped or only partly
	// understood. They never contain secrets.
	Warnings []string

	Topology string // "subnet", "net30", "p2p"; "net30" when not pushed
	// IfconfigLocal is the tunnel address. With topology subnet the
	// second ifconfig argument is a netmask (IfconfigMask), otherwise the
	// point-to-point peer (IfconfigRemote).
	IfconfigLocal, IfconfigMask, IfconfigRemote netip.Addr
	IfconfigIPv6                                netip.Prefix
	IfconfigIPv6Remote                          netip.Addr
	RouteGateway                                netip.Addr
	RouteGatewayDHCP                            bool
	RouteGatewayIPv6                            netip.Addr
	RouteMetric                                 int
	Routes                                      []Route // IPv4
	RoutesIPv6                                  []Route
	RedirectGateway                             bool
	RedirectFlags                               []string // def1, ipv6, !ipv4, local, bypass-dhcp, block-local, …
	RedirectPrivate                             bool
	BlockIPv6                                   bool

	// DHCPDNS and the DHCP domains come from "dhcp-option"; DNSServers and
	// DNSSearchDomains from the 2.6 "dns" option, which takes precedence.
	DHCPDNS          []netip.Addr
	DHCPDomain       []string // DOMAIN and ADAPTER_DOMAIN_SUFFIX
	DHCPSearch       []string // DOMAIN-SEARCH
	DNSServers       []DNSServer
	DNSSearchDomains []string

	Ping, PingRestart, PingExit int // seconds; 0 = not pushed
	PeerID                      int // -1: none pushed (use DATA_V1)
	Cipher                      string
	TLSEKM, CCExit, DynTLSCrypt bool
	AEADEpoch                   bool
	TunMTU                      int // 0 = not pushed
	AuthToken                   string
	AuthTokenUser               string // decoded from base64
	ExplicitExitNotify          int    // 0 = not pushed
	Compression                 Compression
	CompressionPushed           bool
	InactiveSeconds             int
	SessionTimeout              int

	decompress bool // Filter.Decompress
}

// PullFilter is one client-side "pull-filter accept|ignore|reject text".
// Text is matched against the start of each pushed option line; the first
// matching filter decides.
type PullFilter struct {
	Action string // "accept", "ignore", "reject"
	Text   string
}

// Filter holds the client's restrictions on what it pulls.
type Filter struct {
	// RouteNoPull drops routes, redirect-gateway and DNS settings but
	// keeps everything else (addresses, keepalive, cipher…).
	RouteNoPull bool
	PullFilters []PullFilter
	// Decompress ("allow-compression asym") accepts a pushed compression
	// algorithm (comp-lzo yes/adaptive, compress lzo/lz4/lz4-v2) for
	// decompressing what the server sends; the client still never
	// compresses, so the Reply's Compression is the algorithm's framing.
	// Without it such a push is refused.
	Decompress bool
}

// ErrRejected is wrapped when a pull-filter "reject" matched; OpenVPN
// treats this as a fatal error for the connection attempt.
var ErrRejected = errors.New("pushed option rejected by pull-filter")

// Assembler collects the parts of one push reply.
type Assembler struct {
	// Filter is applied when the reply is built.
	Filter Filter
	// Local are the client's own network option lines from the profile
	// (route, redirect-gateway, dhcp-option, …, in push syntax). They are
	// applied before the pushed options and are not filtered.
	Local []string

	lines []string
	parts int
	size  int
	done  bool
}

// Add takes one PUSH_REPLY message ("PUSH_REPLY,opt,opt,…", with or
// without trailing NUL; the bare option list is accepted too) and reports
// whether the reply is complete: "push-continuation 2" means more parts
// follow, "push-continuation 1" or no continuation marks the last one.
func (a *Assembler) Add(msg string) (done bool, err error) {
	if a.done {
		return true, errors.New("push reply: message after the last part")
	}
	msg = strings.TrimRight(msg, "\x00")
	if rest, ok := strings.CutPrefix(msg, "PUSH_REPLY"); ok {
		if rest != "" && rest[0] != ',' {
			return false, fmt.Errorf("push reply: unexpected message %.40q", msg)
		}
		msg = strings.TrimPrefix(rest, ",")
	}
	a.parts++
	a.size += len(msg)
	if a.parts > MaxParts {
		return false, fmt.Errorf("push reply: more than %d continuation parts", MaxParts)
	}
	if a.size > MaxReplyBytes {
		return false, fmt.Errorf("push reply: more than %d bytes", MaxReplyBytes)
	}
	if !utf8.ValidString(msg) {
		return false, errors.New("push reply: not valid UTF-8")
	}
	more := false
	for l := range strings.SplitSeq(msg, ",") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		if f := strings.Fields(l); f[0] == "push-continuation" {
			if len(f) != 2 || (f[1] != "1" && f[1] != "2") {
				return false, fmt.Errorf("push reply: bad %q", l)
			}
			more = f[1] == "2"
			continue
		}
		if len(l) > MaxOptionBytes {
			return false, fmt.Errorf("push reply: option of %d bytes, limit %d", len(l), MaxOptionBytes)
		}
		if len(a.lines) >= MaxOptions {
			return false, fmt.Errorf("push reply: more than %d options", MaxOptions)
		}
		a.lines = append(a.lines, l)
	}
	a.done = !more
	return a.done, nil
}

// Reset forgets all parts so the assembler can take a new reply.
func (a *Assembler) Reset() {
	a.lines, a.parts, a.size, a.done = nil, 0, 0, false
}

// Reply applies the filter to the complete reply and interprets it.
func (a *Assembler) Reply() (*Reply, error) {
	if !a.done {
		return nil, errors.New("push reply: incomplete, waiting for push-continuation parts")
	}
	return parse(a.Local, a.lines, a.Filter)
}

// Parse interprets a single, complete PUSH_REPLY message with the given
// filter. A message that announces further parts is an error.
func Parse(msg string, f Filter) (*Reply, error) {
	a := Assembler{Filter: f}
	done, err := a.Add(msg)
	if err != nil {
		return nil, err
	}
	if !done {
		return nil, errors.New("push reply: announces push-continuation parts; use an Assembler")
	}
	return a.Reply()
}

// routeNoPullOptions are the options route-nopull removes (OpenVPN's
// OPT_P_ROUTE and OPT_P_DHCPDNS classes).
var routeNoPullOptions = map[string]bool{
	"route": true, "route-ipv6": true, "redirect-gateway": true, "redirect-private": true,
	"route-metric": true, "route-delay": true, "block-ipv6": true,
	"dhcp-option": true, "dns": true, "block-outside-dns": true,
}

// filterLine decides whether one option line is taken.
func filterLine(line, name string, f Filter) (keep bool, why string, err error) {
	for _, pf := range f.PullFilters {
		if !strings.HasPrefix(line, pf.Text) {
			continue
		}
		switch pf.Action {
		case "accept":
			return true, "", nil
		case "ignore":
			return false, fmt.Sprintf("pushed option %q ignored by pull-filter", name), nil
		case "reject":
			return false, "", fmt.Errorf("%w: %q", ErrRejected, name)
		default:
			return false, "", fmt.Errorf("pull-filter: unknown action %q", pf.Action)
		}
	}
	if f.RouteNoPull && routeNoPullOptions[name] {
		return false, fmt.Sprintf("pushed option %q ignored (route-nopull)", name), nil
	}
	return true, "", nil
}

func parse(local, lines []string, f Filter) (*Reply, error) {
	r := &Reply{PeerID: -1, decompress: f.Decompress}
	var errs []error
	for i, line := range slices.Concat(local, lines) {
		isLocal := i < len(local)
		args, err := tokenize(line)
		if err != nil {
			if isLocal {
				errs = append(errs, fmt.Errorf("profile option %.60q: %w", line, err))
			} else if err := r.optionFailed(strings.Fields(line), line, err); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		if len(args) == 0 {
			continue
		}
		if isLocal {
			if err := r.apply(args); err != nil {
				errs = append(errs, fmt.Errorf("profile option %.80q: %w", line, err))
			}
			continue
		}
		keep, why, err := filterLine(line, args[0], f)
		if err != nil {
			return nil, err
		}
		if !keep {
			r.Warnings = append(r.Warnings, why)
			continue
		}
		r.Options = append(r.Options, line)
		if err := r.apply(args); err != nil {
			// Do not echo auth-token values into errors or logs.
			shown := line
			if strings.HasPrefix(args[0], "auth-token") {
				shown = args[0] + " …"
			}
			if err := r.optionFailed(args, shown, err); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("push reply: %w", err)
	}
	if r.Topology == "" {
		r.Topology = "net30"
	}
	if r.IfconfigLocal.IsValid() {
		if r.Topology == "subnet" {
			r.IfconfigMask, r.IfconfigRemote = r.IfconfigRemote, netip.Addr{}
			if _, err := maskBits(r.IfconfigMask); err != nil {
				return nil, fmt.Errorf("push reply: ifconfig with topology subnet: %w", err)
			}
		}
	}
	return r, nil
}

// tokenize splits one option line into words; double and single quotes
// group words and a backslash escapes the next character inside double
// quotes or outside quotes, as OpenVPN's parse_line does.
func tokenize(line string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inWord := false
	var quote byte
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote == '\'':
			if c == '\'' {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case c == '\\' && i+1 < len(line) && quote != '\'':
			i++
			cur.WriteByte(line[i])
			inWord = true
		case quote == '"':
			if c == '"' {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case c == '"' || c == '\'':
			quote = c
			inWord = true
		case c == ' ' || c == '\t':
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		case c < 0x20 || c == 0x7f:
			return nil, fmt.Errorf("control character 0x%02x", c)
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, errors.New("unterminated quote")
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out, nil
}

func nargs(a []string, min, max int) error {
	n := len(a) - 1
	if n < min || n > max {
		if min == max {
			return fmt.Errorf("want %d argument(s), got %d", min, n)
		}
		return fmt.Errorf("want %d to %d arguments, got %d", min, max, n)
	}
	return nil
}

func atoiRange(s string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%q is not a number in %d..%d", s, lo, hi)
	}
	return n, nil
}

func addr4(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return netip.Addr{}, fmt.Errorf("%q is not an IPv4 address", s)
	}
	return a, nil
}

// maskBits converts a dotted netmask to a prefix length; the mask must be
// contiguous.
func maskBits(m netip.Addr) (int, error) {
	if !m.Is4() {
		return 0, fmt.Errorf("netmask %v is not IPv4", m)
	}
	b := m.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	n := 0
	for v&0x80000000 != 0 {
		n++
		v <<= 1
	}
	if v != 0 {
		return 0, fmt.Errorf("netmask %v is not contiguous", m)
	}
	return n, nil
}

// apply interprets one option. Unknown options go to Unhandled.
func (r *Reply) apply(a []string) error {
	var err error
	switch a[0] {
	case "topology":
		if err := nargs(a, 1, 1); err != nil {
			return err
		}
		switch a[1] {
		case "subnet", "net30", "p2p":
			r.Topology = a[1]
		default:
			return fmt.Errorf("unknown topology %q", a[1])
		}
	case "ifconfig":
		if err := nargs(a, 2, 2); err != nil {
			return err
		}
		if r.IfconfigLocal, err = addr4(a[1]); err != nil {
			return err
		}
		// Interpreted as mask or peer once the topology is known.
		if r.IfconfigRemote, err = addr4(a[2]); err != nil {
			return err
		}
	case "ifconfig-ipv6":
		if err := nargs(a, 1, 2); err != nil {
			return err
		}
		p, err := netip.ParsePrefix(a[1])
		if err != nil || !p.Addr().Is6() {
			return fmt.Errorf("%q is not an IPv6 address/bits", a[1])
		}
		r.IfconfigIPv6 = p
		if len(a) == 3 {
			if r.IfconfigIPv6Remote, err = netip.ParseAddr(a[2]); err != nil || !r.IfconfigIPv6Remote.Is6() {
				return fmt.Errorf("%q is not an IPv6 address", a[2])
			}
		}
	case "route-gateway":
		if err := nargs(a, 1, 1); err != nil {
			return err
		}
		if a[1] == "dhcp" {
			r.RouteGatewayDHCP = true
			return nil
		}
		if r.RouteGateway, err = addr4(a[1]); err != nil {
			return err
		}
	case "route-ipv6-gateway":
		if err := nargs(a, 1, 1); err != nil {
			return err
		}
		if r.RouteGatewayIPv6, err = netip.ParseAddr(a[1]); err != nil || !r.RouteGatewayIPv6.Is6() {
			return fmt.Errorf("%q is not an IPv6 address", a[1])
		}
	case "route-metric":
		if err := nargs(a, 1, 1); err != nil {
			return err
		}
		if r.RouteMetric, err = atoiRange(a[1], 0, 1<<31-1); err != nil {
			return err
		}
	case "route":
		return r.route4(a)
	case "route-ipv6":
		return r.route6(a)
	case "redirect-gateway", "redirect-private":
		if a[0] == "redirect-private" {
			r.RedirectPrivate = true
		} else {
			r.RedirectGateway = true
		}
		for _, fl := range a[1:] {
			switch fl {
			case "def1", "ipv6", "!ipv4", "local", "autolocal", "bypass-dhcp", "bypass-dns", "block-local":
				if !slices.Contains(r.RedirectFlags, fl) {
					r.RedirectFlags = append(r.RedirectFlags, fl)
				}
			default:
				r.Warnings = append(r.Warnings, fmt.Sprintf("%s: unknown flag %q ignored", a[0], fl))
			}
		}
	case "block-ipv6":
		r.BlockIPv6 = true
	case "dhcp-option":
		return r.dhcpOption(a)
	case "dns":
		return r.dns(a)
	case "ping", "ping-restart", "ping-exit", "inactive", "session-timeout":
		if err := nargs(a, 1, 2); err != nil {
			return err
		}
		n, err := atoiRange(a[1], 0, 1<<24)
		if err != nil {
			return err
		}
		switch a[0] {
		case "ping":
			r.Ping = n
		case "ping-restart":
			r.PingRestart = n
		case "ping-exit":
			r.PingExit = n
		case "inactive":
			r.InactiveSeconds = n
		default:
			r.SessionTimeout = n
		}
	case "peer-id":
		if err := nargs(a, 1, 1); err != nil {
			return err
		}
		// 0xFFFFFF is reserved for "no peer-id".
		if r.PeerID, err = atoiRange(a[1], 0, 0xfffffe); err != nil {
			return err
		}
	case "cipher":
		if err := nargs(a, 1, 1); err != nil {
			return err
		}
		r.Cipher = strings.ToUpper(a[1])
	case "protocol-flags":
		for _, fl := range a[1:] {
			switch fl {
			case "cc-exit":
				r.CCExit = true
			case "tls-ekm":
				r.TLSEKM = true
			case "dyn-tls-crypt":
				r.DynTLSCrypt = true
			case "aead-epoch":
				r.AEADEpoch = true
			default:
				r.Warnings = append(r.Warnings, fmt.Sprintf("protocol-flags: unknown flag %q ignored", fl))
			}
		}
	case "key-derivation":
		if err := nargs(a, 1, 1); err != nil {
			return err
		}
		if a[1] != "tls-ekm" {
			return fmt.Errorf("unknown key derivation %q", a[1])
		}
		r.TLSEKM = true
	case "tun-mtu":
		if err := nargs(a, 1, 1); err != nil {
			return err
		}
		if r.TunMTU, err = atoiRange(a[1], 576, 65535); err != nil {
			return err
		}
	case "auth-token":
		if err := nargs(a, 1, 1); err != nil {
			return errors.New("want exactly one token")
		}
		r.AuthToken = a[1]
	case "auth-token-user":
		if err := nargs(a, 1, 1); err != nil {
			return err
		}
		u, err := base64.StdEncoding.DecodeString(a[1])
		if err != nil || !utf8.Valid(u) || strings.ContainsAny(string(u), "\x00\n") {
			return errors.New("username is not base64 of clean text")
		}
		r.AuthTokenUser = string(u)
	case "explicit-exit-notify":
		if err := nargs(a, 0, 1); err != nil {
			return err
		}
		r.ExplicitExitNotify = 1
		if len(a) == 2 {
			if r.ExplicitExitNotify, err = atoiRange(a[1], 0, 1000); err != nil {
				return err
			}
		}
	case "comp-lzo":
		if err := nargs(a, 0, 1); err != nil {
			return err
		}
		if len(a) == 2 && a[1] == "no" || r.decompress {
			r.Compression, r.CompressionPushed = CompressionLZOStub, true
			return nil
		}
		return errors.New("server pushes LZO compression; compression is refused because compressing encrypted traffic leaks plaintext (VORACLE) — remove comp-lzo from the server or push \"comp-lzo no\", or set allow-compression asym to accept decompressing it")
	case "compress":
		if err := nargs(a, 0, 1); err != nil {
			return err
		}
		alg := ""
		if len(a) == 2 {
			alg = a[1]
		}
		switch {
		case alg == "" || alg == "stub":
			r.Compression = CompressionStub
		case alg == "stub-v2":
			r.Compression = CompressionStubV2
		case r.decompress && (alg == "lz4" || alg == "lz4-v2" || alg == "lzo"):
			// Decompressed on receipt; sent uncompressed in the
			// algorithm's framing.
			r.Compression = ProfileCompression("", alg)
		case alg == "lz4" || alg == "lz4-v2" || alg == "lzo":
			return fmt.Errorf("server pushes compression %q; compression is refused because compressing encrypted traffic leaks plaintext (VORACLE) — use \"compress stub-v2\" or no compression on the server, or set allow-compression asym to accept decompressing it", alg)
		default:
			return fmt.Errorf("server pushes unknown compression %q", alg)
		}
		r.CompressionPushed = true
	default:
		r.Unhandled = append(r.Unhandled, strings.Join(a, " "))
	}
	return nil
}

func (r *Reply) route4(a []string) error {
	if err := nargs(a, 1, 4); err != nil {
		return err
	}
	net, err := netip.ParseAddr(a[1])
	if err != nil || !net.Is4() {
		if a[1] == "vpn_gateway" || a[1] == "net_gateway" || a[1] == "remote_host" {
			r.Warnings = append(r.Warnings, fmt.Sprintf("route %s: special network not supported, ignored", a[1]))
			return nil
		}
		// A host name needs allow-pull-fqdn, which we do not do.
		return fmt.Errorf("network %q is not an IPv4 address", a[1])
	}
	bits := 32
	if len(a) > 2 && a[2] != "default" {
		m, err := addr4(a[2])
		if err != nil {
			return fmt.Errorf("netmask: %w", err)
		}
		if bits, err = maskBits(m); err != nil {
			return err
		}
	}
	rt := Route{Prefix: netip.PrefixFrom(net, bits).Masked()}
	if len(a) > 3 {
		switch a[3] {
		case "vpn_gateway", "default":
		case "net_gateway":
			rt.NetGateway = true
		case "remote_host":
			r.Warnings = append(r.Warnings, "route via remote_host not supported, route ignored")
			return nil
		default:
			if rt.Gateway, err = addr4(a[3]); err != nil {
				return fmt.Errorf("gateway: %w", err)
			}
		}
	}
	if len(a) > 4 && a[4] != "default" {
		if rt.Metric, err = atoiRange(a[4], 0, 1<<31-1); err != nil {
			return fmt.Errorf("metric: %w", err)
		}
	}
	r.Routes = append(r.Routes, rt)
	return nil
}

func (r *Reply) route6(a []string) error {
	if err := nargs(a, 1, 3); err != nil {
		return err
	}
	p, err := netip.ParsePrefix(a[1])
	if err != nil {
		addr, aerr := netip.ParseAddr(a[1])
		if aerr != nil || !addr.Is6() {
			return fmt.Errorf("%q is not an IPv6 network", a[1])
		}
		p = netip.PrefixFrom(addr, 128)
	}
	if !p.Addr().Is6() {
		return fmt.Errorf("%q is not an IPv6 network", a[1])
	}
	rt := Route{Prefix: p.Masked()}
	if len(a) > 2 {
		switch a[2] {
		case "vpn_gateway", "default":
		case "net_gateway":
			rt.NetGateway = true
		default:
			if rt.Gateway, err = netip.ParseAddr(a[2]); err != nil || !rt.Gateway.Is6() {
				return fmt.Errorf("gateway %q is not an IPv6 address", a[2])
			}
		}
	}
	if len(a) > 3 && a[3] != "default" {
		if rt.Metric, err = atoiRange(a[3], 0, 1<<31-1); err != nil {
			return fmt.Errorf("metric: %w", err)
		}
	}
	r.RoutesIPv6 = append(r.RoutesIPv6, rt)
	return nil
}

func (r *Reply) dhcpOption(a []string) error {
	if err := nargs(a, 1, 2); err != nil {
		return err
	}
	val := ""
	if len(a) == 3 {
		val = a[2]
	}
	switch strings.ToUpper(a[1]) {
	case "DNS", "DNS6":
		ip, err := netip.ParseAddr(val)
		if err != nil {
			return fmt.Errorf("%q is not an IP address", val)
		}
		r.DHCPDNS = append(r.DHCPDNS, ip.Unmap())
	case "DOMAIN", "ADAPTER_DOMAIN_SUFFIX":
		if err := checkDomain(val); err != nil {
			return err
		}
		r.DHCPDomain = append(r.DHCPDomain, val)
	case "DOMAIN-SEARCH":
		if err := checkDomain(val); err != nil {
			return err
		}
		r.DHCPSearch = append(r.DHCPSearch, val)
	default:
		// WINS, NBT, NTP, PROXY_* …: Windows or script-only.
		r.Unhandled = append(r.Unhandled, strings.Join(a, " "))
	}
	return nil
}

// checkDomain accepts a DNS name: letters, digits, '-', '_', '.'.
func checkDomain(d string) error { return netconf.CheckDomain(d) }

func (r *Reply) dnsServer(prio int) *DNSServer {
	for i := range r.DNSServers {
		if r.DNSServers[i].Priority == prio {
			return &r.DNSServers[i]
		}
	}
	r.DNSServers = append(r.DNSServers, DNSServer{Priority: prio})
	return &r.DNSServers[len(r.DNSServers)-1]
}

func (r *Reply) dns(a []string) error {
	if len(a) < 2 {
		return errors.New("incomplete dns option")
	}
	if a[1] != "search-domains" && a[1] != "server" {
		// A newer server may know more; OpenVPN refuses the line, but a
		// resolver setting we do not understand is no reason to fail the
		// connection.
		r.Warnings = append(r.Warnings, fmt.Sprintf("dns: unknown sub-option %q skipped", a[1]))
		return nil
	}
	if len(a) < 3 {
		return errors.New("incomplete dns option")
	}
	switch a[1] {
	case "search-domains":
		for _, d := range a[2:] {
			if err := checkDomain(d); err != nil {
				return err
			}
			r.DNSSearchDomains = append(r.DNSSearchDomains, d)
		}
		return nil
	}
	if len(a) < 5 {
		return errors.New("dns server: want \"dns server N keyword value…\"")
	}
	prio, err := atoiRange(a[2], -128, 127)
	if err != nil {
		return fmt.Errorf("dns server priority: %w", err)
	}
	s := r.dnsServer(prio)
	vals := a[4:]
	switch a[3] {
	case "address":
		if len(vals) > 8 {
			return errors.New("dns server: more than 8 addresses")
		}
		for _, v := range vals {
			ap, err := parseAddrPort(v)
			if err != nil {
				return err
			}
			s.Addresses = append(s.Addresses, ap)
		}
	case "resolve-domains":
		for _, d := range vals {
			d = strings.TrimPrefix(d, "~")
			if err := checkDomain(d); err != nil {
				return err
			}
			s.ResolveDomains = append(s.ResolveDomains, d)
		}
	case "dnssec":
		if len(vals) != 1 || (vals[0] != "yes" && vals[0] != "no" && vals[0] != "optional") {
			return errors.New("dns server dnssec: want yes|optional|no")
		}
		s.DNSSEC = vals[0]
	case "transport":
		if len(vals) != 1 || (vals[0] != "plain" && vals[0] != "DoH" && vals[0] != "DoT") {
			return errors.New("dns server transport: want plain|DoH|DoT")
		}
		s.Transport = vals[0]
	case "sni":
		if len(vals) != 1 {
			return errors.New("dns server sni: want one name")
		}
		s.SNI = vals[0]
	default:
		r.Warnings = append(r.Warnings, fmt.Sprintf("dns server %d: unknown keyword %q skipped", prio, a[3]))
	}
	return nil
}

// parseAddrPort accepts "a.b.c.d", "a.b.c.d:53", "::1", "[::1]:53".
func parseAddrPort(s string) (netip.AddrPort, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPortFrom(a.Unmap(), 0), nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%q is not an address[:port]", s)
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}
