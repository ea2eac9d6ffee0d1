package sessionmgr

import (
	"testing"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/busobj/busobjtest"
)

// startBus runs a private system-like bus for one test (stopped in
// t.Cleanup) and returns its address.
func startBus(t *testing.T) string {
	t.Helper()
	return busobjtest.StartBus(t)
}

// dial opens a connection to the private bus and closes it in t.Cleanup.
func dial(t *testing.T, addr string) *dbus.Conn {
	t.Helper()
	conn, err := dbus.Connect(addr)
	if err != nil {
		t.Fatalf("connect %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}
