package configmgr

import (
	"strings"
	"testing"
)

// TestFetchJSONIncomplete: a profile imported with valid=false still shows
// its options (the parser's partial profile), not an empty object.
func TestFetchJSONIncomplete(t *testing.T) {
	js, err := fetchJSON("client\nremote 192.0.2.1 443 tcp\nverb 4\nblock-outside-dns\n")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"remote":[["192.0.2.1","443","tcp"]]`, `"verb":["4"]`, `"client":[]`, `"block-outside-dns":[]`} {
		if !strings.Contains(js, want) {
			t.Errorf("FetchJSON lacks %s: %s", want, js)
		}
	}
	// A size-limit problem has no line but is not a gap: refused, not
	// imported as invalid.
	if _, err := parseProfile(strings.Repeat("#\n", 1<<19+1)); err == nil {
		t.Error("oversized profile accepted")
	}
}
