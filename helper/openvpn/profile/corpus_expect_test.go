package profile

import (
	"errors"
	"testing"

	"github.com/ovpn3go/ovpn3go/helper/openvpn/profile/profiletest"
)

// TestCorpus checks every corpus file against its "# expect:" lines (see
// package profiletest): what parses, what is refused naming exactly which
// lines and options, and exactly which warnings a profile carries. The
// configuration manager's corpus test checks the same files through the
// service.
func TestCorpus(t *testing.T) {
	cases, err := profiletest.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) < 36 {
		t.Errorf("corpus has %d profiles, want at least 36", len(cases))
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			p, err := Parse(c.Text)
			var pe *ParseError
			if err != nil && !errors.As(err, &pe) {
				t.Fatalf("error is %T, want *ParseError", err)
			}
			if good := c.Name[:5] == "good/"; good != (err == nil) {
				t.Fatalf("in good/ but refused, or in bad/ but parses: %v", err)
			}
			switch c.Outcome {
			case profiletest.ImportsValid:
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
			case profiletest.ImportsInvalid:
				// Either it parses (Validate finds the problem) or the
				// parser finds only whole-profile gaps.
				if err != nil {
					if pe.Partial == nil {
						t.Fatalf("no partial profile: %v", err)
					}
					p = pe.Partial
				}
			case profiletest.Refused:
				if err == nil {
					t.Fatal("accepted")
				}
				if pe.Partial != nil {
					t.Fatalf("only gaps, so it would import with valid=false:\n%v", err)
				}
				var msgs []string
				lined := false
				for _, pr := range pe.Problems {
					msgs = append(msgs, pr.Error())
					lined = lined || pr.Line > 0
				}
				if !lined {
					t.Errorf("no problem names a line:\n%v", err)
				}
				if err := profiletest.MatchExactly("problem", c.Refusals, msgs); err != nil {
					t.Errorf("%v\nall problems:\n%v", err, pe)
				}
				return
			}
			var warns []string
			for _, w := range p.Warnings {
				warns = append(warns, w.String())
			}
			if err := profiletest.MatchExactly("warning", c.Warnings, warns); err != nil {
				t.Error(err)
			}
		})
	}
}
