package push

import "testing"

func BenchmarkParseTestbedReply(b *testing.B) {
	for b.Loop() {
		r, err := Parse(testbed[:len(testbed)-1], Filter{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r.NetConfig(); err != nil {
			b.Fatal(err)
		}
	}
}
