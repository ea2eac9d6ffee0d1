// Package busobj exports D-Bus objects that behave like GDBus/gdbuspp
// objects, on top of github.com/godbus/dbus/v5. The openvpn3 front-ends
// depend on GDBus details (spec/dbus-api.md §2.0, §4), so the server answers
// every method call itself:
//
//   - each object has one application Interface plus
//     org.freedesktop.DBus.Properties (Get, GetAll, Set, PropertiesChanged),
//     org.freedesktop.DBus.Introspectable and org.freedesktop.DBus.Peer
//     (Peer is answered by godbus for any path, as GDBus does);
//   - Introspect works on every exported path and on every intermediate
//     path ("/", "/net", …), listing children as self-closing
//     `<node name="x"/>`;
//   - unknown paths, interfaces, methods, properties and wrong signatures
//     get GDBus's error names and texts (api.ErrUnknownObject, …);
//   - handler errors made with api.Error travel in gdbuspp's wire format;
//   - every Call carries the caller's unique name, UID and PID (cached per
//     unique name, dropped on NameOwnerChanged) and the
//     ALLOW_INTERACTIVE_AUTHORIZATION flag;
//   - NameOwner and Call.OwnsName answer from a cache kept current by
//     NameOwnerChanged: only the first question about a name goes to the
//     bus, so an Authorize hook may call OwnsName on every call for free;
//   - an Authorize hook per object sees every method call, property Get and
//     Set; GetAll silently omits properties whose getter fails or is denied;
//   - Set checks the variant type against the declared one and broadcasts
//     PropertiesChanged on success.
//
// # Starting a server
//
// The server must be installed when the connection is opened:
//
//	srv, err := busobj.Connect(ctx, "", logger) // "" = system bus (DBUS_SYSTEM_BUS_ADDRESS)
//	defer srv.Close()
//	err = srv.Export(api.PathLog, iface)
//	err = srv.RequestName(api.ServiceLog)
//
// or, when dialling yourself: s := busobj.NewServer(logger);
// conn, _ := dbus.Connect(addr, s.ConnOption()); s.Start(ctx, conn).
// srv.Conn() is an ordinary *dbus.Conn for calling other services and for
// receiving signals (conn.Signal); the server does not consume signals.
//
// # Concurrency and locking contract
//
// godbus would run every incoming call on a goroutine of its own, without
// bound or order. The server takes the calls off godbus's reader instead
// (an incoming interceptor, see intercept) and queues them per sender (unique
// bus name). The stated bound (Limits, DefaultLimits):
//
//   - a sender's calls start in the order they arrived, at most
//     WorkersPerSender (4) at once; up to QueuePerSender (64) more wait, and
//     further calls are refused at once with ErrBusy (the system bus itself
//     stops a connection at 128 pending replies). So the server runs at most
//     4 goroutines per connected sender, whatever that sender sends;
//   - a call from another sender never waits behind them: it gets a worker
//     of its own at once, so one caller's flood delays another's calls only
//     by the CPU the flooder's 4 workers and the reader's decoding share
//     with it, not by the flood's length;
//   - when a sender leaves the bus (NameOwnerChanged, seen in order with its
//     calls), Call.Ctx of its running calls is cancelled and its waiting
//     calls are dropped;
//   - signals reach each conn.Signal channel in bus order through one
//     goroutine per channel; a sender with SignalsPerSender (256) signals
//     waiting for a channel loses its next ones there (the bus driver's
//     signals are never dropped).
//
// Handlers, property getters/setters and Authorize hooks of one object
// still run concurrently with each other (calls of different senders, and
// up to 4 of one sender). The server holds no lock while it calls them:
// they may call Export, Unexport, Emit, EmitTo, Credentials and NameOwner
// freely, and must protect their own state themselves (one mutex per object
// is the usual answer; do not hold it across a blocking D-Bus call to
// another service). Handlers must return promptly or watch Call.Ctx,
// cancelled when the server closes or the caller leaves the bus. A handler
// that waits on a call back to its own caller ties up one of that caller's
// 4 workers meanwhile. Object lookup is a map access (intermediate paths
// are counted on Export/Unexport), whatever the number of objects.
// WatchNames callbacks run on the server's signal goroutine and must not
// block (hand work to your own goroutine).
//
// # File descriptors
//
// Received fds arrive in Call.Args as dbus.UnixFD and belong to the handler,
// which must close them (the server closes them if the call is rejected before
// the handler runs). To return an fd, declare an Out arg of type "h", return
// dbus.UnixFD(f.Fd()) and call c.CloseAfterReply(f): the server closes f once
// the reply has been written.
package busobj
