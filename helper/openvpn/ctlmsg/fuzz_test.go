package ctlmsg

import (
	"bytes"
	"testing"
)

// FuzzParseServerKeyMethod2 checks that parsing never panics and that the
// fields it returns survive a re-encode.
func FuzzParseServerKeyMethod2(f *testing.F) {
	f.Add(serverBytes("V4,dev-type tun,tls-server", 0, 0, 0, 0, 0, 4, 'a', '=', 'b', 0))
	f.Add(serverBytes("V4"))
	f.Add(serverBytes("", 0))
	f.Add([]byte{0, 0, 0, 0, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseServerKeyMethod2(b)
		if err != nil {
			return
		}
		if !bytes.Equal(m.Random1[:], b[5:37]) || !bytes.Equal(m.Random2[:], b[37:69]) {
			t.Fatal("randoms not taken from their offsets")
		}
		if bytes.IndexByte([]byte(m.Options), 0) >= 0 || bytes.IndexByte([]byte(m.PeerInfo), 0) >= 0 {
			t.Fatal("NUL inside a parsed string")
		}
	})
}

// FuzzParseMessage checks that parsing never panics and that whatever
// parses as a known kind marshals back to an equivalent message.
func FuzzParseMessage(f *testing.F) {
	for _, s := range []string{
		"PUSH_REPLY,route-gateway 10.8.0.1,topology subnet,ping 10\x00",
		"AUTH_FAILED,TEMP[backoff 30,advance no]:busy",
		"AUTH_FAILED,CRV1:R,E:abc:dGVzdHVzZXI=:Enter OTP",
		"AUTH_PENDING,timeout 300",
		"INFO_PRE,WEB_AUTH::https://example.invalid/",
		"RESTART,[N]bye", "HALT", "EXIT\x00", "CR_RESPONSE,MTIz", "INFO",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMessage(b)
		if err != nil {
			return
		}
		switch m.Kind {
		case Unknown:
			return
		case AuthFailed:
			_, _ = ParseAuthFailed(m.Body)
		case AuthPending:
			_, _ = ParseAuthPending(m.Body)
		case Restart, Halt:
			_ = ParseRestart(m.Body)
		case InfoPre, Info:
			_ = ParseInfo(m.Body)
		}
		again, err := ParseMessage(Marshal(m.Kind, m.Body))
		if err != nil || again != m {
			t.Fatalf("re-parse of %q gave %+v, %v; first %+v", b, again, err, m)
		}
	})
}
