package engine

import (
	"errors"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/wire"
)

// legacyKeyBlock derives the key block with the TLS 1.0 PRF for servers
// that do not push tls-ekm. TODO: call datachan.KeyBlockPRF once it lands.
func legacyKeyBlock(k *keyState, client, server wire.SessionID) ([]byte, error) {
	_, _, _ = k, client, server
	return nil, errors.New("the server did not offer TLS-EKM key derivation and the legacy PRF is not implemented yet")
}
