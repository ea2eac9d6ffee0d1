package profile

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParse seeds with the whole corpus. Invariants: no panic; a refusal
// is a *ParseError with at least one problem; an accepted profile renders
// to text that parses to the same profile and renders identically again.
func FuzzParse(f *testing.F) {
	for _, dir := range []string{"testdata/good", "testdata/bad"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.ovpn"))
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(string(b))
		}
	}
	f.Add(minimal)
	// Shapes that once took quadratic time, and more problems than listed.
	f.Add(strings.Repeat("# OVPN_ACCESS_SERVER_A_START\n", 200) + minimal)
	f.Add(strings.Repeat("x \"a\n", MaxProblems+20))
	f.Add("setenv FORWARD_COMPATIBLE 1\n" + minimal + "----odd x\n\"<ca>\" y\n\"\" z\n<future>\nstuff\n</future>\n")
	f.Add("# OVPN_ACCESS_SERVER_A_START\n# ## x\n#   y \n# OVPN_ACCESS_SERVER_A_STOP\n;OVPN_ACCESS_SERVER_B=1\n" + minimal)
	f.Fuzz(func(t *testing.T, text string) {
		p, err := Parse(text)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || len(pe.Problems) == 0 {
				t.Fatalf("error %T %v is not a non-empty *ParseError", err, err)
			}
			// Messages travel in D-Bus strings.
			if !utf8.ValidString(err.Error()) {
				t.Fatalf("error is not UTF-8: %q", err.Error())
			}
			gaps := !slices.ContainsFunc(pe.Problems, func(p Problem) bool { return !p.Kind.Gap() })
			if gaps != (pe.Partial != nil) {
				t.Fatalf("partial %v with gaps-only %v: %v", pe.Partial != nil, gaps, err)
			}
			if pe.Partial != nil {
				_ = pe.Partial.Render()
			}
			return
		}
		for _, w := range p.Warnings {
			if !utf8.ValidString(w.String()) {
				t.Fatalf("warning is not UTF-8: %q", w.String())
			}
		}
		out := p.Render()
		q, err := Parse(out)
		if err != nil {
			t.Fatalf("rendered text does not parse: %v\n--- input\n%q\n--- rendered\n%q", err, text, out)
		}
		if a, b := stripLines(p), stripLines(q); !reflect.DeepEqual(a, b) {
			t.Fatalf("round trip differs\n%+v\n%+v\n--- input %q\n--- rendered %q", a, b, text, out)
		}
		if again := q.Render(); again != out {
			t.Fatalf("Render not stable:\n%q\n%q", out, again)
		}
	})
}
