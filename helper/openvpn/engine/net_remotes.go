package engine

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/transport"
)

// Connection policy (what a user of the session sees):
//
//   - The remote list is the profile's top-level "remote" lines and
//     <connection> blocks in order (shuffled once per Run with
//     remote-random). Each entry carries its own proto, port,
//     server-poll-timeout, http-proxy, lport/nobind, tun-mtu and mssfix;
//     a <connection> block inherits the global value of anything it does
//     not set.
//   - One try of an entry resolves its host and tries every address in
//     resolver order (both families unless the proto forces one). Each
//     address gets server-poll-timeout (default 120 s) to answer.
//   - Between tries the engine waits connect-retry seconds (default 1),
//     doubling after five tries per remote, capped at the connect-retry
//     max argument (default 300 s), like OpenVPN 2.6.
//   - Before the first successful connection a server that never answers
//     is a failure with a reason: after connect-retry-max passes over the
//     list when that is set, otherwise after one pass — a user who started
//     a session wants to hear "no response from server" rather than wait
//     forever.
//   - A server that answered but whose handshake failed (a certificate
//     that does not verify, a TLS error, a push reply that cannot be
//     used) is retried without end, like OpenVPN, with the reason in the
//     state (Reconnecting): the server or the clock may be fixed without
//     the user doing anything. connect-retry-max bounds it when set.
//   - Once connected, a lost connection is retried without end (state
//     Reconnecting) — a laptop that lost its network comes back by itself —
//     unless connect-retry-max is set, which then bounds the passes. The
//     remote that was working is tried again first, then the others.
//   - resolv-retry n keeps retrying a name that does not resolve for up to
//     n seconds within one try ("infinite": up to server-poll-timeout);
//     without it a failed lookup fails that try at once.
type connEntry struct {
	remote      profile.Remote
	pollTimeout time.Duration
	proxy       *transport.HTTPProxy // nil: connect directly
	lport       int                  // 0: ephemeral local port
	tunMTU      int
	mssfix      int // with mssfixSet: 0 turns clamping off
	mssfixMTU   bool
	mssfixSet   bool // mssfix given; otherwise the transport's default
}

// retryPolicy is the global part of the connection policy.
type retryPolicy struct {
	retry       time.Duration // connect-retry n
	retryMax    time.Duration // connect-retry n max
	maxPasses   int           // connect-retry-max; 0 = unlimited once connected, 1 before
	resolvRetry time.Duration // -1: infinite (bounded by the entry's poll timeout)
	random      bool
}

// Defaults for the link options below. server-poll-timeout follows
// OpenVPN 3 Core (10 s), whose stack we stand in for, not OpenVPN 2's
// 120 s: a desktop user waiting on a server that never answers should hear
// why within seconds, and the remote list then moves on. mssfix is 2.6's.
const (
	defaultServerPoll = 10 * time.Second
	defaultMssfix     = 1492
)

// connSettings is the option subset that may differ per <connection>.
type connSettings struct {
	pollTimeout time.Duration
	proxyArgs   []string
	lport       int
	nobind      bool
	tunMTU      int
	mssfix      int
	mssfixMTU   bool
	mssfixSet   bool
}

// apply reads the per-connection options of one option list (the
// profile's top level or one block) over s. The parser has already
// checked their syntax; anything unparsable here is still an error.
func (s *connSettings) apply(opts []profile.Option) error {
	for _, o := range opts {
		a := o.Args
		num := func(i int) (int, error) {
			if i >= len(a) {
				return 0, fmt.Errorf("line %d: option '%s' needs an argument", o.Line, o.Name)
			}
			n, err := strconv.Atoi(a[i])
			if err != nil || n < 0 {
				return 0, fmt.Errorf("line %d: option '%s': %q is not a non-negative number", o.Line, o.Name, a[i])
			}
			return n, nil
		}
		switch o.Name {
		case "server-poll-timeout", "connect-timeout":
			n, err := num(0)
			if err != nil {
				return err
			}
			s.pollTimeout = time.Duration(n) * time.Second
		case "http-proxy":
			s.proxyArgs = a
		case "lport":
			n, err := num(0)
			if err != nil {
				return err
			}
			s.lport = n
		case "nobind":
			s.nobind = true
		case "tun-mtu":
			n, err := num(0)
			if err != nil {
				return err
			}
			s.tunMTU = n
		case "mssfix":
			s.mssfixSet, s.mssfix, s.mssfixMTU = true, defaultMssfix, true
			if len(a) >= 1 {
				n, err := num(0)
				if err != nil {
					return err
				}
				s.mssfix, s.mssfixMTU = n, len(a) >= 2 && a[1] == "mtu"
			}
		}
	}
	return nil
}

// buildRemoteList turns the profile into the ordered remote list and the
// retry policy. proxyCreds answers an http-proxy with auth "auto".
func buildRemoteList(p *profile.Profile, proxyCreds Credentials) ([]connEntry, retryPolicy, error) {
	pol := retryPolicy{
		retry:     time.Duration(p.ConnectRetry) * time.Second,
		retryMax:  time.Duration(p.ConnectRetryMaxDelay) * time.Second,
		maxPasses: p.ConnectRetryMax,
		random:    p.RemoteRandom,
	}
	if pol.retryMax <= 0 {
		pol.retryMax = profile.DefaultConnectRetryMax * time.Second
	}
	for _, o := range p.Options {
		if o.Name == "resolv-retry" && len(o.Args) == 1 {
			if o.Args[0] == "infinite" {
				pol.resolvRetry = -1
			} else if n, err := strconv.Atoi(o.Args[0]); err == nil && n > 0 {
				pol.resolvRetry = time.Duration(n) * time.Second
			}
		}
	}

	global := connSettings{pollTimeout: defaultServerPoll, tunMTU: 1500}
	if err := global.apply(p.Options); err != nil {
		return nil, pol, err
	}
	blockOf := make(map[int]*profile.Connection) // index into p.Remotes -> block
	if len(p.Connections) > 0 {
		// p.Remotes lists the block remotes too, in file order; match
		// them by value in order.
		next := 0
		for i := range p.Remotes {
			if next < len(p.Connections) && p.Remotes[i] == p.Connections[next].Remote {
				blockOf[i] = &p.Connections[next]
				next++
			}
		}
	}
	var list []connEntry
	for i, r := range p.Remotes {
		s := global
		if b := blockOf[i]; b != nil {
			if err := s.apply(b.Options); err != nil {
				return nil, pol, err
			}
		}
		if _, err := normalizeProto(r.Proto); err != nil {
			return nil, pol, fmt.Errorf("remote %s: %w", r.Host, err)
		}
		e := connEntry{remote: r, pollTimeout: s.pollTimeout, tunMTU: s.tunMTU, mssfix: s.mssfix, mssfixMTU: s.mssfixMTU, mssfixSet: s.mssfixSet}
		if e.pollTimeout <= 0 {
			e.pollTimeout = defaultServerPoll
		}
		if !s.nobind {
			e.lport = s.lport
		}
		if len(s.proxyArgs) > 0 {
			px, err := proxyFromArgs(s.proxyArgs, p.HTTPProxy, proxyCreds)
			if err != nil {
				return nil, pol, err
			}
			if !strings.HasPrefix(strings.ToLower(r.Proto), "tcp") {
				return nil, pol, fmt.Errorf("remote %s: http-proxy needs proto tcp-client, not %q", r.Host, r.Proto)
			}
			e.proxy = px
		}
		list = append(list, e)
	}
	if len(list) == 0 {
		return nil, pol, errors.New("no remote")
	}
	return list, pol, nil
}

// proxyFromArgs builds the proxy of "http-proxy host port [auth] [method]";
// the inline <http-proxy-user-pass> block is global.
func proxyFromArgs(a []string, global *profile.HTTPProxy, creds Credentials) (*transport.HTTPProxy, error) {
	if len(a) < 2 {
		return nil, errors.New("http-proxy needs a host and a port")
	}
	px := &transport.HTTPProxy{Host: a[0], Port: a[1], Version: "1.1", Agent: "ovpn3go"}
	if global != nil {
		for _, o := range global.Options {
			if err := px.Option(o); err != nil {
				return nil, err
			}
		}
	}
	auth, method := "", ""
	if len(a) >= 3 {
		auth = a[2]
	}
	if len(a) >= 4 {
		method = strings.ToLower(a[3])
	}
	if method != "" && method != "basic" && method != "none" {
		return nil, fmt.Errorf("http-proxy authentication method %q is not supported (use basic)", a[3])
	}
	if method == "none" {
		return px, nil
	}
	switch auth {
	case "":
	case "[inline]":
		if global == nil || global.UserPass == "" {
			return nil, errors.New("http-proxy says [inline] but there is no <http-proxy-user-pass> block")
		}
		lines := strings.Split(strings.ReplaceAll(strings.TrimRight(global.UserPass, "\r\n"), "\r\n", "\n"), "\n")
		if len(lines) != 2 {
			return nil, errors.New("<http-proxy-user-pass> must hold a username line and a password line")
		}
		px.User, px.Pass = lines[0], lines[1]
	case "auto", "auto-nct", "stdin":
		px.User, px.Pass = creds.Username, creds.Password
		px.AuthOnDemand = auth != "stdin"
		if px.User == "" && auth == "stdin" {
			return nil, errors.New("http-proxy credentials are needed (auth stdin) but none were given")
		}
	default:
		return nil, fmt.Errorf("http-proxy credentials file %q: only inline credentials are supported", auth)
	}
	return px, nil
}

// order returns the remote list for one Run: shuffled with remote-random.
func (pol retryPolicy) order(list []connEntry, rng *rand.Rand) []connEntry {
	out := append([]connEntry(nil), list...)
	if pol.random && len(out) > 1 {
		rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	}
	return out
}

// delay is the pause before the next try after `failed` consecutive
// failed tries over a list of n entries: connect-retry, doubled for every
// pass beyond the fifth try per remote, capped at the max.
func (pol retryPolicy) delay(failed, n int) time.Duration {
	if failed <= 0 {
		return 0
	}
	d := max(pol.retry, 0)
	if n < 1 {
		n = 1
	}
	if extra := failed/n - 4; extra > 0 {
		d = max(d, time.Second) << min(extra, 15)
	}
	return min(d, pol.retryMax)
}
