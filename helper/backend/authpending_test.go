package backend

import (
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/engine"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
)

func quietBackend(p *profile.Profile) *Backend {
	b := &Backend{opts: Options{Logger: slog.New(slog.DiscardHandler)}, log: slog.New(slog.DiscardHandler), logLevel: 3,
		prof: p}
	b.inputs = newInputQueue(p, false)
	return b
}

// The Backend's events value must be what the engine looks for.
var _ engine.AuthEvents = events{}

// WEB_AUTH/OPEN_URL: SESS_AUTH_URL with the URL, Ready says "Pending web
// authentication" until the status moves on; non-http(s) URLs are ignored.
func TestAuthPendingWebAuth(t *testing.T) {
	b := quietBackend(&profile.Profile{})
	ev := events{b}
	ev.AuthPending("WEB_AUTH", "https://sso.example/login?s=1", "hidden")
	if b.status != (api.Status{Major: api.StatusMajorSession, Minor: api.StatusMinorSessAuthURL, Message: "https://sso.example/login?s=1"}) {
		t.Errorf("status after WEB_AUTH: %s", b.status)
	}
	if err := b.ready(); !api.IsDomain(err, api.DomainReady) || api.ErrorText(err) != textPendingWebAuth {
		t.Errorf("Ready during web auth: %v", err)
	}
	if len(b.inputs.typeGroups()) != 0 {
		t.Errorf("web auth queued a slot: %v", b.inputs.typeGroups())
	}
	ev.State(engine.StateConnected, "")
	if err := b.ready(); err != nil {
		t.Errorf("Ready once connected: %v", err)
	}
	for _, bad := range []string{"file:///etc/shadow", "javascript:alert(1)", "https://", "https://a.example/\nx", "ftp://a.example/"} {
		b.setStatus(api.StatusMajorConnection, api.StatusMinorConnConnecting, "")
		ev.AuthPending("OPEN_URL", bad, "")
		if b.status.Minor == api.StatusMinorSessAuthURL {
			t.Errorf("URL %q surfaced", bad)
		}
	}
}

// CR_TEXT: a hidden CHALLENGE_AUTH_PENDING slot "auth_pending" announced
// with CFG_REQUIRE_USER <text>; it goes when the handshake ends.
func TestAuthPendingCRText(t *testing.T) {
	b := quietBackend(&profile.Profile{})
	ev := events{b}
	ev.AuthPending("CR_TEXT", "", "Enter the code")
	if got := b.inputs.typeGroups(); !slices.Equal(got, []typeGroup{{1, 6}}) {
		t.Fatalf("typeGroups = %v", got)
	}
	s, err := b.inputs.fetch(1, 6, 0)
	if err != nil || s.name != slotAuthPending || s.description != "Enter the code" || !s.hidden {
		t.Fatalf("slot %+v, %v", s, err)
	}
	if b.status.Minor != api.StatusMinorCfgRequireUser || b.status.Message != "Enter the code" {
		t.Errorf("status %s", b.status)
	}
	if err := b.ready(); !api.IsDomain(err, api.DomainReady) {
		t.Errorf("Ready with the challenge unanswered: %v", err)
	}
	// No engine running: the answer cannot go anywhere.
	if err := b.provideInput(1, 6, 0, "4242"); err == nil || !strings.Contains(api.ErrorText(err), "not waiting") {
		t.Errorf("provide without a connection: %v", err)
	}
	if len(b.inputs.typeGroups()) != 0 {
		t.Errorf("slot kept after a failed delivery: %v", b.inputs.typeGroups())
	}
	ev.AuthPending("CR_TEXT", "", "Again")
	ev.State(engine.StateWaitingForServer, "authentication pending")
	if len(b.inputs.typeGroups()) != 1 {
		t.Error("waiting for the server dropped the challenge")
	}
	ev.State(engine.StateReconnecting, "x")
	if len(b.inputs.typeGroups()) != 0 {
		t.Error("the challenge outlived its handshake")
	}
}

// HTTP proxy "auto" and "stdin" get slots whose values are the engine's
// ProxyCredentials; inline credentials need none.
func TestProxyCredentialSlots(t *testing.T) {
	for _, auth := range []string{"auto", "auto-nct", "stdin"} {
		q := newInputQueue(&profile.Profile{HTTPProxy: &profile.HTTPProxy{Host: "p", Port: "8080", AuthFile: auth}}, false)
		if got := q.typeGroups(); !slices.Equal(got, []typeGroup{{1, 2}}) {
			t.Fatalf("%s: typeGroups %v", auth, got)
		}
		_ = q.provide(1, 2, 0, "pxuser")
		_ = q.provide(1, 2, 1, "px pass")
		if c := q.proxyCredentials(); c.Username != "pxuser" || c.Password != "px pass" {
			t.Errorf("%s: proxy credentials %+v", auth, c)
		}
	}
	q := newInputQueue(&profile.Profile{HTTPProxy: &profile.HTTPProxy{Host: "p", Port: "8080", AuthFile: "[inline]", UserPass: "a\nb\n"}}, false)
	if !q.empty() {
		t.Error("inline proxy credentials asked for")
	}
}

// A proxy that refuses the credentials: with proxy slots they are asked
// for again and the session stays; without (inline credentials) it is
// CONN_FAILED.
func TestProxyAuthFailed(t *testing.T) {
	const detail = "connect 198.18.0.1:1194/tcp via http-proxy 127.0.0.1:3128: http proxy 127.0.0.1:3128: http proxy: authentication required (credentials refused)"
	b := quietBackend(&profile.Profile{HTTPProxy: &profile.HTTPProxy{Host: "127.0.0.1", Port: "3128", AuthFile: "auto"}})
	_ = b.inputs.provide(1, 2, 0, "u")
	_ = b.inputs.provide(1, 2, 1, "p")
	events{b}.State(engine.StateFailed, detail)
	if b.status.Minor != api.StatusMinorCfgRequireUser || b.status.Message != "HTTP proxy credentials" || !b.proxyRetry {
		t.Errorf("status %s, retry %v", b.status, b.proxyRetry)
	}
	if got := b.inputs.check(1, 2); len(got) != 2 {
		t.Errorf("proxy slots not asked again: %v", got)
	}
	b = quietBackend(&profile.Profile{HTTPProxy: &profile.HTTPProxy{Host: "127.0.0.1", Port: "3128", AuthFile: "[inline]", UserPass: "u\np\n"}})
	events{b}.State(engine.StateFailed, detail)
	if b.status.Minor != api.StatusMinorConnFailed || b.proxyRetry {
		t.Errorf("inline credentials refused: status %s, retry %v", b.status, b.proxyRetry)
	}
}
