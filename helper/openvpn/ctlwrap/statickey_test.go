package ctlwrap

import (
	"bytes"
	"strings"
	"testing"
)

func TestParseStaticKey(t *testing.T) {
	raw := countingKey(t).Bytes()
	k, err := ParseStaticKey([]byte(staticKeyText(raw)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k.Bytes(), raw) {
		t.Fatal("key bytes differ")
	}
	// Slots: key 0 = cipher 0..63, hmac 64..127; key 1 = cipher 128..191, hmac 192..255.
	if k.cipherSlot(0)[0] != 0 || k.hmacSlot(0)[0] != 64 || k.cipherSlot(1)[0] != 128 || k.hmacSlot(1)[63] != 255 {
		t.Fatal("slot layout wrong")
	}
	if strings.Contains(k.String(), "00010203") {
		t.Fatal("String leaks key")
	}
	// CRLF line ends and uppercase hex are fine.
	crlf := strings.ReplaceAll(strings.ToUpper(staticKeyText(raw)), "\n", "\r\n")
	crlf = strings.ReplaceAll(crlf, "OPENVPN STATIC KEY V1", "OpenVPN Static key V1")
	if _, err := ParseStaticKey([]byte(crlf)); err != nil {
		t.Fatalf("CRLF/uppercase: %v", err)
	}
}

func TestParseStaticKeyErrors(t *testing.T) {
	good := staticKeyText(countingKey(t).Bytes())
	cases := map[string]string{
		"empty":        "",
		"no begin":     strings.Replace(good, staticBegin, "", 1),
		"no end":       strings.Replace(good, staticEnd, "", 1),
		"short":        strings.Replace(good, "000102030405060708090a0b0c0d0e0f\n", "", 1),
		"odd hex":      strings.Replace(good, "000102030405060708090a0b0c0d0e0f", "000102030405060708090a0b0c0d0e0", 1),
		"bad char":     strings.Replace(good, "000102030405060708090a0b0c0d0e0f", "00010203040506070809zz0b0c0d0e0f", 1),
		"extra bytes":  strings.Replace(good, staticEnd, "00\n"+staticEnd, 1),
		"tls-crypt-v2": "-----BEGIN OpenVPN tls-crypt-v2 client key-----\nAAAA\n-----END OpenVPN tls-crypt-v2 client key-----\n",
	}
	for name, text := range cases {
		if _, err := ParseStaticKey([]byte(text)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := NewStaticKey(make([]byte, 255)); err == nil {
		t.Error("NewStaticKey accepted 255 bytes")
	}
}
