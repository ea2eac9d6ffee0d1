package dco

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The key_config argument of netcfg's NewKey is openvpn3-linux's
// DcoKeyConfig (proto2, src/dco/dco-keyconfig.proto): key_id = 1,
// remote_peer_id = 2, cipher_alg = 3 (the kernel's enum), encrypt = 4 and
// decrypt = 5, each a KeyDirection {cipher_key = 1, hmac_key = 2,
// nonce_tail = 3, cipher_key_size = 4}. This is a small codec for exactly
// that message (no protobuf dependency for five fields).

const (
	wireVarint = 0
	wireBytes  = 2
)

// MarshalKeyConfig encodes k (without its slot, which NewKey takes as its
// own argument) as a DcoKeyConfig.
func MarshalKeyConfig(k KeyConf) []byte {
	dir := func(d KeyDir) []byte {
		var b []byte
		b = appendBytesField(b, 1, d.Key)
		b = appendBytesField(b, 3, d.NonceTail[:])
		return appendVarintField(b, 4, uint64(len(d.Key)))
	}
	var b []byte
	b = appendVarintField(b, 1, uint64(k.KeyID))
	b = appendVarintField(b, 2, uint64(k.PeerID))
	b = appendVarintField(b, 3, uint64(k.Cipher))
	b = appendBytesField(b, 4, dir(k.Encrypt))
	return appendBytesField(b, 5, dir(k.Decrypt))
}

// UnmarshalKeyConfig decodes a DcoKeyConfig; the slot is left zero.
func UnmarshalKeyConfig(b []byte) (KeyConf, error) {
	var k KeyConf
	var seen [6]bool
	err := fields(b, func(num uint64, v uint64, data []byte) error {
		switch num {
		case 1:
			if v > 7 {
				return fmt.Errorf("key_id %d out of range 0..7", v)
			}
			k.KeyID = uint8(v)
		case 2:
			if v > 0xFFFFFF {
				return fmt.Errorf("remote_peer_id %d out of range", v)
			}
			k.PeerID = uint32(v)
		case 3:
			k.Cipher = CipherAlg(v)
		case 4, 5:
			if data == nil {
				return fmt.Errorf("field %d is not a key direction", num)
			}
			d, err := keyDirection(data)
			if err != nil {
				return fmt.Errorf("%s: %w", map[uint64]string{4: "encrypt", 5: "decrypt"}[num], err)
			}
			if num == 4 {
				k.Encrypt = d
			} else {
				k.Decrypt = d
			}
		default:
			return nil
		}
		seen[num] = true
		return nil
	})
	if err != nil {
		return KeyConf{}, fmt.Errorf("key config: %w", err)
	}
	for num, name := range []string{1: "key_id", 2: "remote_peer_id", 3: "cipher_alg", 4: "encrypt", 5: "decrypt"} {
		if num > 0 && !seen[num] {
			return KeyConf{}, fmt.Errorf("key config: %s missing", name)
		}
	}
	return k, nil
}

func keyDirection(b []byte) (KeyDir, error) {
	var d KeyDir
	var size uint64
	var haveKey, haveSize bool
	err := fields(b, func(num uint64, v uint64, data []byte) error {
		switch num {
		case 1:
			d.Key, haveKey = append([]byte(nil), data...), true
		case 3:
			if len(data) != NonceTailSize {
				return fmt.Errorf("nonce_tail of %d bytes, want %d", len(data), NonceTailSize)
			}
			copy(d.NonceTail[:], data)
		case 4:
			size, haveSize = v, true
		}
		return nil
	})
	switch {
	case err != nil:
		return KeyDir{}, err
	case !haveKey || !haveSize:
		return KeyDir{}, errors.New("cipher_key or cipher_key_size missing")
	case len(d.Key) == 0:
		return KeyDir{}, errors.New("empty cipher_key")
	case uint64(len(d.Key)) != size:
		return KeyDir{}, fmt.Errorf("cipher_key of %d bytes, cipher_key_size says %d", len(d.Key), size)
	}
	return d, nil
}

// fields walks a protobuf message: varint fields give v, length-delimited
// ones data (non-nil); other wire types are refused.
func fields(b []byte, f func(num, v uint64, data []byte) error) error {
	for len(b) > 0 {
		tag, n := binary.Uvarint(b)
		if n <= 0 {
			return errors.New("truncated field tag")
		}
		b = b[n:]
		num := tag >> 3
		switch tag & 7 {
		case wireVarint:
			v, n := binary.Uvarint(b)
			if n <= 0 {
				return fmt.Errorf("field %d: truncated varint", num)
			}
			b = b[n:]
			if err := f(num, v, nil); err != nil {
				return err
			}
		case wireBytes:
			l, n := binary.Uvarint(b)
			if n <= 0 || l > uint64(len(b)-n) {
				return fmt.Errorf("field %d: truncated bytes", num)
			}
			data := b[n : n+int(l)]
			b = b[n+int(l):]
			if err := f(num, 0, append([]byte{}, data...)); err != nil {
				return err
			}
		default:
			return fmt.Errorf("field %d: unsupported wire type %d", num, tag&7)
		}
	}
	return nil
}

func appendVarintField(b []byte, num, v uint64) []byte {
	b = binary.AppendUvarint(b, num<<3|wireVarint)
	return binary.AppendUvarint(b, v)
}

func appendBytesField(b []byte, num uint64, data []byte) []byte {
	b = binary.AppendUvarint(b, num<<3|wireBytes)
	b = binary.AppendUvarint(b, uint64(len(data)))
	return append(b, data...)
}
