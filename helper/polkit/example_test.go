package polkit_test

import (
	"context"

	"github.com/godbus/dbus/v5"

	"github.com/ovpn3go/ovpn3go/helper/polkit"
)

// A method handler in the helper authorizes its caller after the UID ACL
// said "not the owner" (or before a system-wide change): the subject is the
// message's sender, and interaction is allowed only if the message carried
// ALLOW_INTERACTIVE_AUTHORIZATION (busobj.Call.Sender and .Interactive).
func ExampleAuthority_Require() {
	conn, err := dbus.ConnectSystemBus()
	if err != nil {
		return
	}
	defer conn.Close()
	auth := polkit.New(conn)

	sender, interactive := ":1.42", false // from the incoming call
	if err := auth.Require(context.Background(), sender, polkit.ActionSessionControlOther, interactive); err != nil {
		// InteractiveAuthorizationRequired (the client may retry with the
		// flag) or AccessDenied; send it as the method's error reply.
		_ = polkit.ReplyError(err)
		return
	}
	// authorized: go on
}
