// Package profile parses OpenVPN client profiles (.ovpn files) as users
// import them: self-contained text with inline certificates and keys. It
// tokenises exactly like OpenVPN 2.x, classifies every 2.x option in one
// table (options.go: applied, ignored with the reason, or refused), reports
// every problem at once with its line number, and fills the typed fields
// the engine needs.
//
// "Applied" means the client acts on the option, and a test named in the
// table shows it. An engine that cannot honour a filled field must refuse
// the profile itself rather than ignore the field.
package profile

import (
	"encoding/pem"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/push"
)

// Option is one option as written. An inline block has Inline set and its
// content as the only argument; a <connection> block has Name
// "connection" and its canonical text as the argument (its parsed form is
// in Profile.Connections).
type Option struct {
	Name   string
	Args   []string
	Line   int
	Inline bool
}

// Remote is one server to try.
type Remote struct {
	Host  string
	Port  string // as written or inherited; "1194" by default
	Proto string // as written or inherited: "udp", "tcp", "udp6", "tcp-client", …
}

// Connection is one <connection> block.
type Connection struct {
	Line    int
	Remote  Remote
	Options []Option
}

// PullFilter is one "pull-filter accept|ignore|reject text".
type PullFilter struct {
	Action string
	Text   string
}

// StaticChallenge is "static-challenge text echo [format]".
type StaticChallenge struct {
	Text   string
	Echo   bool
	Format string // "scrv1" (default) or "concat"
}

// HTTPProxy is "http-proxy host port [auth] [method]" plus its options.
type HTTPProxy struct {
	Host, Port string
	// AuthFile is "", "auto", "auto-nct" or "[inline]" (credentials in
	// UserPass); Method is "", "none" or "basic".
	AuthFile, Method string
	UserPass         string
	Options          [][]string // http-proxy-option lines
}

// Warning is a non-fatal remark about the profile. It never contains
// secrets.
type Warning struct {
	Line   int
	Option string
	Msg    string
}

func (w Warning) String() string {
	var b strings.Builder
	if w.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", w.Line)
	}
	if w.Option != "" {
		fmt.Fprintf(&b, "option '%s' ", w.Option)
	}
	b.WriteString(w.Msg)
	return b.String()
}

// Kind tells the problems that make a profile unusable as written (a bad
// line, a limit) from the gaps of a profile that is well-formed but
// incomplete as a whole, so callers can act on them without matching
// message text.
type Kind int

const (
	// KindInput: the text itself is wrong where Line says (or, with
	// Line 0, as a whole: too large). Nothing partial is returned.
	KindInput                Kind = iota
	KindNotClient                 // neither 'client' nor 'pull' + 'tls-client'
	KindNoRemote                  // no 'remote' and no <connection>
	KindNoDev                     // no 'dev'
	KindDevType                   // 'dev' name that is not tun* without 'dev-type tun'
	KindNoCA                      // no <ca>, peer-fingerprint or <pkcs12>
	KindCertWithoutKey            // <cert> without <key>
	KindKeyWithoutCert            // <key> without <cert>
	KindNoAuth                    // no client certificate and no auth-user-pass
	KindChallengeWithoutAuth      // static-challenge without auth-user-pass
)

// Gap reports whether the problem is a whole-profile gap (anything but
// KindInput): the options present are fine, something is missing.
func (k Kind) Gap() bool { return k != KindInput }

// Problem is one reason the profile is refused.
type Problem struct {
	Line   int // 0: the profile as a whole
	Option string
	Msg    string
	Kind   Kind
}

func (p Problem) Error() string {
	var b strings.Builder
	if p.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", p.Line)
	} else {
		b.WriteString("profile: ")
	}
	if p.Option != "" {
		fmt.Fprintf(&b, "option '%s' ", p.Option)
	}
	b.WriteString(p.Msg)
	return b.String()
}

// ParseError lists every problem found, in line order.
type ParseError struct {
	Problems []Problem
	// Partial is the profile as far as it was built, set only when every
	// problem is a whole-profile gap (Kind.Gap): the options are all
	// well-formed but something the profile needs is missing. A caller
	// that keeps incomplete profiles (the configuration manager imports
	// them with valid=false) can still show their options. Nil when any
	// problem is on a line.
	Partial *Profile
}

// Gaps reports whether every problem is a whole-profile gap, i.e. whether
// Partial is set.
func (e *ParseError) Gaps() bool { return e.Partial != nil }

func (e *ParseError) Error() string {
	msgs := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		msgs[i] = p.Error()
	}
	return strings.Join(msgs, "\n")
}

// Unwrap exposes the problems to errors.Is/As.
func (e *ParseError) Unwrap() []error {
	out := make([]error, len(e.Problems))
	for i, p := range e.Problems {
		out[i] = p
	}
	return out
}

// Profile is a parsed client profile.
type Profile struct {
	Options     []Option
	Remotes     []Remote
	Connections []Connection

	Dev     string // "tun", "tun0", …
	DevType string // "tun" or ""
	Proto   string // global default, "udp" when unset
	Port    string // global default, "1194" when unset
	Nobind  bool

	CA, Cert, Key, ExtraCerts string // PEM text
	PKCS12                    string // base64 text
	CRLVerify                 string // PEM text
	PeerFingerprints          []string

	TLSCrypt, TLSAuth, TLSCryptV2 string
	KeyDirection                  int // -1 unset

	Cipher              string
	DataCiphers         []string
	DataCiphersFallback string
	Auth                string

	AuthUserPass bool
	// AuthUsername/AuthPassword come from an inline <auth-user-pass>.
	AuthUsername, AuthPassword string
	AuthNoCache                bool
	AuthRetry                  string // "none", "nointeract", "interact"; "" unset
	StaticChallenge            *StaticChallenge

	RemoteCertTLS  string
	RemoteCertKU   []string
	RemoteCertEKU  string
	VerifyX509Name string
	VerifyX509Type string // "subject" (default), "name", "name-prefix"
	TLSVersionMin  string
	// TLSVersionMinOrHighest: "tls-version-min V or-highest".
	TLSVersionMinOrHighest bool
	TLSVersionMax          string
	TLSCipher              string
	TLSCipherSuites        string
	TLSGroups              string
	TLSCertProfile         string

	Verb        int
	RouteNoPull bool
	PullFilters []PullFilter
	// NetOptions are client-side network options (route, redirect-gateway,
	// dhcp-option, dns, …) as option lines in push syntax; the engine
	// applies them before the pushed ones.
	NetOptions []string

	CompLZO          string // "", "yes", "no", "adaptive" (bare comp-lzo)
	Compress         string // "", "stub", "stub-v2", "lz4", …; bare compress = "stub"
	AllowCompression string
	// Offload switches the data path's offloads off (ovpn3go-offload).
	Offload OffloadSwitches

	ExplicitExitNotify int
	TunMTU, TunMTUMax  int
	Mssfix             int
	MaxPacketSize      int // control packet size limit; 0 = default 1250
	Ping               int // 0: no keepalive until pushed
	PingRestart        int // 120 unless set
	PingExit           int

	Float                bool // accept the server at a new address once authenticated
	RemoteRandom         bool
	RemoteRandomHostname bool
	ConnectRetry         int // seconds, 1 unless set
	ConnectRetryMaxDelay int // seconds, 300 unless set
	ConnectRetryMax      int // attempts over the remote list, 0 = unlimited
	ServerPollTimeout    int // seconds, 120 unless set

	RenegSec               int // with RenegSecSet; otherwise the engine's default, 3600 s
	RenegBytes, RenegPkts  int64
	HandWindow, TLSTimeout int
	TranWindow             int
	PushPeerInfo           bool
	HTTPProxy              *HTTPProxy
	Setenv                 map[string]string
	ASMeta                 map[string]string // "# OVPN_ACCESS_SERVER_<KEY>=<VALUE>"
	Warnings               []Warning

	// Key and session limits (control/limits.go).
	RenegSecSet bool // reneg-sec given (0 turns client-side renegotiation off)
	RenegSecMin int  // "reneg-sec max min": jitter down to min; 0 unset
	// Inactive ends the session after that many seconds with less than
	// InactiveBytes of tunnel traffic; SessionTimeout after that many
	// seconds connected. 0: off.
	Inactive       int
	InactiveBytes  int64
	SessionTimeout int
	// ReplayWindow/ReplayTime: "replay-window n [t]" when ReplayWindowSet
	// (otherwise OpenVPN's 64 packets and 15 s); ReplayTime -1: not given.
	ReplayWindowSet          bool
	ReplayWindow, ReplayTime int
}

// Defaults of OpenVPN 2.6 clients.
const (
	DefaultPort              = "1194"
	DefaultVerb              = 1
	DefaultProto             = "udp"
	DefaultPingRestart       = 120
	DefaultConnectRetry      = 1
	DefaultConnectRetryMax   = 300
	DefaultServerPollTimeout = 120
)

// rawOpt is an option on its way from text to Profile.
type rawOpt struct {
	Option
	sub      []rawOpt // <connection> content
	optional bool     // from "setenv opt"
	inner    Option   // the option named by "setenv opt"
}

type parser struct {
	p          *Profile
	problems   []Problem
	nOptions   int
	nConn      int
	ignore     map[string]bool
	fwdCompat  bool
	inlineWant map[string]int // "[inline]" markers: name -> line
	inlineHave map[string]bool
	tlsKeyOpt  map[string]int // tls-auth/tls-crypt/tls-crypt-v2 -> line
	conn       *Connection
	connProto  string
	connPort   string
	global     struct{ proto, port string }
	// origin[i] is the <connection> index of p.Remotes[i], -1 for top level.
	origin                  []int
	connDef                 [][2]string // per connection: port, proto
	client, pull, tlsClient bool
	lexFailed               bool
	seen                    map[string]bool // option names present, even if refused
	// Access Server metadata blocks: the current run of comment lines
	// ends before metaRunEnd; metaStops[key] lists its _STOP lines.
	metaRunEnd int
	metaStops  map[string][]int
}

func (ps *parser) fail(line int, opt, format string, a ...any) {
	ps.problems = append(ps.problems, Problem{Line: line, Option: opt, Msg: fmt.Sprintf(format, a...)})
}

// gap records a whole-profile problem of the given kind.
func (ps *parser) gap(kind Kind, opt, format string, a ...any) {
	ps.problems = append(ps.problems, Problem{Option: opt, Msg: fmt.Sprintf(format, a...), Kind: kind})
}

func (ps *parser) warn(line int, opt, format string, a ...any) {
	ps.p.Warnings = append(ps.p.Warnings, Warning{Line: line, Option: opt, Msg: fmt.Sprintf(format, a...)})
}

// Parse parses profile text. On failure the profile is nil and the error
// is a *ParseError that lists every problem with its line number; when
// the only problems are whole-profile gaps, ParseError.Partial holds the
// incomplete profile.
func Parse(text string) (*Profile, error) {
	if len(text) > MaxProfileSize {
		return nil, &ParseError{Problems: []Problem{{Msg: fmt.Sprintf("is %d bytes, limit %d", len(text), MaxProfileSize)}}}
	}
	text = strings.TrimPrefix(text, "\uFEFF")
	if i := strings.IndexByte(text, 0); i >= 0 {
		line := strings.Count(text[:i], "\n") + 1
		return nil, &ParseError{Problems: []Problem{{Line: line, Msg: "contains a NUL byte: not a text profile"}}}
	}
	// Messages quote the text, and D-Bus strings must be UTF-8: binary
	// data or a legacy 8-bit encoding stops here, with its line.
	if !utf8.ValidString(text) {
		i := invalidUTF8(text)
		line := strings.Count(text[:i], "\n") + 1
		return nil, &ParseError{Problems: []Problem{{Line: line, Msg: "is not UTF-8 text (binary data, or another encoding): convert the file to UTF-8"}}}
	}
	ps := &parser{
		p: &Profile{
			KeyDirection:         -1,
			Verb:                 DefaultVerb,
			PingRestart:          DefaultPingRestart,
			ConnectRetry:         DefaultConnectRetry,
			ConnectRetryMaxDelay: DefaultConnectRetryMax,
			ServerPollTimeout:    DefaultServerPollTimeout,
			Setenv:               map[string]string{},
			ASMeta:               map[string]string{},
		},
		ignore:     map[string]bool{},
		inlineWant: map[string]int{},
		inlineHave: map[string]bool{},
		tlsKeyOpt:  map[string]int{},
		seen:       map[string]bool{},
	}
	lines := strings.Split(text, "\n")
	for i := range lines {
		lines[i] = strings.TrimSuffix(lines[i], "\r")
	}
	opts := ps.lex(lines, 1, true)
	// Lexing problems do not stop the option checks, so every problem is
	// reported at once; but the whole-profile checks would only repeat
	// them in vaguer words.
	ps.lexFailed = len(ps.problems) > 0
	ps.process(opts)
	if len(ps.problems) > 0 {
		slices.SortStableFunc(ps.problems, func(a, b Problem) int {
			// Whole-profile problems last.
			la, lb := a.Line, b.Line
			if la == 0 {
				la = 1 << 30
			}
			if lb == 0 {
				lb = 1 << 30
			}
			return la - lb
		})
		if n := len(ps.problems) - MaxProblems; n > 0 {
			// A hostile or binary-like file must not make an error of
			// megabytes (it travels in a D-Bus reply).
			ps.problems = append(ps.problems[:MaxProblems:MaxProblems], Problem{Msg: fmt.Sprintf("and %d more problems", n)})
		}
		pe := &ParseError{Problems: ps.problems}
		if !slices.ContainsFunc(ps.problems, func(p Problem) bool { return !p.Kind.Gap() }) {
			pe.Partial = ps.p
		}
		return nil, pe
	}
	return ps.p, nil
}

// invalidUTF8 returns the offset of the first byte that is not UTF-8.
func invalidUTF8(s string) int {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(s)
}

// lex turns lines into raw options, collecting inline blocks and, at the
// top level, Access Server metadata comments. first is the line number
// of lines[0].
func (ps *parser) lex(lines []string, first int, top bool) []rawOpt {
	var out []rawOpt
	for i := 0; i < len(lines); i++ {
		ln := first + i
		line := lines[i]
		trimmed := strings.TrimSpace(line)
		if trimmed == "" {
			continue
		}
		if trimmed[0] == '#' || trimmed[0] == ';' {
			if top {
				i += ps.asMeta(lines, i)
			}
			continue
		}
		if name, closing, ok := inlineTag(trimmed); ok {
			if closing {
				ps.fail(ln, "", "closing tag </%s> without opening <%s>", name, name)
				continue
			}
			if name == "connection" && !top {
				ps.fail(ln, "", "<connection> blocks cannot be nested")
				continue
			}
			end := -1
			size := 0
			for j := i + 1; j < len(lines); j++ {
				if strings.TrimSpace(lines[j]) == "</"+name+">" {
					end = j
					break
				}
				size += len(lines[j]) + 1
			}
			if end < 0 {
				ps.fail(ln, "", "inline block <%s> has no closing </%s>", name, name)
				return out
			}
			body := lines[i+1 : end]
			i = end
			if size > MaxInlineSize {
				ps.fail(ln, "", "inline block <%s> is %d bytes, limit %d", name, size, MaxInlineSize)
				continue
			}
			if !ps.count(ln) {
				return out
			}
			if name == "connection" {
				ps.nConn++
				if ps.nConn > MaxConnections {
					ps.fail(ln, "", "more than %d <connection> blocks", MaxConnections)
					return out
				}
				sub := ps.lex(body, ln+1, false)
				out = append(out, rawOpt{Option: Option{Name: name, Line: ln, Inline: true}, sub: sub})
				continue
			}
			content := ""
			if len(body) > 0 {
				content = strings.Join(body, "\n") + "\n"
			}
			out = append(out, rawOpt{Option: Option{Name: name, Args: []string{content}, Line: ln, Inline: true}})
			continue
		}
		if len(line) > MaxLineLen {
			ps.fail(ln, "", "line is %d bytes, limit %d", len(line), MaxLineLen)
			continue
		}
		words, err := tokenize(line)
		if err != nil {
			ps.fail(ln, "", "%v", err)
			continue
		}
		if len(words) == 0 {
			continue
		}
		if len(words) > MaxArgs+1 {
			ps.fail(ln, strings.TrimPrefix(words[0], "--"), "has %d parameters, limit %d", len(words)-1, MaxArgs)
			continue
		}
		if !ps.count(ln) {
			return out
		}
		o := rawOpt{Option: Option{Name: strings.TrimPrefix(words[0], "--"), Args: words[1:], Line: ln}}
		if o.Name == "setenv" && len(o.Args) >= 2 && o.Args[0] == "opt" {
			o.optional = true
			o.inner = Option{Name: strings.TrimPrefix(o.Args[1], "--"), Args: o.Args[2:], Line: ln}
		}
		out = append(out, o)
	}
	return out
}

func (ps *parser) count(ln int) bool {
	ps.nOptions++
	if ps.nOptions > MaxOptions {
		ps.fail(ln, "", "more than %d options", MaxOptions)
		return false
	}
	return true
}

const asPrefix = "OVPN_ACCESS_SERVER_"

// asMeta records "# OVPN_ACCESS_SERVER_KEY=VALUE" and the multi-line
// "# OVPN_ACCESS_SERVER_KEY_START" … "# OVPN_ACCESS_SERVER_KEY_STOP"
// form found at lines[i]. It returns how many further lines it consumed.
func (ps *parser) asMeta(lines []string, i int) int {
	body, ok := strings.CutPrefix(strings.TrimLeft(strings.TrimSpace(lines[i]), "#; \t"), asPrefix)
	if !ok {
		return 0
	}
	if k, v, ok := strings.Cut(body, "="); ok {
		ps.p.ASMeta[k] = v
		return 0
	}
	key, ok := strings.CutSuffix(body, "_START")
	if !ok {
		ps.p.ASMeta[body] = ""
		return 0
	}
	// The block runs over the '#' lines that follow, up to its _STOP line.
	// Where the _STOP lines are is indexed once per run of comment lines,
	// so that many unterminated _START lines cost linear, not quadratic,
	// time.
	if i >= ps.metaRunEnd {
		ps.indexMetaRun(lines, i)
	}
	stops := ps.metaStops[key]
	for len(stops) > 0 && stops[0] <= i {
		stops = stops[1:]
	}
	ps.metaStops[key] = stops
	if len(stops) == 0 {
		ps.p.ASMeta[body] = "" // unterminated block
		return 0
	}
	j := stops[0]
	val := make([]string, 0, j-i-1)
	for _, l := range lines[i+1 : j] {
		val = append(val, metaComment(l))
	}
	ps.p.ASMeta[key] = strings.Join(val, "\n")
	return j - i
}

// metaComment is the text of a '#' comment line inside a metadata block.
func metaComment(l string) string {
	return strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(l), "#"), " ")
}

// indexMetaRun finds the run of '#' lines after lines[i] and where in it
// each key's _STOP lines are.
func (ps *parser) indexMetaRun(lines []string, i int) {
	ps.metaStops = map[string][]int{}
	j := i + 1
	for ; j < len(lines) && strings.HasPrefix(strings.TrimSpace(lines[j]), "#"); j++ {
		l := metaComment(lines[j])
		if k, ok := strings.CutPrefix(l, asPrefix); ok {
			if k, ok := strings.CutSuffix(k, "_STOP"); ok {
				ps.metaStops[k] = append(ps.metaStops[k], j)
			}
		}
	}
	ps.metaRunEnd = j
}

func (ps *parser) process(opts []rawOpt) {
	// ignore-unknown-option and FORWARD_COMPATIBLE apply to the whole file.
	for _, o := range opts {
		switch {
		case o.Name == "ignore-unknown-option":
			for _, a := range o.Args {
				ps.ignore[strings.TrimPrefix(a, "--")] = true
			}
		case o.Name == "setenv" && len(o.Args) >= 1 && o.Args[0] == "FORWARD_COMPATIBLE":
			ps.fwdCompat = len(o.Args) < 2 || o.Args[1] != "0"
		}
	}
	for _, o := range opts {
		ps.p.Options = append(ps.p.Options, o.Option)
		if o.Name == "connection" && o.Inline {
			ps.connection(o)
			continue
		}
		ps.apply(o)
	}
	ps.finish()
}

func (ps *parser) connection(o rawOpt) {
	c := Connection{Line: o.Line}
	ps.conn, ps.connProto, ps.connPort = &c, "", ""
	for _, so := range o.sub {
		c.Options = append(c.Options, so.Option)
		ps.apply(so)
	}
	ps.conn = nil
	ps.connDef = append(ps.connDef, [2]string{ps.connPort, ps.connProto})
	if c.Remote.Host == "" {
		ps.fail(o.Line, "", "<connection> block has no 'remote'")
	}
	ps.p.Connections = append(ps.p.Connections, c)
	ps.p.Options[len(ps.p.Options)-1].Args = []string{renderOptions(c.Options, nil)}
}

// apply classifies one option and acts on it.
func (ps *parser) apply(o rawOpt) {
	opt := o.Option
	optional := ps.ignore[opt.Name]
	if o.optional {
		opt, optional = o.inner, true
		if opt.Name == "" {
			ps.fail(o.Line, "setenv", "opt needs an option name")
			return
		}
	}
	ps.seen[opt.Name] = true
	info, known := Lookup(opt.Name)
	if !known {
		if optional || ps.fwdCompat {
			ps.warn(opt.Line, opt.Name, "is unknown and ignored")
			return
		}
		ps.fail(opt.Line, opt.Name, "is not a known OpenVPN option")
		return
	}
	if opt.Inline && !info.Inline {
		ps.fail(opt.Line, opt.Name, "cannot be given as an inline block")
		return
	}
	if ps.conn != nil && !info.InConnection {
		ps.fail(opt.Line, opt.Name, "is not allowed inside <connection>")
		return
	}
	switch info.Class {
	case Ignored:
		if info.handle != nil {
			// Checked and stored, so the profile stays well-formed
			// and the option is ready to take effect. A handler's own
			// warning says more than the generic one.
			n, w := len(ps.problems), len(ps.p.Warnings)
			info.handle(ps, opt)
			if len(ps.problems) > n || len(ps.p.Warnings) > w {
				return
			}
		}
		if !info.Quiet {
			ps.warn(opt.Line, opt.Name, "ignored: %s", info.Why)
		}
		return
	case Refused:
		if optional {
			ps.warn(opt.Line, opt.Name, "ignored (listed by setenv opt/ignore-unknown-option): %s", info.Why)
			return
		}
		ps.fail(opt.Line, opt.Name, "is not supported: %s", info.Why)
		return
	}
	info.handle(ps, opt)
}

// nargs checks the argument count; it reports and returns false when wrong.
func (ps *parser) nargs(o Option, min, max int) bool {
	n := len(o.Args)
	if n >= min && n <= max {
		return true
	}
	switch {
	case min == max && min == 0:
		ps.fail(o.Line, o.Name, "takes no arguments, got %d", n)
	case min == max:
		ps.fail(o.Line, o.Name, "takes %d argument(s), got %d", min, n)
	default:
		ps.fail(o.Line, o.Name, "takes %d to %d arguments, got %d", min, max, n)
	}
	return false
}

func (ps *parser) intArg(o Option, s string, lo, hi int) (int, bool) {
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		ps.fail(o.Line, o.Name, "value %q is not a number in %d..%d", s, lo, hi)
		return 0, false
	}
	return n, true
}

func (ps *parser) oneOf(o Option, s string, allowed ...string) bool {
	if slices.Contains(allowed, s) {
		return true
	}
	ps.fail(o.Line, o.Name, "value %q is not one of %s", s, strings.Join(allowed, ", "))
	return false
}

var protos = []string{"udp", "udp4", "udp6", "tcp", "tcp4", "tcp6", "tcp-client", "tcp4-client", "tcp6-client"}

func (ps *parser) proto(o Option, s string) bool {
	if slices.Contains(protos, s) {
		return true
	}
	if strings.HasPrefix(s, "tcp") && strings.HasSuffix(s, "-server") {
		ps.fail(o.Line, o.Name, "is not supported: %q is the server side of TCP", s)
		return false
	}
	ps.fail(o.Line, o.Name, "value %q is not a transport (%s)", s, strings.Join(protos, ", "))
	return false
}

func (ps *parser) port(o Option, s string) bool {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		ps.fail(o.Line, o.Name, "port %q is not a number in 1..65535", s)
		return false
	}
	return true
}

func validHost(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	for _, c := range []byte(h) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

// material handles options whose value is a file or an inline block.
// It returns the inline content and true when there is content to store.
func (ps *parser) material(o Option) (string, bool) {
	if o.Inline {
		ps.inlineHave[o.Name] = true
		return o.Args[0], true
	}
	if len(o.Args) == 0 {
		ps.fail(o.Line, o.Name, "needs an inline <%s> block", o.Name)
		return "", false
	}
	if o.Args[0] == "[inline]" {
		if _, ok := ps.inlineWant[o.Name]; !ok {
			ps.inlineWant[o.Name] = o.Line
		}
		return "", false
	}
	ps.fail(o.Line, o.Name, "refers to file %q: an imported profile must be self-contained; paste the file's content between <%s> and </%s>", o.Args[0], o.Name, o.Name)
	return "", false
}

func (ps *parser) pemBlock(o Option, content string, want ...string) bool {
	rest := []byte(content)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		for _, w := range want {
			if b.Type == w || strings.HasPrefix(w, "*") && strings.HasSuffix(b.Type, strings.TrimPrefix(w, "*")) {
				return true
			}
		}
	}
	ps.fail(o.Line, o.Name, "inline block holds no PEM %s", strings.Join(want, " or "))
	return false
}

func (ps *parser) staticKey(o Option, content, kind string) bool {
	begin, end := "-----BEGIN "+kind+"-----", "-----END "+kind+"-----"
	i := strings.Index(content, begin)
	if i < 0 || !strings.Contains(content[i:], end) {
		ps.fail(o.Line, o.Name, "inline block holds no %q", kind)
		return false
	}
	return true
}

// tlsKey records tls-auth/tls-crypt/tls-crypt-v2; only one kind may be used.
func (ps *parser) tlsKey(o Option, dst *string, content string) {
	for name, line := range ps.tlsKeyOpt {
		if name != o.Name {
			ps.fail(o.Line, o.Name, "cannot be combined with '%s' (line %d)", name, line)
			return
		}
	}
	if _, ok := ps.tlsKeyOpt[o.Name]; !ok {
		ps.tlsKeyOpt[o.Name] = o.Line
	}
	if *dst != "" && *dst != content {
		ps.fail(o.Line, o.Name, "is given twice with different keys; per-connection keys are not supported")
		return
	}
	*dst = content
}

func (ps *parser) keyDirection(o Option, s string) {
	switch s {
	case "0":
		ps.p.KeyDirection = 0
	case "1":
		ps.p.KeyDirection = 1
	default:
		ps.fail(o.Line, o.Name, "direction %q is not 0 or 1", s)
	}
}

func cipherName(o Option, s string, ps *parser) bool {
	if s == "" || len(s) > 64 {
		ps.fail(o.Line, o.Name, "empty or overlong algorithm name")
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '[' || c == ']') {
			ps.fail(o.Line, o.Name, "%q is not an algorithm name", s)
			return false
		}
	}
	return true
}

func validFingerprint(f string) bool {
	parts := strings.Split(f, ":")
	if len(parts) != 32 {
		return false
	}
	for _, h := range parts {
		if len(h) != 2 {
			return false
		}
		if _, err := strconv.ParseUint(h, 16, 8); err != nil {
			return false
		}
	}
	return true
}

func (ps *parser) remote(o Option) {
	if !ps.nargs(o, 1, 3) {
		return
	}
	a := o.Args
	if !validHost(a[0]) {
		ps.fail(o.Line, o.Name, "%q is not a host name or address", a[0])
		return
	}
	r := Remote{Host: a[0]}
	if len(a) >= 2 {
		if !ps.port(o, a[1]) {
			return
		}
		r.Port = a[1]
	}
	if len(a) == 3 {
		if !ps.proto(o, a[2]) {
			return
		}
		r.Proto = a[2]
	}
	if ps.conn != nil {
		if ps.conn.Remote.Host != "" {
			ps.fail(o.Line, o.Name, "appears twice in one <connection> block")
			return
		}
		ps.conn.Remote = r
		ps.p.Remotes = append(ps.p.Remotes, r)
		ps.origin = append(ps.origin, len(ps.p.Connections))
		return
	}
	ps.p.Remotes = append(ps.p.Remotes, r)
	ps.origin = append(ps.origin, -1)
}

func (ps *parser) setenv(o Option) {
	if !ps.nargs(o, 1, 2) {
		return
	}
	name, val := o.Args[0], ""
	if len(o.Args) == 2 {
		val = o.Args[1]
	}
	if name == "opt" {
		ps.fail(o.Line, o.Name, "opt needs an option name")
		return
	}
	ps.p.Setenv[name] = val
	switch {
	case name == "FORWARD_COMPATIBLE", name == "PUSH_PEER_INFO", name == "CLIENT_CERT",
		name == "GENERIC_CONFIG", strings.HasPrefix(name, "UV_"), strings.HasPrefix(name, "IV_"):
		// Access Server profiles: peer-info hints and profile-type
		// markers, no warning. GENERIC_CONFIG (a legacy server-locked
		// profile) is judged by the configuration manager's Validate.
	default:
		ps.warn(o.Line, o.Name, "%s ignored: environment variables are only used by scripts", name)
	}
}

func (ps *parser) netOption(o Option) {
	words := make([]string, 0, len(o.Args)+1)
	words = append(words, o.Name)
	for _, a := range o.Args {
		if strings.ContainsRune(a, ',') {
			ps.fail(o.Line, o.Name, "argument %q contains a comma", a)
			return
		}
		words = append(words, quote(a))
	}
	line := strings.Join(words, " ")
	r, err := push.Parse("PUSH_REPLY,"+line, push.Filter{})
	if err != nil {
		msg := err.Error()
		if i := strings.LastIndex(msg, ": "); i >= 0 {
			msg = msg[i+2:]
		}
		ps.fail(o.Line, o.Name, "%s", msg)
		return
	}
	// What the push parser skips (an unknown "dns" sub-option) is said.
	for _, w := range r.Warnings {
		ps.warn(o.Line, o.Name, "%s", w)
	}
	if o.Name == "dhcp-option" && len(o.Args) > 0 && !linuxDHCPOptions[strings.ToUpper(o.Args[0])] {
		ps.warn(o.Line, o.Name, "%s ignored: Windows-only DHCP option, no effect on Linux", o.Args[0])
	}
	ps.p.NetOptions = append(ps.p.NetOptions, line)
}

// linuxDHCPOptions are the dhcp-option kinds that configure DNS here; the
// rest (WINS, NBT, DISABLE-NBT, NTP, PROXY_*, …) only mean something to
// the Windows TAP/DHCP stack.
var linuxDHCPOptions = map[string]bool{
	"DNS": true, "DNS6": true, "DOMAIN": true, "ADAPTER_DOMAIN_SUFFIX": true, "DOMAIN-SEARCH": true,
}

// finish resolves defaults and checks the profile as a whole.
func (ps *parser) finish() {
	p := ps.p
	if ps.global.proto != "" {
		p.Proto = ps.global.proto
	} else {
		p.Proto = DefaultProto
	}
	if ps.global.port != "" {
		p.Port = ps.global.port
	} else {
		p.Port = DefaultPort
	}
	// Remotes inherit port and proto from their <connection> block, then
	// from the global options (OpenVPN applies global values to blocks
	// regardless of position; close enough for real profiles).
	for i := range p.Remotes {
		r := &p.Remotes[i]
		if k := ps.origin[i]; k >= 0 {
			if r.Port == "" {
				r.Port = ps.connDef[k][0]
			}
			if r.Proto == "" {
				r.Proto = ps.connDef[k][1]
			}
		}
		if r.Port == "" {
			r.Port = p.Port
		}
		if r.Proto == "" {
			r.Proto = p.Proto
		}
		if k := ps.origin[i]; k >= 0 {
			p.Connections[k].Remote = *r
		}
	}

	for name, line := range ps.inlineWant {
		if !ps.inlineHave[name] {
			ps.fail(line, name, "says [inline] but there is no <%s> block", name)
		}
	}
	if ps.lexFailed {
		return
	}
	if !ps.client && !(ps.pull && ps.tlsClient) {
		ps.gap(KindNotClient, "", "not a client profile: it needs 'client' (or 'pull' and 'tls-client')")
	}
	if len(p.Remotes) == 0 {
		ps.gap(KindNoRemote, "", "no server: add a 'remote host [port] [proto]' line")
	}
	if p.Dev == "" && !ps.seen["dev"] {
		ps.gap(KindNoDev, "", "no 'dev' option: add 'dev tun'")
	} else if p.Dev != "" && !strings.HasPrefix(p.Dev, "tun") && p.DevType != "tun" {
		ps.gap(KindDevType, "dev", "%q: the device type cannot be guessed from the name; add 'dev-type tun'", p.Dev)
	}
	if p.CA == "" && len(p.PeerFingerprints) == 0 && p.PKCS12 == "" && !ps.seen["ca"] && !ps.seen["peer-fingerprint"] && !ps.seen["pkcs12"] {
		ps.gap(KindNoCA, "", "no CA certificate: add an inline <ca> block (or peer-fingerprint)")
	}
	if p.Cert != "" && p.Key == "" && !ps.seen["key"] {
		ps.gap(KindCertWithoutKey, "", "<cert> without <key>: the client certificate needs its private key")
	}
	if p.Key != "" && p.Cert == "" && !ps.seen["cert"] {
		ps.gap(KindKeyWithoutCert, "", "<key> without <cert>: the private key needs its client certificate")
	}
	if p.Cert == "" && p.PKCS12 == "" && !p.AuthUserPass && !ps.seen["cert"] && !ps.seen["pkcs12"] {
		ps.gap(KindNoAuth, "", "no way to authenticate: add <cert> and <key> (or <pkcs12>), or auth-user-pass")
	}
	if p.StaticChallenge != nil && !p.AuthUserPass {
		ps.gap(KindChallengeWithoutAuth, "static-challenge", "needs auth-user-pass")
	}
	if p.TLSAuth == "" && p.KeyDirection >= 0 && p.TLSCrypt == "" && p.TLSCryptV2 == "" {
		// key-direction without tls-auth is harmless; OpenVPN accepts it.
		ps.warn(0, "key-direction", "has no effect without tls-auth")
	}
}

// Clone returns a deep copy (profiles are shared between goroutines by
// the configuration manager).
func (p *Profile) Clone() *Profile {
	c := *p
	c.Options = cloneOptions(p.Options)
	c.Remotes = slices.Clone(p.Remotes)
	c.Connections = make([]Connection, len(p.Connections))
	for i, cn := range p.Connections {
		c.Connections[i] = Connection{Line: cn.Line, Remote: cn.Remote, Options: cloneOptions(cn.Options)}
	}
	c.PeerFingerprints = slices.Clone(p.PeerFingerprints)
	c.DataCiphers = slices.Clone(p.DataCiphers)
	c.RemoteCertKU = slices.Clone(p.RemoteCertKU)
	c.PullFilters = slices.Clone(p.PullFilters)
	c.NetOptions = slices.Clone(p.NetOptions)
	if p.StaticChallenge != nil {
		sc := *p.StaticChallenge
		c.StaticChallenge = &sc
	}
	if p.HTTPProxy != nil {
		hp := *p.HTTPProxy
		hp.Options = slices.Clone(p.HTTPProxy.Options)
		c.HTTPProxy = &hp
	}
	c.Setenv = maps.Clone(p.Setenv)
	c.ASMeta = maps.Clone(p.ASMeta)
	c.Warnings = slices.Clone(p.Warnings)
	return &c
}

func cloneOptions(in []Option) []Option {
	out := make([]Option, len(in))
	for i, o := range in {
		o.Args = slices.Clone(o.Args)
		out[i] = o
	}
	return out
}
