package backend

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/ovpn3go/ovpn3go/helper/api"
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
	q := newInputQueue(&profile.Profile{AuthUserPass: true})
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
	if err := newInputQueue(&profile.Profile{}).provide(1, 1, 0, "x"); err == nil || api.ErrorText(err) != "User input not required" {
		t.Errorf("provide without a queue: %v", err)
	}
}

func TestLogForwardingRespectsLevel(t *testing.T) {
	b := &Backend{logLevel: 3}
	log := slog.New(newSignalHandler(slog.DiscardHandler, b, api.LogGroupClient)).With("remote", "198.18.0.1")
	log.Info("connecting", "try", 1)
	if b.lastLog.message != "connecting remote=198.18.0.1 try=1" || b.lastLog.group != uint32(api.LogGroupClient) ||
		b.lastLog.category != uint32(api.LogCategoryInfo) {
		t.Errorf("last log = %+v", b.lastLog)
	}
	log.Debug("details")
	if b.lastLog.message == "details" {
		t.Error("debug line forwarded at log level 3")
	}
	log.WithGroup("tls").Warn("odd\nline", "alert", 40)
	if b.lastLog.message != "odd line remote=198.18.0.1 tls.alert=40" || b.lastLog.category != uint32(api.LogCategoryWarn) {
		t.Errorf("last log = %+v", b.lastLog)
	}
}
