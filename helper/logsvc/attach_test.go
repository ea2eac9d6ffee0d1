package logsvc_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/busobj"
	"github.com/ovpn3go/ovpn3go/helper/busobj/busobjtest"
	"github.com/ovpn3go/ovpn3go/helper/logsvc"
	"github.com/ovpn3go/ovpn3go/internal/testenv"
)

// TestAttachBounded: one connection attaches at most MaxAttachPerSender
// interfaces (request error naming the limit), and its entries go when it
// leaves the bus.
func TestAttachBounded(t *testing.T) {
	testenv.RequireRoot(t)
	addr := busobjtest.StartBus(t)
	srv, err := busobj.Connect(context.Background(), addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	svc := logsvc.New(slog.New(slog.DiscardHandler))
	if err := svc.Export(srv); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	if err := srv.RequestName(api.ServiceLog); err != nil {
		t.Fatal(err)
	}
	root := busobjtest.Dial(t, addr) // root may attach
	attach := func(iface string) error {
		return root.Object(api.ServiceLog, api.PathLog).Call(api.InterfaceLog+".Attach", 0, iface).Err
	}
	for i := range logsvc.MaxAttachPerSender {
		if err := attach(fmt.Sprintf("x.y%d", i)); err != nil {
			t.Fatalf("attach %d within the bound: %v", i, err)
		}
	}
	want := fmt.Sprintf("Too many attached interfaces for this connection (limit %d)", logsvc.MaxAttachPerSender)
	if err := attach("x.over"); !api.IsDomain(err, api.DomainLog) || api.ErrorText(err) != want {
		t.Errorf("attach over the bound: %v, want %q", err, want)
	}
	if err := busobjtest.Dial(t, addr).Object(api.ServiceLog, api.PathLog).Call(api.InterfaceLog+".Attach", 0, "x.over").Err; err != nil {
		t.Errorf("another connection's attach: %v", err)
	}
	_ = root.Close()
	for deadline := time.Now().Add(20 * time.Second); svc.NumAttached() != 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d attached after the connection left, want the other one's 1", svc.NumAttached())
		}
	}
}
