package dco

import (
	"github.com/ovpn3go/ovpn3go/helper/netcfg/internal/nstest"
	"github.com/ovpn3go/ovpn3go/helper/netcfg/nsexec"
)

// nstestRun runs fn inside the test namespace (sockets made there stay
// there).
func nstestRun(ns *nstest.Namespace, fn func() error) error { return nsexec.Run(ns.Handle, fn) }
