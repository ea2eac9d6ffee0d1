package tray

import (
	"encoding/json"
	"flag"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// usedKeys parses the package's Go files (not tests) and returns every
// string literal passed as the key of lang.L/lang.N/lang.X, with where it
// is; other = calls with a non-literal key, which cannot be checked.
func usedKeys(t *testing.T) (keys map[string]string, nonLiteral []string, literalUI []string) {
	t.Helper()
	keys = map[string]string{}
	fset := token.NewFileSet()
	files, _ := filepath.Glob("*.go")
	// user-visible text passed straight to these constructors/setters must
	// come from lang, never a literal
	uiCalls := map[string]bool{"NewLabel": true, "NewButton": true, "NewCheck": true, "NewWindow": true,
		"NewMenuItem": true, "SetText": true, "SetPlaceHolder": true, "NewCard": true, "NewLabelWithStyle": true,
		"NewFormItem": true, "Append": true, "NewNotification": true}
	langCalls := map[string]bool{"L": true, "N": true, "X": true, "XN": true, "Localize": true, "LocalizeKey": true,
		"LocalizePlural": true, "LocalizePluralKey": true}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(af, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if id, ok := sel.X.(*ast.Ident); ok && id.Name == "lang" && langCalls[sel.Sel.Name] {
				lit, ok := call.Args[0].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					nonLiteral = append(nonLiteral, fset.Position(call.Pos()).String())
					return true
				}
				s, _ := strconv.Unquote(lit.Value)
				keys[s] = fset.Position(call.Pos()).String()
				return true
			}
			if uiCalls[sel.Sel.Name] {
				if lit, ok := call.Args[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					if s, _ := strconv.Unquote(lit.Value); s != "" && s != "–" && s != "ovpn3go" {
						literalUI = append(literalUI, fset.Position(call.Pos()).String()+": "+s)
					}
				}
			}
			return true
		})
	}
	return keys, nonLiteral, literalUI
}

var updateCatalogue = flag.Bool("update-catalogue", false, "rewrite translations/en.json from the code (German is written by hand)")

func catalogue(t *testing.T, lang string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("translations", lang+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s.json: %v", lang, err)
	}
	return m
}

// TestCataloguesComplete fails when a string the code shows is missing from
// the English or the German catalogue, when a catalogue has a stale or
// empty entry, when a translation drops a template field, or when text is
// passed to a widget without going through lang.
func TestCataloguesComplete(t *testing.T) {
	keys, nonLiteral, literalUI := usedKeys(t)
	if *updateCatalogue {
		m := map[string]string{}
		for k := range keys {
			m[k] = k
		}
		b, _ := json.MarshalIndent(m, "", "  ")
		if err := os.WriteFile(filepath.Join("translations", "en.json"), append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if len(keys) < 50 {
		t.Fatalf("found only %d translatable strings: the scan is broken", len(keys))
	}
	for _, p := range nonLiteral {
		t.Errorf("%s: lang call with a non-literal key (cannot be checked against the catalogues)", p)
	}
	for _, p := range literalUI {
		t.Errorf("%s: user-visible literal not passed through lang", p)
	}
	for _, l := range []string{"en", "de"} {
		cat := catalogue(t, l)
		var missing []string
		for k, where := range keys {
			v, ok := cat[k]
			if !ok {
				missing = append(missing, where+": "+strconv.Quote(k))
				continue
			}
			if strings.TrimSpace(v) == "" {
				t.Errorf("%s.json: empty translation of %q", l, k)
			}
			for _, field := range templateFields(k) {
				if !strings.Contains(v, field) {
					t.Errorf("%s.json: translation of %q lacks %s", l, k, field)
				}
			}
		}
		sort.Strings(missing)
		for _, m := range missing {
			t.Errorf("%s.json misses %s", l, m)
		}
		for k := range cat {
			if _, ok := keys[k]; !ok {
				t.Errorf("%s.json: %q is not used by the code", l, k)
			}
		}
	}
	en := catalogue(t, "en")
	for k, v := range en {
		if k != v {
			t.Errorf("en.json: %q translates to %q; the English catalogue maps each key to itself", k, v)
		}
	}
}

func templateFields(s string) []string {
	var out []string
	for {
		i := strings.Index(s, "{{")
		if i < 0 {
			return out
		}
		j := strings.Index(s[i:], "}}")
		if j < 0 {
			return out
		}
		out = append(out, s[i:i+j+2])
		s = s[i+j+2:]
	}
}
