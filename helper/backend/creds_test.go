package backend

import (
	"testing"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
)

// When the engine stops because one-time credentials would have to be
// sent again, the static-challenge answer (and with auth-nocache the
// typed username and password) is asked for again: CFG_REQUIRE_USER, and
// the next credentials carry the new answer.
func TestCredentialsNeededAsksAgain(t *testing.T) {
	for _, noCache := range []bool{false, true} {
		p := &profile.Profile{AuthUserPass: true, AuthNoCache: noCache,
			StaticChallenge: &profile.StaticChallenge{Text: "OTP", Format: "scrv1"}}
		b := quietBackend(p)
		q := b.inputs
		for id, v := range []string{"user", "pass"} {
			if err := q.provide(1, uint32(api.AttentionGroupUserPassword), uint32(id), v); err != nil {
				t.Fatal(err)
			}
		}
		if err := q.provide(1, uint32(api.AttentionGroupChallengeStatic), 0, "111111"); err != nil {
			t.Fatal(err)
		}
		if c := q.credentials(); c.ChallengeResponse != "111111" || q.pending() {
			t.Fatalf("setup: %+v pending %v", c, q.pending())
		}
		b.credentialsNeeded()
		if b.status.Minor != api.StatusMinorCfgRequireUser || b.status.Message != credentialsNeeded {
			t.Errorf("auth-nocache %v: status %s, want CFG_REQUIRE_USER %q", noCache, b.status, credentialsNeeded)
		}
		if got := q.check(1, uint32(api.AttentionGroupChallengeStatic)); len(got) != 1 {
			t.Errorf("nocache %v: static challenge not asked again: %v", noCache, got)
		}
		up := q.check(1, uint32(api.AttentionGroupUserPassword))
		if noCache && len(up) != 2 || !noCache && len(up) != 0 {
			t.Errorf("nocache %v: username/password slots asked again: %v", noCache, up)
		}
		if c := q.credentials(); c.ChallengeResponse != "" {
			t.Errorf("nocache %v: the used answer is still there", noCache)
		}
		_ = q.provide(1, uint32(api.AttentionGroupChallengeStatic), 0, "222222")
		if c := q.credentials(); c.ChallengeResponse != "222222" {
			t.Errorf("nocache %v: new answer not used: %+v", noCache, c)
		}
	}
}
