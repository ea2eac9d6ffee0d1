// Command ovpn3 is the command-line front-end of ovpn3go: openvpn3's
// commands and options, driving the net.openvpn.v3.* services on the system
// bus. The commands live in app/cli.
package main

import (
	"os"

	"github.com/ovpn3go/ovpn3go/app/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:]))
}
