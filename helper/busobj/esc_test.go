package busobj

import (
	"encoding/xml"
	"strings"
	"testing"
)

// esc escapes exactly as encoding/xml's EscapeText, which it replaces
// (the package is no longer linked into the helper: its init table).
func TestEscMatchesEncodingXML(t *testing.T) {
	for _, s := range []string{
		"", "net.openvpn.v3.sessions", "a{sv}", `"'&<>`, "tab\there\nline\rcr",
		"ctl\x01\x1f\x7f", "bad\xffutf8\xc3", "\uFFFD\uFFFE\uFFFF\U0001F600", "é€", "\ud7ff\ue000",
	} {
		var want strings.Builder
		if err := xml.EscapeText(&want, []byte(s)); err != nil {
			t.Fatal(err)
		}
		if got := esc(s); got != want.String() {
			t.Errorf("esc(%q) = %q, encoding/xml gives %q", s, got, want.String())
		}
	}
}
