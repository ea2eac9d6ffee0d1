package tray

import (
	"context"
	"testing"

	"github.com/ovpn3go/ovpn3go/app/tray/notify"
	"github.com/ovpn3go/ovpn3go/helper/api"
)

func st(minor api.StatusMinor, msg string) api.Status {
	return api.Status{Major: api.StatusMajorConnection, Minor: minor, Message: msg}
}

// TestNotificationDedup: a reconnect loop notifies once, each session's
// bubble replaces its previous one, a drop is critical, switching
// notifications off sends nothing.
func TestNotificationDedup(t *testing.T) {
	ctx := context.Background()
	rec := &recSender{}
	on := true
	n := &Notifier{Sender: rec, Enabled: func() bool { return on }}
	seq := []api.StatusMinor{
		api.StatusMinorConnConnecting, api.StatusMinorConnConnected, api.StatusMinorConnConnected,
		api.StatusMinorConnReconnecting, api.StatusMinorConnConnecting, api.StatusMinorConnReconnecting,
		api.StatusMinorConnConnecting, api.StatusMinorConnReconnecting, api.StatusMinorConnConnected,
	}
	sent := 0
	for _, m := range seq {
		if n.Status(ctx, "/s/a", "alpha", st(m, "")) {
			sent++
		}
	}
	msgs := rec.all()
	if sent != 3 || len(msgs) != 3 {
		t.Fatalf("%d notifications for a reconnect loop, want 3 (connected, dropped, connected): %+v", len(msgs), msgs)
	}
	if msgs[0].Body != "Connected" || msgs[0].Urgency != notify.UrgencyNormal || msgs[0].Replaces != 0 {
		t.Errorf("first %+v", msgs[0])
	}
	if msgs[1].Urgency != notify.UrgencyCritical || msgs[1].Replaces != 1 || msgs[1].Summary != "alpha" {
		t.Errorf("drop %+v, want critical replacing 1", msgs[1])
	}
	if msgs[2].Body != "Connected" || msgs[2].Replaces != 1 {
		t.Errorf("reconnected %+v", msgs[2])
	}
	// another session is its own bubble
	n.Status(ctx, "/s/b", "beta", st(api.StatusMinorConnConnected, ""))
	if m := rec.all()[3]; m.Replaces != 0 || m.Summary != "beta" {
		t.Errorf("second session %+v", m)
	}
	// failure after having been connected is critical and carries the reason
	n.Status(ctx, "/s/b", "beta", st(api.StatusMinorConnFailed, "TLS version too low"))
	if m := rec.all()[4]; m.Urgency != notify.UrgencyCritical || m.Body != "Connection failed: TLS version too low" {
		t.Errorf("failure %+v", m)
	}
	// web sign-in carries an action and the URL is found by the id
	n.Status(ctx, "/s/c", "gamma", api.Status{Major: api.StatusMajorSession, Minor: api.StatusMinorSessAuthURL, Message: "https://sso.example/x"})
	m := rec.all()[5]
	if m.Actions[ActionOpenURL] == "" {
		t.Errorf("web auth without action: %+v", m)
	}
	if u, ok := n.URLFor(6); !ok || u != "https://sso.example/x" {
		t.Errorf("URLFor = %q %v", u, ok)
	}
	// switched off: nothing, and switching on again does not replay
	on = false
	before := len(rec.all())
	n.Status(ctx, "/s/a", "alpha", st(api.StatusMinorConnPaused, ""))
	if len(rec.all()) != before {
		t.Error("notified while switched off")
	}
	on = true
	n.Status(ctx, "/s/a", "alpha", st(api.StatusMinorConnPaused, ""))
	if len(rec.all()) != before {
		t.Error("the muted status was sent after switching on")
	}
	// a forgotten session starts afresh
	n.Forget("/s/a")
	n.Status(ctx, "/s/a", "alpha", st(api.StatusMinorConnConnected, ""))
	if m := rec.all()[len(rec.all())-1]; m.Replaces != 0 || m.Urgency != notify.UrgencyNormal {
		t.Errorf("after Forget %+v", m)
	}
	// a failing sender does not count as sent and is retried on the next change
	rec.err = errBoom
	if n.Status(ctx, "/s/z", "zeta", st(api.StatusMinorConnConnected, "")) {
		t.Error("reported sent although the server failed")
	}
}
