package backend

import (
	"encoding/base64"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/ctlmsg"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/engine"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile"
)

func TestStatisticsKeys(t *testing.T) {
	got := statistics(engine.Stats{BytesIn: 1, BytesOut: 2, PacketsIn: 3, TunBytesOut: 7, TunPacketsIn: 8})
	want := map[string]int64{"BYTES_IN": 1, "BYTES_OUT": 2, "PACKETS_IN": 3, "TUN_BYTES_OUT": 7, "TUN_PACKETS_IN": 8}
	if len(got) != len(want) {
		t.Fatalf("statistics = %v, want %v (zero counters left out)", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %d, want %d", k, got[k], v)
		}
	}
}

func TestInputQueue(t *testing.T) {
	q := newInputQueue(&profile.Profile{AuthUserPass: true}, false)
	if !q.pending() {
		t.Fatal("auth-user-pass profile: nothing pending")
	}
	tg := q.typeGroups()
	if len(tg) != 1 || tg[0] != (typeGroup{1, 1}) {
		t.Fatalf("typeGroups = %v", tg)
	}
	if ids := q.check(1, 1); len(ids) != 2 || ids[0] != 0 || ids[1] != 1 {
		t.Fatalf("check = %v", ids)
	}
	s, err := q.fetch(1, 1, 1)
	if err != nil || s.name != "password" || !s.hidden || s.description != "Auth Password" {
		t.Fatalf("fetch password slot = %+v, %v", s, err)
	}
	if err := q.provide(1, 1, 0, ""); err == nil || !strings.Contains(api.ErrorText(err), "No value provided for RequiresSlot ID 0") {
		t.Errorf("empty value: %v", err)
	}
	if err := q.provide(1, 1, 0, "user\n"); err != nil {
		t.Fatal(err)
	}
	if err := q.provide(1, 1, 0, "again"); err == nil || !strings.Contains(api.ErrorText(err), "Request ID 0 has already been provided") {
		t.Errorf("second provide: %v", err)
	}
	if _, err := q.fetch(1, 1, 0); err == nil || !strings.Contains(api.ErrorText(err), "User input already provided") {
		t.Errorf("fetch provided slot: %v", err)
	}
	if err := q.provide(1, 1, 9, "x"); err == nil || !strings.Contains(api.ErrorText(err), "No matching entry") {
		t.Errorf("unknown slot: %v", err)
	}
	if err := q.provide(1, 1, 1, "secret"); err != nil {
		t.Fatal(err)
	}
	if q.pending() {
		t.Error("still pending after both slots were provided")
	}
	if c := q.credentials(); c.Username != "user" || c.Password != "secret" {
		t.Errorf("credentials = %+v (control characters must be dropped)", c)
	}
	q.reset()
	if !q.pending() {
		t.Error("reset left nothing pending")
	}
	if err := newInputQueue(&profile.Profile{}, false).provide(1, 1, 0, "x"); err == nil || api.ErrorText(err) != "User input not required" {
		t.Errorf("provide without a queue: %v", err)
	}
}

func TestLogForwardingRespectsLevel(t *testing.T) {
	b := &Backend{logLevel: 3}
	log := slog.New(newSignalHandler(slog.DiscardHandler, b, api.LogGroupClient)).With("remote", "198.18.0.1")
	log.Info("opened the socket", "try", 1)
	if b.lastLog.message != "Opened the socket (remote 198.18.0.1, try 1)" || b.lastLog.group != uint32(api.LogGroupClient) ||
		b.lastLog.category != uint32(api.LogCategoryInfo) {
		t.Errorf("last log = %+v", b.lastLog)
	}
	log.Debug("details")
	if b.lastLog.message == "Details" {
		t.Error("debug line forwarded at log level 3")
	}
	log.WithGroup("tls").Warn("odd\nline", "alert", 40, "err", "bad record")
	if b.lastLog.message != "Odd line (remote 198.18.0.1, tls.alert 40): bad record" || b.lastLog.category != uint32(api.LogCategoryWarn) {
		t.Errorf("last log = %+v", b.lastLog)
	}
	// A phrased event may say more than its slog level: the attempt's
	// "connecting" is a debug record for the journal, INFO for a person.
	log.With("server", "198.18.0.1:1194/udp").Debug("connecting", "session", "0011")
	if b.lastLog.message != "Connecting to 198.18.0.1:1194 over UDP" || b.lastLog.category != uint32(api.LogCategoryInfo) {
		t.Errorf("last log = %+v", b.lastLog)
	}
}

func TestInputQueueSlotsFromProfile(t *testing.T) {
	p := &profile.Profile{AuthUserPass: true, StaticChallenge: &profile.StaticChallenge{Text: "Enter PIN", Echo: true, Format: "scrv1"},
		Key:       "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
		HTTPProxy: &profile.HTTPProxy{Host: "proxy", Port: "3128", AuthFile: "auto"}}
	q := newInputQueue(p, true)
	want := []typeGroup{{1, 1}, {1, 4}, {1, 3}, {1, 2}}
	if got := q.typeGroups(); !slices.Equal(got, want) {
		t.Fatalf("typeGroups = %v, want %v", got, want)
	}
	reqs := q.requests()
	if len(reqs) != 3 || reqs[0].state != credentialsNeeded || reqs[1].state != "Private key passphrase needed to connect" ||
		reqs[2].state != "HTTP proxy credentials" {
		t.Fatalf("requests = %+v", reqs)
	}
	s, err := q.fetch(1, 4, 0)
	if err != nil || s.name != slotStatic || s.description != "Enter PIN" || s.hidden {
		t.Fatalf("static challenge slot = %+v, %v", s, err)
	}
	if s, _ := q.fetch(1, 2, 1); s.name != slotProxyPass || !s.hidden {
		t.Fatalf("proxy password slot = %+v", s)
	}
	for _, v := range []struct {
		g, id uint32
		val   string
	}{{1, 0, "user"}, {1, 1, "pass"}, {4, 0, "123456"}, {3, 0, "pk"}, {2, 0, "pu"}, {2, 1, "pp"}} {
		if err := q.provide(1, v.g, v.id, v.val); err != nil {
			t.Fatal(err)
		}
	}
	if q.pending() || len(q.requests()) != 0 {
		t.Fatal("still pending")
	}
	c := q.credentials()
	if c.Username != "user" || c.Password != "pass" || c.ChallengeResponse != "123456" || c.KeyPassphrase != "pk" {
		t.Errorf("credentials = %+v", c)
	}
}

func TestInputQueueInlineCredentials(t *testing.T) {
	q := newInputQueue(&profile.Profile{AuthUserPass: true, AuthUsername: "inline"}, false)
	if ids := q.check(1, 1); len(ids) != 1 {
		t.Fatalf("check = %v, want only the password", ids)
	}
	if s, _ := q.fetch(1, 1, 0); s.name != slotPassword {
		t.Fatalf("slot 0 = %+v", s)
	}
	_ = q.provide(1, 1, 0, "pw")
	if c := q.credentials(); c.Username != "inline" || c.Password != "pw" {
		t.Errorf("credentials = %+v", c)
	}
}

func TestInputQueueDynamicChallenge(t *testing.T) {
	q := newInputQueue(&profile.Profile{AuthUserPass: true}, false)
	_ = q.provide(1, 1, 0, "user")
	_ = q.provide(1, 1, 1, "pass")
	f, err := ctlmsg.ParseAuthFailed("CRV1:R,E:c3RhdGU=:" + b64("alice") + ":Enter the code")
	if err != nil || f.Challenge == nil {
		t.Fatalf("ParseAuthFailed: %+v, %v", f, err)
	}
	q.setChallenge(f.Challenge)
	if got := q.typeGroups(); !slices.Equal(got, []typeGroup{{1, 5}}) {
		t.Fatalf("typeGroups = %v", got)
	}
	if r := q.requests(); len(r) != 1 || r[0].attention != "Enter the code" || r[0].state != dynamicChallengeMsg {
		t.Fatalf("requests = %+v", r)
	}
	s, err := q.fetch(1, 5, 0)
	if err != nil || s.name != slotDynamic || s.hidden {
		t.Fatalf("dynamic slot = %+v, %v", s, err)
	}
	if _, err := q.fetch(1, 5, 1); err == nil {
		t.Error("the cookie slot is fetchable")
	}
	_ = q.provide(1, 5, 0, "4242")
	c := q.credentials()
	if c.Username != "alice" || c.Password != "CRV1::c3RhdGU=::4242" {
		t.Errorf("credentials = %+v", c)
	}
	q.challengeUsed()
	if c := q.credentials(); c.Password != "pass" || len(q.typeGroups()) != 0 {
		t.Errorf("after the challenge: %+v, %v", c, q.typeGroups())
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// AUTH_FAILED handling: a CRV1 challenge queues the answer slot and asks
// for input (CFG_REQUIRE_USER "Dynamic Challenge"); anything else is
// CONN_AUTH_FAILED with the server's reason and the credentials are asked
// for again.
func TestAuthFailed(t *testing.T) {
	b := &Backend{opts: Options{Logger: slog.New(slog.DiscardHandler)}, log: slog.New(slog.DiscardHandler), logLevel: 3}
	b.inputs = newInputQueue(&profile.Profile{AuthUserPass: true}, false)
	_ = b.inputs.provide(1, 1, 0, "user")
	_ = b.inputs.provide(1, 1, 1, "pass")
	b.authFailed("CRV1:R:c3RhdGU=:" + b64("alice") + ":Enter the code")
	if b.status.Minor != api.StatusMinorCfgRequireUser || b.status.Message != dynamicChallengeMsg {
		t.Errorf("status after CRV1: %s", b.status)
	}
	if got := b.inputs.typeGroups(); !slices.Equal(got, []typeGroup{{1, 5}}) {
		t.Errorf("slots after CRV1: %v", got)
	}
	if s, _ := b.inputs.fetch(1, 5, 0); !s.hidden || s.description != "Enter the code" {
		t.Errorf("challenge slot %+v (no E flag: hidden)", s)
	}
	for detail, reason := range map[string]string{
		"authentication failed":  "Authentication failed",
		"":                       "Authentication failed",
		"Password expired":       "Password expired",
		"SESSION:token rejected": "token rejected",
	} {
		b.authFailed(detail)
		if b.status.Minor != api.StatusMinorConnAuthFailed || b.status.Message != reason {
			t.Errorf("authFailed(%q): status %s, want reason %q", detail, b.status, reason)
		}
		if got := b.inputs.typeGroups(); !slices.Equal(got, []typeGroup{{1, 1}}) {
			t.Errorf("authFailed(%q): slots %v, want username/password again", detail, got)
		}
	}
}
