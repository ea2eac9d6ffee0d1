package backend

import (
	"errors"
	"net/url"
	"strings"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/engine"
)

// textPendingWebAuth is Ready's error while the server waits for the user
// to finish web authentication (spec §2.6, run state SESS_AUTH_URL).
const textPendingWebAuth = "Pending web authentication"

// AuthPending implements engine.AuthEvents: the server holds the handshake
// (AUTH_PENDING) until the user acts (spec §6.5).
//
//   - WEB_AUTH / OPEN_URL: no slot; StatusChange(SESSION, SESS_AUTH_URL,
//     <url>) and AttentionRequired(CREDENTIALS, OPEN_URL, <url>); Ready
//     fails with "Pending web authentication" until the status moves on.
//   - CR_TEXT: a CHALLENGE_AUTH_PENDING slot "auth_pending" whose value
//     goes to the server at once (UserInputProvide, no Connect).
//   - plain INFO: logged.
func (e events) AuthPending(method, link, text string) {
	b := e.b
	text = strings.TrimSpace(sanitize(text))
	switch method {
	case "WEB_AUTH", "OPEN_URL":
		u, ok := webAuthURL(link)
		if !ok {
			// Front-ends hand the URL to a browser: a server must not make
			// them open file:, javascript: or other local schemes.
			b.log.Warn("server asked to open a URL that is not http(s); ignored", "method", method)
			return
		}
		b.log.Info("web authentication required", "method", method, "url", u)
		b.setStatus(api.StatusMajorSession, api.StatusMinorSessAuthURL, u)
		b.attention(api.AttentionTypeCredentials, api.AttentionGroupOpenURL, u)
	case "CR_TEXT":
		if text == "" {
			text = "Challenge"
		}
		// The engine does not pass CR_TEXT's flags; without the E (echo)
		// flag the answer is treated as a secret, which is the safe side.
		b.queue().setAuthPending(text, true)
		b.log.Info("server asks a challenge during authentication")
		b.announceInput()
	default:
		if text != "" {
			b.log.Info("server info: " + text)
		}
	}
}

// webAuthURL checks a server-sent URL: absolute http or https with a
// host, no control characters. It returns the URL as the server wrote it.
func webAuthURL(s string) (string, bool) {
	if s == "" || s != sanitize(s) || strings.ContainsAny(s, " ") {
		return "", false
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (!strings.EqualFold(u.Scheme, "https") && !strings.EqualFold(u.Scheme, "http")) {
		return "", false
	}
	return s, true
}

// provideInput fills a user-input slot; the answer to a CR_TEXT challenge
// is sent to the server at once. If the server no longer waits for it,
// the slot is dropped and the caller told.
func (b *Backend) provideInput(typ, group, id uint32, value string) error {
	q := b.queue()
	if err := q.provide(typ, group, id, value); err != nil {
		return err
	}
	if q.slotName(typ, group, id) != slotAuthPending {
		return nil
	}
	q.mu.Lock()
	answer := q.valueLocked(slotAuthPending) // control characters filtered
	q.mu.Unlock()
	b.mu.Lock()
	client := b.client
	b.mu.Unlock()
	err := errors.New("no connection is running")
	if client != nil {
		err = client.ProvideCRResponse(answer)
	}
	if err != nil {
		if errors.Is(err, engine.ErrNoChallenge) || client == nil {
			q.dropAuthPending()
		} else {
			q.unprovide(typ, group, id)
		}
		b.log.Warn("challenge answer not sent", "err", err)
		return api.Error(api.DomainRequest, "net.openvpn.v3.error.invalid-input: The server is not waiting for this answer: "+err.Error())
	}
	b.log.Info("challenge answer sent to the server")
	return nil
}

// webAuthPendingLocked: the run state is SESS_AUTH_URL.
func (b *Backend) webAuthPendingLocked() bool {
	return b.status.Major == api.StatusMajorSession && b.status.Minor == api.StatusMinorSessAuthURL
}

// proxyAuthText is how the engine's error reads when the HTTP proxy
// answered 407 to our credentials or their absence (the engine does not
// export the error value).
const proxyAuthText = "http proxy: authentication required"

// proxyAuthFailed handles an engine failure caused by the HTTP proxy's
// authentication: when the credentials came from the user-input queue,
// they are asked for again (CFG_REQUIRE_USER "HTTP proxy credentials", as
// upstream's PROXY_NEED_CREDS) and the session stays.
func (b *Backend) proxyAuthFailed(detail string) bool {
	if !strings.Contains(detail, proxyAuthText) || !b.queue().resetProxy() {
		return false
	}
	b.mu.Lock()
	b.proxyRetry = true
	b.mu.Unlock()
	b.log.Warn("the HTTP proxy refused the credentials", "detail", detail)
	b.announceInput()
	return true
}
