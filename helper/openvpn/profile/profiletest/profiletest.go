// Package profiletest reads the corpus of real-shaped profiles in
// helper/openvpn/profile/testdata and what each file says should become of
// it, so that the parser's tests and the configuration manager's tests
// (through the real Import on a private bus) check the same expectations.
//
// Every corpus file states its expected outcome in comment lines, by
// convention at the top:
//
//	# expect: imports valid
//	# expect: imports invalid: <the exact error text of Validate>
//	# expect: refused: <text>
//	# expect: warns: line N: option 'X'
//
// A file has exactly one of "imports valid", "imports invalid: …" or one
// or more "refused: …" lines. A refused file's problem list must contain
// every refused text, and every problem must contain one of them, so the
// lines list the problems exactly ("refused: line 7: option 'ca' refers
// to file", "refused: profile: no server"). "warns:" lines list exactly
// the warnings of the parsed (or, for an incomplete profile, partial)
// profile, one line per warning. Files under good/ parse without error;
// files under bad/ are refused by the parser, or parse only to a partial
// profile and are imported with valid=false.
package profiletest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
)

// Outcome is what importing a profile should give.
type Outcome int

const (
	ImportsValid   Outcome = iota + 1 // imported, valid=true, Validate succeeds
	ImportsInvalid                    // imported, valid=false, Validate fails with Case.Validate
	Refused                           // Import fails naming every problem
)

func (o Outcome) String() string {
	switch o {
	case ImportsValid:
		return "imports valid"
	case ImportsInvalid:
		return "imports invalid"
	case Refused:
		return "refused"
	}
	return "unknown"
}

// Case is one corpus file and its expectations.
type Case struct {
	Name     string // "good/pfsense-inline-tlsauth.ovpn"
	Text     string
	Outcome  Outcome
	Validate string   // ImportsInvalid: Validate's exact error text
	Refusals []string // Refused: the problems, one text each
	Warnings []string // the warnings, one text each
}

const prefix = "# expect: "

// Dir is the corpus directory (helper/openvpn/profile/testdata).
func Dir() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "../testdata"
	}
	return filepath.Join(filepath.Dir(file), "..", "testdata")
}

// Load reads every corpus file, good/ then bad/, sorted by name.
func Load() ([]Case, error) {
	var out []Case
	for _, sub := range []string{"good", "bad"} {
		files, err := filepath.Glob(filepath.Join(Dir(), sub, "*.ovpn"))
		if err != nil {
			return nil, err
		}
		slices.Sort(files)
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			c, err := Read(sub+"/"+filepath.Base(f), string(b))
			if err != nil {
				return nil, err
			}
			out = append(out, c)
		}
	}
	return out, nil
}

// Read takes the expectations out of one file's text.
func Read(name, text string) (Case, error) {
	c := Case{Name: name, Text: text}
	for l := range strings.SplitSeq(strings.TrimPrefix(text, "\uFEFF"), "\n") {
		e, ok := strings.CutPrefix(strings.TrimRight(l, "\r"), prefix)
		if !ok {
			continue
		}
		switch {
		case e == "imports valid":
			c.setOutcome(ImportsValid)
		case strings.HasPrefix(e, "imports invalid: "):
			c.setOutcome(ImportsInvalid)
			c.Validate = strings.TrimPrefix(e, "imports invalid: ")
		case strings.HasPrefix(e, "refused: "):
			if c.Outcome != Refused {
				c.setOutcome(Refused)
			}
			c.Refusals = append(c.Refusals, strings.TrimPrefix(e, "refused: "))
		case strings.HasPrefix(e, "warns: "):
			c.Warnings = append(c.Warnings, strings.TrimPrefix(e, "warns: "))
		default:
			return c, fmt.Errorf("%s: unknown expectation %q", name, e)
		}
	}
	switch {
	case c.Outcome == 0:
		return c, fmt.Errorf("%s: no '# expect:' outcome line", name)
	case c.Outcome < 0:
		return c, fmt.Errorf("%s: more than one outcome", name)
	case c.Outcome == Refused && len(c.Warnings) > 0:
		return c, fmt.Errorf("%s: a refused profile has no warnings to expect", name)
	}
	return c, nil
}

func (c *Case) setOutcome(o Outcome) {
	if c.Outcome != 0 {
		c.Outcome = -1
		return
	}
	c.Outcome = o
}

// MatchExactly checks that every wanted text is contained in a distinct
// got text and that nothing is left over: the got list is exactly the one
// the expectations describe.
func MatchExactly(what string, want, got []string) error {
	used := make([]bool, len(got))
	var errs []error
	for _, w := range want {
		found := false
		for i, g := range got {
			if !used[i] && strings.Contains(g, w) {
				used[i], found = true, true
				break
			}
		}
		if !found {
			errs = append(errs, fmt.Errorf("expected %s %q not found", what, w))
		}
	}
	for i, g := range got {
		if !used[i] {
			errs = append(errs, fmt.Errorf("unexpected %s %q", what, g))
		}
	}
	return errors.Join(errs...)
}
