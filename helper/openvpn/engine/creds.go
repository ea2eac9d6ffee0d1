package engine

import "github.com/ovpn3go/ovpn3go/helper/openvpn/ctlmsg"

// Credentials that must not be sent twice. A static-challenge answer or a
// CRV1 answer is usually a one-time password, and auth-nocache asks that
// the password not be kept: such credentials go to the server once. When
// a later key-method 2 exchange needs them again (a reconnect, or a
// renegotiation) and the server gave no auth-token to use instead, the
// engine stops with StateCredentialsNeeded so the user is asked again
// (the backend queues the input, CFG_REQUIRE_USER).

// useCredentials puts the user's credentials into m, or fails with
// StateCredentialsNeeded when they were one-time and already sent.
func (a *attempt) useCredentials(m *ctlmsg.KeyMethod2) error {
	if a.o.oneTimeCreds && a.c.credsSent.Load() {
		return fatal(StateCredentialsNeeded,
			"the server needs the credentials again and they may be sent only once (%s) with no auth-token from the server: enter them again", a.o.oneTimeWhy())
	}
	m.Username = a.o.creds.Username
	m.Password = a.o.password()
	a.c.credsSent.Store(true)
	if a.o.noCache {
		a.o.creds.Password, a.o.creds.ChallengeResponse = "", ""
	}
	return nil
}

func (o *options) oneTimeWhy() string {
	switch {
	case o.noCache:
		return "auth-nocache"
	case o.creds.ChallengeResponse != "":
		return "static-challenge answer"
	}
	return "dynamic-challenge answer"
}
