package backend

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/ctlmsg"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/engine"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
)

// Slot names (the "name" field front-ends such as openvpn3-autoload answer
// by) of spec §6.5.
const (
	slotUsername        = "username"
	slotPassword        = "password"
	slotStatic          = "static_challenge"
	slotPKPassphrase    = "pk_passphrase"
	slotProxyUser       = "http_proxy_user"
	slotProxyPass       = "http_proxy_pass"
	slotDynamic         = "dynamic_challenge"
	slotDynamicCookie   = "dynamic_challenge_cookie"
	slotAuthPending     = "auth_pending"
	credentialsNeeded   = "Username/password credentials needed"
	dynamicChallengeMsg = "Dynamic Challenge"
)

// slot is one piece of user input the backend waits for (spec §6.5).
type slot struct {
	typ, group, id    uint32
	name, description string
	hidden, provided  bool
	value             string
}

// inputQueue is the RequiresQueue of one backend: typed slots for what the
// profile or the server asks of the user, filled through UserInputProvide.
// Values are secrets: they are never logged.
type inputQueue struct {
	mu    sync.Mutex
	slots []*slot
	// inline credentials from the profile stand in for missing slots.
	inline engine.Credentials
	// staticFormat is the profile's static-challenge format ("scrv1" or
	// "concat"), "" without a static challenge.
	staticFormat string
	// challenge is the server's pending CRV1 dynamic challenge.
	challenge *ctlmsg.Challenge
}

// request is one (type, group) the queue asks for, with the texts of
// AttentionRequired and StatusChange(CFG_REQUIRE_USER) that announce it.
type request struct {
	group            api.AttentionGroup
	attention, state string
}

// newInputQueue creates the slots a profile needs before Connect;
// keyLocked says the private key needs a passphrase (the engine decides,
// for PEM and PKCS#12 alike).
func newInputQueue(p *profile.Profile, keyLocked bool) *inputQueue {
	q := &inputQueue{}
	if p == nil {
		return q
	}
	cred, pk, proxy := uint32(api.AttentionTypeCredentials), uint32(api.AttentionGroupPKPassphrase), uint32(api.AttentionGroupHTTPProxyCreds)
	up := uint32(api.AttentionGroupUserPassword)
	if p.AuthUserPass {
		q.inline = engine.Credentials{Username: p.AuthUsername, Password: p.AuthPassword}
		if p.AuthUsername == "" {
			q.add(cred, up, slotUsername, "Auth User name", false)
		}
		if p.AuthPassword == "" {
			q.add(cred, up, slotPassword, "Auth Password", true)
		}
		if sc := p.StaticChallenge; sc != nil {
			q.staticFormat = sc.Format
			q.add(cred, uint32(api.AttentionGroupChallengeStatic), slotStatic, sc.Text, !sc.Echo)
		}
	}
	if keyLocked {
		q.add(cred, pk, slotPKPassphrase, "Private key passphrase", true)
	}
	// "auto"/"auto-nct": the engine presents them after the proxy's 407;
	// "stdin": with the first CONNECT (it cannot start without them).
	if hp := p.HTTPProxy; hp != nil && (hp.AuthFile == "auto" || hp.AuthFile == "auto-nct" || hp.AuthFile == "stdin") && hp.UserPass == "" {
		q.add(cred, proxy, slotProxyUser, "HTTP proxy username", false)
		q.add(cred, proxy, slotProxyPass, "HTTP proxy password", true)
	}
	return q
}

// add appends a slot; ids count from 0 within each (type, group).
func (q *inputQueue) add(typ, group uint32, name, description string, hidden bool) *slot {
	id := uint32(0)
	for _, s := range q.slots {
		if s.typ == typ && s.group == group {
			id++
		}
	}
	s := &slot{typ: typ, group: group, id: id, name: name, description: description, hidden: hidden}
	q.slots = append(q.slots, s)
	return s
}

// requests lists the groups with unprovided slots, in the order upstream
// announces them. The static challenge travels with username/password.
func (q *inputQueue) requests() []request {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []request
	seen := map[api.AttentionGroup]bool{}
	for _, s := range q.slots {
		g := api.AttentionGroup(s.group)
		if g == api.AttentionGroupChallengeStatic {
			g = api.AttentionGroupUserPassword
		}
		if s.provided || seen[g] {
			continue
		}
		seen[g] = true
		switch g {
		case api.AttentionGroupUserPassword:
			out = append(out, request{g, credentialsNeeded, credentialsNeeded})
		case api.AttentionGroupPKPassphrase:
			out = append(out, request{g, "Private key passphrase needed", "Private key passphrase needed to connect"})
		case api.AttentionGroupHTTPProxyCreds:
			out = append(out, request{g, "", "HTTP proxy credentials"})
		case api.AttentionGroupChallengeDynamic:
			out = append(out, request{g, s.description, dynamicChallengeMsg})
		case api.AttentionGroupChallengeAuthPending:
			out = append(out, request{g, s.description, s.description})
		}
	}
	return out
}

// setChallenge queues the server's CRV1 challenge: a slot for the answer
// and an already provided hidden slot holding the state cookie, as
// upstream. Username and password stay as they are.
func (q *inputQueue) setChallenge(c *ctlmsg.Challenge) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.dropDynamic()
	q.challenge = c
	t, g := uint32(api.AttentionTypeCredentials), uint32(api.AttentionGroupChallengeDynamic)
	q.add(t, g, slotDynamic, c.Text, !c.Echo)
	cookie := q.add(t, g, slotDynamicCookie, "Dynamic challenge cookie", true)
	cookie.provided, cookie.value = true, "CRV1::"+c.StateID+"::"
}

func (q *inputQueue) dropDynamic() {
	q.challenge = nil
	q.slots = slices.DeleteFunc(q.slots, func(s *slot) bool {
		return s.group == uint32(api.AttentionGroupChallengeDynamic)
	})
}

// setAuthPending queues the slot for the answer to the server's CR_TEXT
// challenge (AUTH_PENDING), replacing an earlier one: spec §6.5 puts it
// in CHALLENGE_AUTH_PENDING, not CHALLENGE_DYNAMIC, because it is answered
// during the running handshake (the value goes straight to the server),
// while a CRV1 dynamic challenge is answered by a new Connect.
func (q *inputQueue) setAuthPending(text string, hidden bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.dropAuthPendingLocked()
	q.add(uint32(api.AttentionTypeCredentials), uint32(api.AttentionGroupChallengeAuthPending), slotAuthPending, text, hidden)
}

// dropAuthPending removes the CR_TEXT slot: its answer belongs to one
// handshake, and once that is over (connected, failed, reconnecting) the
// server no longer waits for it.
func (q *inputQueue) dropAuthPending() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.dropAuthPendingLocked()
}

func (q *inputQueue) dropAuthPendingLocked() {
	q.slots = slices.DeleteFunc(q.slots, func(s *slot) bool {
		return s.group == uint32(api.AttentionGroupChallengeAuthPending)
	})
}

// unprovide empties a slot again (an answer that could not be delivered).
func (q *inputQueue) unprovide(typ, group, id uint32) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if s := q.find(typ, group, id); s != nil {
		s.provided, s.value = false, ""
	}
}

// slotName is the name of slot (typ, group, id), "" if there is none.
func (q *inputQueue) slotName(typ, group, id uint32) string {
	q.mu.Lock()
	defer q.mu.Unlock()
	if s := q.find(typ, group, id); s != nil {
		return s.name
	}
	return ""
}

// proxyCredentials are the HTTP proxy credentials the user provided.
func (q *inputQueue) proxyCredentials() engine.Credentials {
	q.mu.Lock()
	defer q.mu.Unlock()
	return engine.Credentials{Username: q.valueLocked(slotProxyUser), Password: q.valueLocked(slotProxyPass)}
}

// reset asks for the credentials again (after an authentication failure);
// a pending dynamic or CR_TEXT challenge is dropped.
func (q *inputQueue) reset() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.dropDynamic()
	q.dropAuthPendingLocked()
	for _, s := range q.slots {
		switch s.name {
		case slotUsername, slotPassword, slotStatic:
			s.provided, s.value = false, ""
		}
	}
}

func (q *inputQueue) pending() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, s := range q.slots {
		if !s.provided {
			return true
		}
	}
	return false
}

// empty: the profile needs no user input at all.
func (q *inputQueue) empty() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.slots) == 0
}

type typeGroup struct{ Type, Group uint32 }

func (q *inputQueue) typeGroups() []typeGroup {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := []typeGroup{}
	for _, s := range q.slots {
		tg := typeGroup{s.typ, s.group}
		if !s.provided && !slices.Contains(out, tg) {
			out = append(out, tg)
		}
	}
	return out
}

func (q *inputQueue) check(typ, group uint32) []uint32 {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := []uint32{}
	for _, s := range q.slots {
		if s.typ == typ && s.group == group && !s.provided {
			out = append(out, s.id)
		}
	}
	return out
}

func (q *inputQueue) find(typ, group, id uint32) *slot {
	for _, s := range q.slots {
		if s.typ == typ && s.group == group && s.id == id {
			return s
		}
	}
	return nil
}

func (q *inputQueue) fetch(typ, group, id uint32) (slot, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	s := q.find(typ, group, id)
	switch {
	case s == nil:
		return slot{}, api.Error(api.DomainRequest, "net.openvpn.v3.element-not-found: No requires queue element found")
	case s.provided:
		return slot{}, api.Error(api.DomainRequest, "net.openvpn.v3.already-provided: User input already provided")
	}
	out := *s
	out.value = ""
	return out, nil
}

func (q *inputQueue) provide(typ, group, id uint32, value string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.slots) == 0 {
		return api.Error(api.DomainRequest, "User input not required")
	}
	s := q.find(typ, group, id)
	value = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, value)
	switch {
	case s == nil:
		return api.Error(api.DomainRequest, "net.openvpn.v3.invalid-input: No matching entry found in the request queue")
	case s.provided:
		return api.Error(api.DomainRequest, fmt.Sprintf("net.openvpn.v3.error.input-already-provided: Request ID %d has already been provided", id))
	case value == "":
		return api.Error(api.DomainRequest, fmt.Sprintf("net.openvpn.v3.error.invalid-input: No value provided for RequiresSlot ID %d", id))
	}
	s.value, s.provided = value, true
	return nil
}

func (q *inputQueue) valueLocked(name string) string {
	for _, s := range q.slots {
		if s.name == name && s.provided {
			return s.value
		}
	}
	return ""
}

// credentials builds what the engine needs: the answer to a pending
// dynamic challenge ("CRV1::<state>::<answer>" with the challenge's
// username) or username, password and static-challenge response, and the
// private-key passphrase.
func (q *inputQueue) credentials() engine.Credentials {
	q.mu.Lock()
	defer q.mu.Unlock()
	c := q.inline
	if v := q.valueLocked(slotUsername); v != "" {
		c.Username = v
	}
	if v := q.valueLocked(slotPassword); v != "" {
		c.Password = v
	}
	if ch := q.challenge; ch != nil {
		if ch.Username != "" {
			c.Username = ch.Username
		}
		c.Password = ch.Response(q.valueLocked(slotDynamic))
		c.KeyPassphrase = q.valueLocked(slotPKPassphrase)
		return c
	}
	// The engine combines password and static-challenge response as
	// the profile says (SCRV1 or concat).
	if q.staticFormat != "" {
		c.ChallengeResponse = q.valueLocked(slotStatic)
	}
	c.KeyPassphrase = q.valueLocked(slotPKPassphrase)
	return c
}

// askAgain empties the slots whose values may be sent only once: the
// static-challenge answer, and with auth-nocache the username and
// password the user typed (inline ones stay in the profile anyway).
func (q *inputQueue) askAgain(noCache bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, s := range q.slots {
		if s.name == slotStatic || (noCache && (s.name == slotUsername || s.name == slotPassword)) {
			s.provided, s.value = false, ""
		}
	}
}

// resetProxy asks for the HTTP proxy credentials again; false when the
// profile has no proxy slots (its credentials are inline).
func (q *inputQueue) resetProxy() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	found := false
	for _, s := range q.slots {
		if s.group == uint32(api.AttentionGroupHTTPProxyCreds) {
			s.provided, s.value = false, ""
			found = true
		}
	}
	return found
}

// resetPassphrase asks for the private-key passphrase again.
func (q *inputQueue) resetPassphrase() {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, s := range q.slots {
		if s.name == slotPKPassphrase {
			s.provided, s.value = false, ""
		}
	}
}

// challengeUsed drops a dynamic challenge once its answer went to the
// server: the next attempt starts from the plain credentials again.
func (q *inputQueue) challengeUsed() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.challenge != nil {
		q.dropDynamic()
	}
}
