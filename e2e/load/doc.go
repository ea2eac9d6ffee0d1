// Package load holds the load test of ovpn3go (issue 15): many concurrent
// sessions from one helper to the real OpenVPN 2.6 server, each passing
// traffic through its own tunnel, with the helper's and the backends' CPU
// and memory and the helper's D-Bus latency with 1 and with many sessions.
//
// The test is built only with the "load" tag: it measures latency and must
// run alone, not beside the other packages of `go test ./...`. `make load`
// runs it (and `make test` runs `make load` after the unit tests):
//
//	go test -tags load -count=1 -run TestLoad ./e2e/load/ -args -load.sessions 50 -load.out $PWD/docs/bench/load.md
package load
