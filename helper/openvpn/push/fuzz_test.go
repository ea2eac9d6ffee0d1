package push

import "testing"

// FuzzPushReply checks that no input panics, that accepted replies obey
// the limits, and that NetConfig on any accepted reply either fails
// cleanly or yields a configuration that validates.
func FuzzPushReply(f *testing.F) {
	f.Add(typical26)
	f.Add(testbed)
	f.Add("PUSH_REPLY,route 10.8.0.1,topology net30,ifconfig 10.8.0.6 10.8.0.5,redirect-gateway def1,comp-lzo no")
	f.Add("PUSH_REPLY,ifconfig-ipv6 fd00::2/64 fd00::1,route-ipv6 2000::/3,dns server 0 address [::1]:53,push-continuation 1")
	f.Add("PUSH_REPLY,auth-token abc,auth-token-user dGVzdA==,echo \"x y\",compress stub-v2")
	f.Fuzz(func(t *testing.T, msg string) {
		for _, flt := range []Filter{{}, {RouteNoPull: true, PullFilters: []PullFilter{{Action: "ignore", Text: "route"}}}} {
			var a Assembler
			a.Filter = flt
			done, err := a.Add(msg)
			if err != nil || !done {
				continue
			}
			r, err := a.Reply()
			if err != nil {
				continue
			}
			if len(r.Options) > MaxOptions {
				t.Fatalf("%d options", len(r.Options))
			}
			if r.PeerID < -1 || r.PeerID > 0xfffffe {
				t.Fatalf("peer-id %d", r.PeerID)
			}
			c, err := r.NetConfig()
			if err != nil {
				continue
			}
			if err := c.Validate(); err != nil {
				t.Fatalf("NetConfig returned an invalid config: %v", err)
			}
		}
	})
}
