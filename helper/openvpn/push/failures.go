package push

import (
	"errors"
	"fmt"
	"slices"
)

// What a pushed option the client cannot use means for the connection,
// following OpenVPN, which logs an options error and skips the option,
// and restarts the connection only when the result would not work:
//
//   - skipped with a warning (Reply.Warnings): options whose absence keeps
//     the tunnel working and secure — keepalive and session timers, MTU,
//     explicit-exit-notify, route metric, auth-token (the credentials are
//     sent instead); dns() itself skips the parts of a newer server's
//     "dns" option this client does not know;
//   - connection restarted (the error): options whose absence would
//     weaken security or routing — addresses, topology, routes,
//     redirect-gateway, block-ipv6, DNS servers, cipher, peer-id and key
//     derivation, and any line that cannot be split into words;
//   - refused (ErrCompressionRefused): compression, which would break
//     every packet or leak plaintext; retrying cannot help.
//
// Options this package does not interpret at all go to Reply.Unhandled.

// ErrCompressionRefused is wrapped when the server pushes compression the
// client refuses: a configuration problem on one side, not a transient
// failure.
var ErrCompressionRefused = errors.New("pushed compression refused")

// skippable are the options whose bad values are skipped with a warning.
var skippable = []string{
	"ping", "ping-restart", "ping-exit", "inactive", "session-timeout",
	"tun-mtu", "explicit-exit-notify", "route-metric", "auth-token", "auth-token-user",
}

// optionFailed sorts the error of one pushed option: a warning on r, or
// an error for the reply (nil when skipped).
func (r *Reply) optionFailed(args []string, shown string, err error) error {
	name := ""
	if len(args) > 0 {
		name = args[0]
	}
	switch {
	case name == "compress" || name == "comp-lzo":
		return fmt.Errorf("pushed option %.80q: %w: %w", shown, ErrCompressionRefused, err)
	case slices.Contains(skippable, name):
		r.Warnings = append(r.Warnings, fmt.Sprintf("pushed option %.80q skipped: %v", shown, err))
		return nil
	}
	return fmt.Errorf("pushed option %.80q: %w", shown, err)
}
