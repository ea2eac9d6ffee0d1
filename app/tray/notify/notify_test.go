package notify

import (
	"context"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/internal/desktoptest"
)

func TestNotifyReplaceUrgencyActions(t *testing.T) {
	bus, conn := desktoptest.ConnectSessionBus(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv, err := desktoptest.StartNotificationServer(bus.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c := &Client{Conn: conn, AppName: "ovpn3go"}
	actions, err := c.Actions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	id, err := c.Notify(ctx, Message{Summary: "a", Body: "connecting", Urgency: UrgencyNormal,
		Actions: map[string]string{"open-url": "Open sign-in page"}})
	if err != nil {
		t.Fatal(err)
	}
	id2, err := c.Notify(ctx, Message{Summary: "a", Body: "dropped", Urgency: UrgencyCritical, Replaces: id})
	if err != nil || id2 != id {
		t.Fatalf("replacement id %d (%v), want %d", id2, err, id)
	}
	calls := srv.Calls()
	if len(calls) != 2 || calls[1].ReplacesID != id || calls[1].Urgency != UrgencyCritical || calls[0].Urgency != UrgencyNormal {
		t.Fatalf("calls %+v", calls)
	}
	if len(calls[0].Actions) != 2 || calls[0].Actions[0] != "open-url" {
		t.Fatalf("actions %v", calls[0].Actions)
	}
	if err := srv.InvokeAction(id, "open-url"); err != nil {
		t.Fatal(err)
	}
	select {
	case inv := <-actions:
		if inv.ID != id || inv.Action != "open-url" {
			t.Fatalf("invoked %+v", inv)
		}
	case <-ctx.Done():
		t.Fatal("no ActionInvoked")
	}
}
