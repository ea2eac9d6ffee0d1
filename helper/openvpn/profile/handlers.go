package profile

import (
	"encoding/base64"
	"slices"
	"strconv"
	"strings"
)

// A handler checks one option's arguments and fills the Profile (or the
// parser's state). It reports problems with ps.fail, naming the line.
type handler func(ps *parser, o Option)

// flag is a handler for an option without arguments.
func flag(set func(ps *parser)) handler {
	return func(ps *parser, o Option) {
		if ps.nargs(o, 0, 0) {
			set(ps)
		}
	}
}

// number is a handler for "name N" with N in lo..hi.
func number(lo, hi int, set func(p *Profile, n int)) handler {
	return func(ps *parser, o Option) {
		if !ps.nargs(o, 1, 1) {
			return
		}
		if n, ok := ps.intArg(o, o.Args[0], lo, hi); ok {
			set(ps.p, n)
		}
	}
}

// seconds is number for timers: 0..2^24 seconds.
func seconds(set func(p *Profile, n int)) handler { return number(0, 1<<24, set) }

// count64 is a handler for "name N" with N a non-negative 64-bit count.
func count64(set func(p *Profile, n int64)) handler {
	return func(ps *parser, o Option) {
		if !ps.nargs(o, 1, 1) {
			return
		}
		n, err := strconv.ParseInt(o.Args[0], 10, 64)
		if err != nil || n < 0 {
			ps.fail(o.Line, o.Name, "value %q is not a non-negative number", o.Args[0])
			return
		}
		set(ps.p, n)
	}
}

// choice is a handler for "name V" with V one of allowed.
func choice(set func(p *Profile, v string), allowed ...string) handler {
	return func(ps *parser, o Option) {
		if ps.nargs(o, 1, 1) && ps.oneOf(o, o.Args[0], allowed...) {
			set(ps.p, o.Args[0])
		}
	}
}

// word is a handler for "name V" with any single V.
func word(set func(p *Profile, v string)) handler {
	return func(ps *parser, o Option) {
		if ps.nargs(o, 1, 1) {
			set(ps.p, o.Args[0])
		}
	}
}

// algorithm is a handler for "name ALG" (stored upper-case).
func algorithm(set func(p *Profile, v string)) handler {
	return func(ps *parser, o Option) {
		if ps.nargs(o, 1, 1) && cipherName(o, o.Args[0], ps) {
			set(ps.p, strings.ToUpper(o.Args[0]))
		}
	}
}

// pemMaterial is a handler for an inline block holding PEM of the given
// types.
func pemMaterial(set func(p *Profile, content string), want ...string) handler {
	return func(ps *parser, o Option) {
		if !o.Inline && !ps.nargs(o, 1, 1) {
			return
		}
		if content, ok := ps.material(o); ok && ps.pemBlock(o, content, want...) {
			set(ps.p, content)
		}
	}
}

func hMode(ps *parser, o Option) {
	if ps.nargs(o, 1, 1) && o.Args[0] != "p2p" {
		if o.Args[0] == "server" {
			ps.fail(o.Line, o.Name, "is not supported: %s", whyServer)
		} else {
			ps.fail(o.Line, o.Name, "value %q is not p2p", o.Args[0])
		}
	}
}

func hKeyMethod(ps *parser, o Option) {
	if ps.nargs(o, 1, 1) && o.Args[0] != "2" {
		ps.fail(o.Line, o.Name, "is not supported: only key-method 2 exists since OpenVPN 2.5")
	}
}

func hDev(ps *parser, o Option) {
	if !ps.nargs(o, 1, 1) {
		return
	}
	a := o.Args
	switch {
	case strings.HasPrefix(a[0], "tap"):
		ps.fail(o.Line, o.Name, "is not supported: %s", whyTAP)
	case a[0] == "null":
		ps.fail(o.Line, o.Name, "is not supported: 'dev null' has no tunnel")
	default:
		// A name not starting with "tun" needs dev-type (checked in finish).
		ps.p.Dev = a[0]
	}
}

func hDevType(ps *parser, o Option) {
	if !ps.nargs(o, 1, 1) {
		return
	}
	switch o.Args[0] {
	case "tun":
		ps.p.DevType = "tun"
	case "tap":
		ps.fail(o.Line, o.Name, "is not supported: %s", whyTAP)
	default:
		ps.fail(o.Line, o.Name, "value %q is not tun", o.Args[0])
	}
}

func hProto(ps *parser, o Option) {
	if ps.nargs(o, 1, 1) && ps.proto(o, o.Args[0]) {
		if ps.conn != nil {
			ps.connProto = o.Args[0]
		} else {
			ps.global.proto = o.Args[0]
		}
	}
}

func hPort(ps *parser, o Option) {
	if ps.nargs(o, 1, 1) && ps.port(o, o.Args[0]) {
		if ps.conn != nil {
			ps.connPort = o.Args[0]
		} else {
			ps.global.port = o.Args[0]
		}
	}
}

func hConnection(ps *parser, o Option) {
	ps.fail(o.Line, o.Name, "must be a <connection> … </connection> block")
}

func hCRLVerify(ps *parser, o Option) {
	if !o.Inline && !ps.nargs(o, 1, 2) {
		return
	}
	if !o.Inline && len(o.Args) == 2 {
		ps.fail(o.Line, o.Name, "is not supported: CRL directories cannot be part of an imported profile")
		return
	}
	if content, ok := ps.material(o); ok && ps.pemBlock(o, content, "X509 CRL") {
		ps.p.CRLVerify = content
	}
}

func hPKCS12(ps *parser, o Option) {
	if !o.Inline && !ps.nargs(o, 1, 1) {
		return
	}
	content, ok := ps.material(o)
	if !ok {
		return
	}
	clean := strings.Join(strings.Fields(content), "")
	if _, err := base64.StdEncoding.DecodeString(clean); err != nil || clean == "" {
		ps.fail(o.Line, o.Name, "inline block is not base64-encoded PKCS#12 data")
		return
	}
	ps.p.PKCS12 = content
}

func hPeerFingerprint(ps *parser, o Option) {
	var fps []string
	if o.Inline {
		ps.inlineHave[o.Name] = true
		for l := range strings.SplitSeq(o.Args[0], "\n") {
			l = strings.TrimSpace(l)
			if l != "" && l[0] != '#' && l[0] != ';' {
				fps = append(fps, l)
			}
		}
	} else {
		if !ps.nargs(o, 1, 1) {
			return
		}
		if o.Args[0] == "[inline]" {
			ps.material(o)
			return
		}
		fps = []string{o.Args[0]}
	}
	for _, f := range fps {
		if !validFingerprint(f) {
			ps.fail(o.Line, o.Name, "%q is not a SHA-256 fingerprint (32 hex bytes separated by ':')", f)
			return
		}
		ps.p.PeerFingerprints = append(ps.p.PeerFingerprints, strings.ToUpper(f))
	}
}

func hTLSKey(ps *parser, o Option) {
	p := ps.p
	if o.Inline {
		content, _ := ps.material(o)
		switch o.Name {
		case "tls-auth":
			if ps.staticKey(o, content, "OpenVPN Static key V1") {
				ps.tlsKey(o, &p.TLSAuth, content)
			}
		case "tls-crypt":
			if ps.staticKey(o, content, "OpenVPN Static key V1") {
				ps.tlsKey(o, &p.TLSCrypt, content)
			}
		default:
			if strings.Contains(content, "tls-crypt-v2 server key") {
				ps.fail(o.Line, o.Name, "holds a tls-crypt-v2 server key; a client needs its own client key")
				return
			}
			if ps.staticKey(o, content, "OpenVPN tls-crypt-v2 client key") {
				ps.tlsKey(o, &p.TLSCryptV2, content)
			}
		}
		return
	}
	max := 1
	if o.Name == "tls-auth" {
		max = 2
	}
	if o.Name == "tls-crypt-v2" {
		max = 2 // "force-cookie"/"allow-noncookie" are server flags; tolerate
	}
	if !ps.nargs(o, 1, max) {
		return
	}
	ps.material(o)
	if o.Name == "tls-auth" && len(o.Args) == 2 && o.Args[0] == "[inline]" {
		ps.keyDirection(o, o.Args[1])
	}
}

func hKeyDirection(ps *parser, o Option) {
	if ps.nargs(o, 1, 1) {
		ps.keyDirection(o, o.Args[0])
	}
}

func hDataCiphers(ps *parser, o Option) {
	if !ps.nargs(o, 1, 1) {
		return
	}
	var list []string
	for c := range strings.SplitSeq(o.Args[0], ":") {
		c = strings.TrimPrefix(c, "?") // optional cipher (2.6)
		if !cipherName(o, c, ps) {
			return
		}
		list = append(list, strings.ToUpper(c))
	}
	ps.p.DataCiphers = list
}

func hAuthUserPass(ps *parser, o Option) {
	p := ps.p
	a := o.Args
	p.AuthUserPass = true
	if o.Inline {
		ps.inlineHave[o.Name] = true
		ls := strings.Split(strings.TrimRight(a[0], "\n"), "\n")
		if len(ls) > 2 || ls[0] == "" {
			ps.fail(o.Line, o.Name, "inline block must hold a username line and optionally a password line")
			return
		}
		p.AuthUsername = ls[0]
		if len(ls) == 2 {
			p.AuthPassword = ls[1]
		}
		return
	}
	if !ps.nargs(o, 0, 1) {
		return
	}
	if len(a) == 1 {
		switch a[0] {
		case "[inline]":
			ps.material(o)
		case "stdin":
		default:
			ps.warn(o.Line, o.Name, "file %q is not read; the username and password will be asked for", a[0])
		}
	}
}

func hStaticChallenge(ps *parser, o Option) {
	a := o.Args
	if !ps.nargs(o, 2, 3) || !ps.oneOf(o, a[1], "0", "1") {
		return
	}
	sc := &StaticChallenge{Text: a[0], Echo: a[1] == "1", Format: "scrv1"}
	if len(a) == 3 {
		if !ps.oneOf(o, a[2], "scrv1", "concat") {
			return
		}
		sc.Format = a[2]
	}
	ps.p.StaticChallenge = sc
}

func hRemoteCertTLS(ps *parser, o Option) {
	if !ps.nargs(o, 1, 1) {
		return
	}
	if o.Args[0] == "client" {
		ps.fail(o.Line, o.Name, "value 'client' makes a client profile refuse every server; use 'server'")
		return
	}
	if ps.oneOf(o, o.Args[0], "server") {
		ps.p.RemoteCertTLS = o.Args[0]
	}
}

func hRemoteCertKU(ps *parser, o Option) {
	if !ps.nargs(o, 0, 8) {
		return
	}
	for _, ku := range o.Args {
		if _, err := strconv.ParseUint(ku, 16, 16); err != nil {
			ps.fail(o.Line, o.Name, "%q is not a hex key usage", ku)
			return
		}
	}
	ps.p.RemoteCertKU = slices.Clone(o.Args)
}

func hVerifyX509Name(ps *parser, o Option) {
	a := o.Args
	if !ps.nargs(o, 1, 2) {
		return
	}
	typ := "subject"
	if len(a) == 2 {
		if !ps.oneOf(o, a[1], "subject", "name", "name-prefix") {
			return
		}
		typ = a[1]
	}
	ps.p.VerifyX509Name, ps.p.VerifyX509Type = a[0], typ
}

var tlsVersions = []string{"1.0", "1.1", "1.2", "1.3"}

func hTLSVersionMin(ps *parser, o Option) {
	a := o.Args
	if !ps.nargs(o, 1, 2) || !ps.oneOf(o, a[0], tlsVersions...) {
		return
	}
	ps.p.TLSVersionMin = a[0]
	if len(a) == 2 {
		if !ps.oneOf(o, a[1], "or-highest") {
			return
		}
		ps.p.TLSVersionMinOrHighest = true
	}
}

func hPullFilter(ps *parser, o Option) {
	a := o.Args
	if !ps.nargs(o, 2, 2) || !ps.oneOf(o, a[0], "accept", "ignore", "reject") {
		return
	}
	ps.p.PullFilters = append(ps.p.PullFilters, PullFilter{Action: a[0], Text: a[1]})
}

func hCompLZO(ps *parser, o Option) {
	if !ps.nargs(o, 0, 1) {
		return
	}
	v := "adaptive"
	if len(o.Args) == 1 {
		if !ps.oneOf(o, o.Args[0], "yes", "no", "adaptive") {
			return
		}
		v = o.Args[0]
	}
	if v != "no" {
		ps.warn(o.Line, o.Name, "%q: %s", v, whyNoCompress)
	}
	ps.p.CompLZO = v
}

func hCompress(ps *parser, o Option) {
	if !ps.nargs(o, 0, 1) {
		return
	}
	v := "stub"
	if len(o.Args) == 1 {
		if o.Args[0] == "migrate" {
			ps.fail(o.Line, o.Name, "is not supported: 'compress migrate' is a server option")
			return
		}
		if !ps.oneOf(o, o.Args[0], "stub", "stub-v2", "lz4", "lz4-v2", "lzo") {
			return
		}
		v = o.Args[0]
	}
	if v != "stub" && v != "stub-v2" {
		ps.warn(o.Line, o.Name, "%q: %s", v, whyNoCompress)
	}
	ps.p.Compress = v
}

func hExplicitExitNotify(ps *parser, o Option) {
	if !ps.nargs(o, 0, 1) {
		return
	}
	n := 1
	if len(o.Args) == 1 {
		var ok bool
		if n, ok = ps.intArg(o, o.Args[0], 0, 100); !ok {
			return
		}
	}
	ps.p.ExplicitExitNotify = n
}

func hMssfix(ps *parser, o Option) {
	a := o.Args
	if !ps.nargs(o, 0, 2) {
		return
	}
	if len(a) >= 1 {
		if n, ok := ps.intArg(o, a[0], 0, 65535); ok {
			ps.p.Mssfix = n
		}
	}
	if len(a) == 2 {
		ps.oneOf(o, a[1], "mtu", "fixed")
	}
}

func hKeepalive(ps *parser, o Option) {
	if !ps.nargs(o, 2, 2) {
		return
	}
	n, ok1 := ps.intArg(o, o.Args[0], 1, 1<<24)
	m, ok2 := ps.intArg(o, o.Args[1], 1, 1<<24)
	if ok1 && ok2 {
		if m < 2*n {
			ps.fail(o.Line, o.Name, "restart interval %d must be at least twice the ping interval %d", m, n)
			return
		}
		ps.p.Ping, ps.p.PingRestart = n, m
	}
}

func hConnectRetry(ps *parser, o Option) {
	if !ps.nargs(o, 1, 2) {
		return
	}
	if n, ok := ps.intArg(o, o.Args[0], 0, 1<<24); ok {
		ps.p.ConnectRetry = n
	}
	if len(o.Args) == 2 {
		if n, ok := ps.intArg(o, o.Args[1], 0, 1<<24); ok {
			ps.p.ConnectRetryMaxDelay = n
		}
	}
}

func hRenegSec(ps *parser, o Option) {
	if !ps.nargs(o, 1, 2) {
		return
	}
	if n, ok := ps.intArg(o, o.Args[0], 0, 1<<30); ok {
		ps.p.RenegSec, ps.p.RenegSecSet = n, true
	}
	if len(o.Args) == 2 {
		if n, ok := ps.intArg(o, o.Args[1], 0, 1<<30); ok {
			ps.p.RenegSecMin = n
		}
	}
}

func hHTTPProxy(ps *parser, o Option) {
	p := ps.p
	a := o.Args
	if !ps.nargs(o, 2, 4) || !ps.port(o, a[1]) {
		return
	}
	if !validHost(a[0]) {
		ps.fail(o.Line, o.Name, "%q is not a host name or address", a[0])
		return
	}
	hp := &HTTPProxy{Host: a[0], Port: a[1]}
	if p.HTTPProxy != nil {
		hp.UserPass, hp.Options = p.HTTPProxy.UserPass, p.HTTPProxy.Options
	}
	if len(a) >= 3 {
		switch a[2] {
		case "auto", "auto-nct", "[inline]", "stdin":
			hp.AuthFile = a[2]
			if a[2] == "[inline]" {
				ps.material(Option{Name: "http-proxy-user-pass", Args: []string{"[inline]"}, Line: o.Line})
			}
		default:
			ps.fail(o.Line, o.Name, "refers to credentials file %q: an imported profile must be self-contained; use an inline <http-proxy-user-pass> block", a[2])
			return
		}
	}
	if len(a) == 4 {
		if !ps.oneOf(o, a[3], "none", "basic", "ntlm") {
			return
		}
		if a[3] == "ntlm" {
			ps.fail(o.Line, o.Name, "is not supported: NTLM proxy authentication was removed from OpenVPN")
			return
		}
		hp.Method = a[3]
	}
	p.HTTPProxy = hp
}

func hHTTPProxyOption(ps *parser, o Option) {
	if !ps.nargs(o, 1, 2) || !ps.oneOf(o, o.Args[0], "VERSION", "AGENT", "CUSTOM-HEADER") {
		return
	}
	if ps.p.HTTPProxy == nil {
		ps.p.HTTPProxy = &HTTPProxy{}
	}
	ps.p.HTTPProxy.Options = append(ps.p.HTTPProxy.Options, slices.Clone(o.Args))
}

func hHTTPProxyUserPass(ps *parser, o Option) {
	if !o.Inline {
		ps.fail(o.Line, o.Name, "must be an inline <http-proxy-user-pass> block")
		return
	}
	ps.inlineHave[o.Name] = true
	ls := strings.Split(strings.TrimRight(o.Args[0], "\n"), "\n")
	if len(ls) != 2 {
		ps.fail(o.Line, o.Name, "inline block must hold a username line and a password line")
		return
	}
	if ps.p.HTTPProxy == nil {
		ps.p.HTTPProxy = &HTTPProxy{}
	}
	ps.p.HTTPProxy.UserPass = o.Args[0]
}

func hSetenvSafe(ps *parser, o Option) {
	if ps.nargs(o, 1, 2) {
		ps.warn(o.Line, o.Name, "ignored: environment variables are only used by scripts")
	}
}

func hIgnoreUnknown(ps *parser, o Option) {
	// The names were collected before any option was applied (process).
	ps.nargs(o, 1, MaxArgs)
}

func hResolvRetry(ps *parser, o Option) {
	if !ps.nargs(o, 1, 1) || o.Args[0] == "infinite" {
		return
	}
	ps.intArg(o, o.Args[0], 0, 1<<30)
}

func hLport(ps *parser, o Option) {
	if ps.nargs(o, 1, 1) && o.Args[0] != "0" {
		ps.port(o, o.Args[0])
	}
}

// whyNoCompress qualifies a compression algorithm in a profile.
const whyNoCompress = "this client never compresses; only the framing is used, and compressed packets from the server are refused unless allow-compression asym"

func hAllowCompression(ps *parser, o Option) {
	if !ps.nargs(o, 1, 1) || !ps.oneOf(o, o.Args[0], "yes", "no", "asym") {
		return
	}
	if o.Args[0] == "yes" {
		ps.warn(o.Line, o.Name, "'yes' is taken as 'asym': this client never compresses, it only decompresses what the server sends")
	}
	ps.p.AllowCompression = o.Args[0]
}
