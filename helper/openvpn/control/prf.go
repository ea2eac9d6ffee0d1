package control

import (
	"github.com/ovpn3go/ovpn3go/helper/openvpn/datachan"
	"github.com/ovpn3go/ovpn3go/helper/openvpn/wire"
)

// legacyKeyBlock derives the key block with the TLS 1.0 PRF for servers
// that did not push tls-ekm (OpenVPN 2.5 and older).
func legacyKeyBlock(k *key, client, server wire.SessionID) ([]byte, error) {
	in := &datachan.PRFInput{
		PreMaster:       k.km2.PreMaster,
		ClientRandom1:   k.km2.Random1,
		ClientRandom2:   k.km2.Random2,
		ServerRandom1:   k.server.Random1,
		ServerRandom2:   k.server.Random2,
		ClientSessionID: client,
		ServerSessionID: server,
	}
	b := datachan.KeyBlockPRF(in)
	clear(in.PreMaster[:])
	return b, nil
}
