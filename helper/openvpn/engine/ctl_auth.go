package engine

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/ctlmsg"
)

// AuthEvents is an optional extension of Events: when the Events value
// given in Config also implements it, the engine reports a pending
// authentication the user has to act on (AUTH_PENDING with INFO_PRE or
// INFO from the server):
//
//   - method "WEB_AUTH" or "OPEN_URL": url is the page to open (flags such
//     as "hidden" or "proxy=…" of WEB_AUTH are in text);
//   - method "CR_TEXT": text is the challenge; the answer goes back with
//     (*Client).ProvideCRResponse while the session waits;
//   - method "": text is plain information from the server.
//
// Calls come from the engine's goroutine and must not block for long. The
// session keeps waiting (state WaitingForServer) until the server accepts,
// refuses or the pending timeout it announced expires.
type AuthEvents interface {
	AuthPending(method, url, text string)
}

// ssoMethods is IV_SSO: the AUTH_PENDING methods the engine surfaces.
const ssoMethods = "webauth,openurl,crtext"

// defaultTempBackoff is the pause after AUTH_FAILED,TEMP without a backoff.
const defaultTempBackoff = 10 * time.Second

// sessionState is what outlives one connection attempt: the pushed
// auth-token (used instead of the password on renegotiation and reconnect)
// and the channel a CR_TEXT answer arrives on.
type sessionState struct {
	mu        sync.Mutex
	token     string
	tokenUser string
	crPending bool
	crAnswer  chan string // cap 1
}

func (s *sessionState) init() {
	s.mu.Lock()
	if s.crAnswer == nil {
		s.crAnswer = make(chan string, 1)
	}
	s.mu.Unlock()
}

func (s *sessionState) authToken() (user, token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokenUser, s.token
}

func (s *sessionState) setToken(user, token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if token != "" {
		s.token = token
	}
	if user != "" {
		s.tokenUser = user
	}
}

func (s *sessionState) dropToken() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.token, s.tokenUser = "", ""
}

// ErrNoChallenge is returned by ProvideCRResponse when the server is not
// waiting for a CR_TEXT answer.
var ErrNoChallenge = errors.New("no challenge (CR_TEXT) is pending")

// ProvideCRResponse answers the CR_TEXT challenge the engine reported
// through AuthEvents.AuthPending; the engine sends it to the server as
// CR_RESPONSE. Safe to call from any goroutine.
func (c *Client) ProvideCRResponse(response string) error {
	s := &c.sess
	s.init()
	s.mu.Lock()
	pending := s.crPending
	s.crPending = false
	s.mu.Unlock()
	if !pending {
		return ErrNoChallenge
	}
	select {
	case s.crAnswer <- response:
		return nil
	default:
		return errors.New("a challenge response is already queued")
	}
}

// retryError ends a connection attempt that should be tried again after a
// pause: AUTH_FAILED,TEMP, or a rejected auth-token (then with the real
// credentials at once, on the same server). advance is AUTH_FAILED,TEMP's
// flag: "no" tries the same server again, "addr" (the default, as in
// OpenVPN) the next address, "remote" the next remote.
type retryError struct {
	after   time.Duration
	advance string
	err     error
}

func (e *retryError) Error() string { return e.err.Error() }
func (e *retryError) Unwrap() error { return e.err }

// run runs connection attempts to one server address until one ends for
// a reason other than retryError. a itself is the first attempt.
func (a *attempt) run(ctx context.Context) error {
	cur := a
	for {
		err := cur.runOnce(ctx)
		a.connected = a.connected || cur.connected
		a.heard = a.heard || cur.heard
		var re *retryError
		if !errors.As(err, &re) || ctx.Err() != nil {
			return err
		}
		a.log.Warn("retrying", "after", re.after, "reason", re.err, "advance", re.advance)
		if re.after > 0 {
			a.c.setState(StateReconnecting, fmt.Sprintf("%v; retrying in %s", re.err, fmtDuration(re.after)))
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(re.after):
			}
		}
		if re.advance != "no" {
			// The caller moves on to the next address or remote.
			return &advanceError{nextRemote: re.advance == "remote", err: re.err}
		}
		cur = newAttempt(a.c, a.dp, a.ep)
	}
}

// authFailed handles AUTH_FAILED: a refused auth-token is dropped and the
// attempt repeated with the real credentials; TEMP waits and repeats; the
// rest is fatal (the text, e.g. a CRV1 challenge, goes to the caller).
func (a *attempt) authFailed(body string) error {
	f, err := ctlmsg.ParseAuthFailed(body)
	if err != nil {
		a.log.Debug("unparsable AUTH_FAILED", "err", err)
		f = ctlmsg.AuthFailure{Reason: body}
	}
	if a.sentToken {
		// The server no longer takes the token (expired, server restarted):
		// forget it and log in with the real credentials.
		a.c.sess.dropToken()
		return &retryError{advance: "no", err: fmt.Errorf("auth-token refused (%s); using the credentials again", f.Reason)}
	}
	if f.Temp {
		after := time.Duration(f.Backoff) * time.Second
		if after <= 0 {
			after = defaultTempBackoff
		}
		adv := f.Advance
		if adv == "" {
			adv = "addr"
		}
		return &retryError{after: after, advance: adv, err: fmt.Errorf("temporary authentication failure: %s", f.Reason)}
	}
	text := body
	if text == "" {
		text = "authentication failed"
	}
	return fatal(StateAuthFailed, "%s", text)
}

// authPending handles AUTH_PENDING: the handshake may take as long as the
// server says (bounded by the session), and the user is told.
func (a *attempt) authPending(body string) {
	timeout, err := ctlmsg.ParseAuthPending(body)
	if err != nil {
		a.log.Debug("AUTH_PENDING", "err", err)
	}
	a.s.AuthPending(timeout)
	a.authPendingSeen = true
	a.c.setState(StateWaitingForServer, "authentication pending")
}

// pendingInfo surfaces INFO_PRE/INFO while (or before) auth is pending.
func (a *attempt) pendingInfo(body string) {
	info := ctlmsg.ParseInfo(body)
	ae, ok := a.c.cfg.Events.(AuthEvents)
	var url, text string
	switch info.Method {
	case "WEB_AUTH":
		url, text = info.Value, info.Flags
	case "OPEN_URL":
		url = info.Value
	case "CR_TEXT":
		text = info.Value
		a.c.sess.mu.Lock()
		a.c.sess.crPending = true
		a.c.sess.mu.Unlock()
	default:
		text = info.Value
	}
	a.log.Info("server info", "method", info.Method, "url", url, "text", text)
	if ok {
		ae.AuthPending(info.Method, url, text)
	}
}

// advanceError ends the tries of one address after AUTH_FAILED,TEMP (the
// pause is over): the server answered, so it does not count against the
// connect-retry limits; the next address is tried, or with nextRemote the
// next remote.
type advanceError struct {
	nextRemote bool
	err        error
}

func (e *advanceError) Error() string { return e.err.Error() }
func (e *advanceError) Unwrap() error { return e.err }

// restartError is the server's RESTART: reconnect, to the next remote if
// it said [N].
type restartError struct {
	nextRemote bool
	err        error
}

func (e *restartError) Error() string { return e.err.Error() }
func (e *restartError) Unwrap() error { return e.err }

// updateToken takes a renewed auth-token (and auth-token-user) from a
// PUSH_REPLY that arrives after the connection is up.
func (a *attempt) updateToken(body string) {
	var user, token string
	for opt := range strings.SplitSeq(body, ",") {
		f := strings.Fields(opt)
		if len(f) != 2 {
			continue
		}
		switch f[0] {
		case "auth-token":
			token = f[1]
		case "auth-token-user":
			if u, err := base64.StdEncoding.DecodeString(f[1]); err == nil && !strings.ContainsAny(string(u), "\x00\n") {
				user = string(u)
			}
		}
	}
	if token != "" || user != "" {
		a.log.Debug("auth-token renewed")
		a.c.sess.setToken(user, token)
	}
}

// restartAdvances reports whether a connection ended with the server's
// RESTART,[N]: the next try should go to the next remote rather than
// start over from the first.
func restartAdvances(err error) bool {
	var re *restartError
	return errors.As(err, &re) && re.nextRemote
}
