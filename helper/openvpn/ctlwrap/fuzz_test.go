package ctlwrap

import (
	"bytes"
	"testing"
)

// fuzzWrappers returns one fresh client Wrapper of every mode, all with
// the counting key, so that the fuzzer can hit valid packets from seeds.
func fuzzWrappers(t testing.TB) map[string]Wrapper {
	k := countingKey(t)
	tc, err := NewTLSCrypt(k)
	if err != nil {
		t.Fatal(err)
	}
	ta, err := NewTLSAuth(k, DirectionInverse, "SHA256")
	if err != nil {
		t.Fatal(err)
	}
	v2, err := NewTLSCryptV2(v2KeyPEM(t, k.Bytes(), fakeWKc(minWKcLen), tlsCryptV2ClientPEM))
	if err != nil {
		t.Fatal(err)
	}
	return map[string]Wrapper{"plain": NewPlain(), "tls-crypt": tc, "tls-auth": ta, "tls-crypt-v2": v2}
}

// FuzzUnwrap feeds arbitrary bytes to every Wrapper's Unwrap: it must
// return an error or a packet that Validate accepts, never panic.
func FuzzUnwrap(f *testing.F) {
	k := countingKey(f)
	server, err := newTLSCrypt(k, DirectionNormal, nil, nil, 1)
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range samplePackets() {
		b, _ := server.Wrap(nil, &p)
		f.Add(b)
		f.Add(p.AppendPlain(nil))
	}
	f.Add(unhex(f, tlsCryptServerVector))
	f.Add(unhex(f, tlsAuthServerSHA256))
	f.Fuzz(func(t *testing.T, b []byte) {
		for name, w := range fuzzWrappers(t) {
			in := bytes.Clone(b)
			p, err := w.Unwrap(in)
			if !bytes.Equal(in, b) {
				t.Fatalf("%s: Unwrap modified its input", name)
			}
			if err != nil {
				continue
			}
			if err := p.Validate(); err != nil {
				t.Fatalf("%s: unwrapped packet invalid: %v", name, err)
			}
		}
	})
}
