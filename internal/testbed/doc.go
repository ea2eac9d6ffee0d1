// Package testbed is the test harness that runs ovpn3go against real
// third-party software: two network namespaces joined by a veth pair
// (NetPair), a throwaway PKI written with crypto/x509 (PKI), the Debian
// OpenVPN 2.6 server in one of the nine test-bed variants a–i (Server,
// Profile), a private system-like dbus-daemon (Bus) and, for end-to-end
// tests and the demo, the whole ovpn3go stack on top of them (Stack).
// ServerOptions vary a variant for interop tests — another transport
// (Proto: any variant over udp, tcp, udp6 or tcp6), tls-crypt-v2
// force-cookie, pushed compression framings, auth-gen-token — and
// WithRSABits gives an RSA PKI of any size; StartReferenceClient runs the
// openvpn 2.6 client against any of them, the yardstick for ovpn3go.
// For DNS, NewResolved runs a real systemd-resolved (unpacked by make deps,
// never installed) on a private bus in a test's namespaces, and
// StartDNSServer a tiny DNS responder that records what it was asked.
//
// Every resource comes in two forms: a constructor that returns the
// resource plus a Close/Stop method (for programs such as the demo), and a
// thin wrapper taking a testing.TB that registers the cleanup with
// t.Cleanup and fails the test on error. Names of namespaces and links are
// unique per call, so tests using the harness may run in parallel, and
// every process it starts is a child it stops by PID.
//
// Almost everything needs root (testenv.RequireRoot) and iproute2; the
// server and tls-crypt-v2 keys need the openvpn binary, the bus needs
// dbus-daemon.
package testbed
