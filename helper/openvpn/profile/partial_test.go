package profile

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func parseErr(t *testing.T, text string) *ParseError {
	t.Helper()
	p, err := Parse(text)
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("Parse = %v, %v; want a *ParseError", p, err)
	}
	if p != nil {
		t.Fatal("Parse returned a profile with an error")
	}
	return pe
}

func kinds(pe *ParseError) []Kind {
	var out []Kind
	for _, p := range pe.Problems {
		out = append(out, p.Kind)
	}
	return out
}

// TestPartialProfile: gaps alone give the partial profile with typed
// kinds; any line problem withholds it.
func TestPartialProfile(t *testing.T) {
	pe := parseErr(t, "remote 192.0.2.1 443 tcp\nverb 4\nblock-outside-dns\n")
	want := []Kind{KindNotClient, KindNoDev, KindNoCA, KindNoAuth}
	if !reflect.DeepEqual(kinds(pe), want) {
		t.Errorf("kinds %v, want %v\n%v", kinds(pe), want, pe)
	}
	if !pe.Gaps() || pe.Partial == nil {
		t.Fatal("no partial profile")
	}
	if p := pe.Partial; p.Verb != 4 || !reflect.DeepEqual(p.Remotes, []Remote{{"192.0.2.1", "443", "tcp"}}) ||
		len(p.Options) != 3 || len(p.Warnings) != 1 || p.Warnings[0].Line != 3 {
		t.Errorf("partial %+v", p)
	}
	for _, pr := range pe.Problems {
		if pr.Line != 0 || !pr.Kind.Gap() {
			t.Errorf("gap with a line: %+v", pr)
		}
	}

	pe = parseErr(t, "client\ndev tun\nremote 192.0.2.1\n<cert>\n-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n</cert>\n"+
		"<ca>\n-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n</ca>\nstatic-challenge x 1\n")
	if !reflect.DeepEqual(kinds(pe), []Kind{KindCertWithoutKey, KindChallengeWithoutAuth}) || pe.Partial == nil {
		t.Errorf("kinds %v partial %v\n%v", kinds(pe), pe.Partial != nil, pe)
	}
	pe = parseErr(t, "client\ndev mydev\nremote 192.0.2.1\nauth-user-pass\npeer-fingerprint "+strings.Repeat("AB:", 31)+"AB\n")
	if !reflect.DeepEqual(kinds(pe), []Kind{KindDevType}) || pe.Partial == nil || pe.Partial.Dev != "mydev" {
		t.Errorf("kinds %v\n%v", kinds(pe), pe)
	}

	// A line problem: no partial profile, and the gaps are still listed.
	pe = parseErr(t, "remote 192.0.2.1\nfragment 1300\n")
	if pe.Partial != nil || pe.Gaps() || pe.Problems[0].Kind != KindInput || pe.Problems[0].Line != 2 {
		t.Errorf("line problem gave partial %v: %v", pe.Partial != nil, pe)
	}
	// Too large: a whole-text problem that is not a gap.
	pe = parseErr(t, strings.Repeat("#\n", MaxProfileSize/2+1))
	if pe.Partial != nil || pe.Problems[0].Kind != KindInput {
		t.Errorf("size: %+v", pe.Problems)
	}
}

func TestNotUTF8(t *testing.T) {
	pe := parseErr(t, "client\ndev tun\n# caf\xe9\nremote 192.0.2.1\n")
	if len(pe.Problems) != 1 || pe.Problems[0].Line != 3 || !strings.Contains(pe.Error(), "line 3: is not UTF-8 text") || pe.Partial != nil {
		t.Errorf("%+v", pe.Problems)
	}
	if strings.Contains(pe.Error(), "\xe9") {
		t.Error("message carries the invalid byte")
	}
	if _, err := Parse("client\n# café ünïcode ✓\ndev tun\nremote 192.0.2.1\nauth-user-pass\npeer-fingerprint " + strings.Repeat("AB:", 31) + "AB\n"); err != nil {
		t.Errorf("UTF-8 comment refused: %v", err)
	}
}
