// Package assets holds what the tray application ships besides its code:
// the desktop entry and MIME type (net.ovpn3go.tray.desktop, …-mime.xml), the
// application icon and one tray icon per connection state. The PNGs are
// committed; StateIcon draws them, and the package test fails when a
// committed file differs from what StateIcon draws (go test ./assets -update
// rewrites them).
package assets

import (
	"embed"
	"fmt"
)

//go:embed icon.png tray/*.png
var files embed.FS

// States are the tray icon states, in the order the tray ranks them (a later
// state outranks an earlier one when several sessions run).
var States = []string{"disconnected", "connected", "paused", "connecting", "attention", "error"}

// TrayIconSize is the edge length of the committed tray icons in pixels.
const TrayIconSize = 64

// TrayIcon returns the committed PNG of a state in States.
func TrayIcon(state string) ([]byte, error) {
	b, err := files.ReadFile("tray/" + state + ".png")
	if err != nil {
		return nil, fmt.Errorf("tray icon %q: %w", state, err)
	}
	return b, nil
}

// AppIcon returns the application icon (PNG, 256×256).
func AppIcon() []byte {
	b, _ := files.ReadFile("icon.png") // embedded above: cannot fail
	return b
}
