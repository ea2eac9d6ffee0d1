package engine

import (
	"errors"
	"strings"
	"testing"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/ctlmsg"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/push"
)

// A push reply the client cannot use restarts the connection (the
// reconnect policy decides), except refused compression, which ends the
// session: retrying cannot help.
func TestPushReplyFailures(t *testing.T) {
	for _, tc := range []struct {
		body  string
		fatal bool
	}{
		{"PUSH_REPLY,route 10.0.0.0 255.0.0.1,ifconfig 10.8.0.2 255.255.255.0", false},
		{"PUSH_REPLY,topology star", false},
		{"PUSH_REPLY,push-continuation 9", false},
		{"PUSH_REPLY,compress lz4-v2", true},
	} {
		r := newTimerRig(t, false)
		err := r.a.handleMessage(r.k0, ctlmsg.Message{Kind: ctlmsg.PushReply, Body: tc.body})
		if err == nil {
			t.Errorf("%q accepted", tc.body)
			continue
		}
		s, isFatal := fatalState(err)
		if isFatal != tc.fatal || (isFatal && s != StateFailed) {
			t.Errorf("%q: %v (fatal %v), want fatal %v", tc.body, err, isFatal, tc.fatal)
		}
		if tc.fatal && !errors.Is(err, push.ErrCompressionRefused) {
			t.Errorf("%q: %v does not say compression was refused", tc.body, err)
		}
		if !strings.Contains(err.Error(), "PUSH_REPLY") {
			t.Errorf("%q: %v does not name the push reply", tc.body, err)
		}
	}
}
