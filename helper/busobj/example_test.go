package busobj_test

import (
	"context"
	"log/slog"
	"sync"

	"github.com/ovpn3go/ovpn3go/helper/api"
	"github.com/ovpn3go/ovpn3go/helper/busobj"
)

// A minimal service: one manager object with a method, a read-only and a
// read/write property, an owner-only rule, and a signal.
func Example() {
	ctx := context.Background()
	srv, err := busobj.Connect(ctx, "", slog.Default()) // the system bus
	if err != nil {
		return
	}
	defer srv.Close()

	var mu sync.Mutex
	level := uint32(3)
	const owner = 0 // only root may change log_level

	iface := &busobj.Interface{
		Name: api.InterfaceLog,
		Methods: []busobj.Method{{
			Name: "Attach",
			In:   []busobj.Arg{{Name: "interface", Type: "s"}},
			Handler: func(c *busobj.Call) ([]any, error) {
				if c.Args[0].(string) == "" {
					return nil, api.Error(api.DomainLog, "Could not authenticate caller")
				}
				// unicast a signal back to the caller
				return nil, c.Server.EmitTo(c.Sender, c.Path, api.InterfaceLog, "Log",
					uint32(api.LogGroupLogger), uint32(api.LogCategoryInfo), "attached")
			},
		}},
		Signals: []busobj.Signal{{Name: "Log", Args: []busobj.Arg{
			{Name: "group", Type: "u"}, {Name: "level", Type: "u"}, {Name: "message", Type: "s"}}}},
		Properties: []busobj.Property{
			{Name: "version", Type: "s", Get: func(*busobj.Call) (any, error) { return api.Version, nil }},
			{Name: "log_level", Type: "u",
				Get: func(*busobj.Call) (any, error) { mu.Lock(); defer mu.Unlock(); return level, nil },
				Set: func(c *busobj.Call, v any) error {
					if v.(uint32) > api.MaxLogLevel {
						return api.ErrFailed("Invalid log level")
					}
					mu.Lock()
					level = v.(uint32)
					mu.Unlock()
					return nil
				}},
		},
		Authorize: func(c *busobj.Call) error {
			if c.Op == busobj.OpSet && c.UID != owner {
				return busobj.Deny("Only root may change the log level") // → AccessDenied
			}
			return nil
		},
	}
	if err := srv.Export(api.PathLog, iface); err != nil {
		return
	}
	if err := srv.RequestName(api.ServiceLog); err != nil {
		return
	}
	<-ctx.Done()
}
