package profile

import (
	"go/ast"
	goparser "go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestOptionTableEffects keeps the option table true: every Applied
// option names at least one test that shows its effect, each named test
// exists, and its string literals (the profile text or option lines it
// feeds the code under test) mention the option. Deleting or renaming the
// test, or dropping the option from it, fails here; so does flipping an
// option to Applied without a test.
func TestOptionTableEffects(t *testing.T) {
	root := moduleRoot(t)
	tests := map[string]map[string]string{} // dir -> test name -> its literals
	literals := func(dir, name string) (string, bool) {
		if _, ok := tests[dir]; !ok {
			tests[dir] = testLiterals(t, filepath.Join(root, dir))
		}
		s, ok := tests[dir][name]
		return s, ok
	}
	applied := 0
	for _, info := range AllOptions() {
		if info.Class != Applied {
			if len(info.Effect) > 0 {
				t.Errorf("%s is %v but names effect tests %v: flip it to applied or drop them", info.Name, info.Class, info.Effect)
			}
			continue
		}
		applied++
		if len(info.Effect) == 0 {
			t.Errorf("%s is applied but names no test showing its effect", info.Name)
			continue
		}
		mention := regexp.MustCompile(`(^|[\s"'<-])` + regexp.QuoteMeta(info.Name) + `($|[\s>"'])`)
		for _, ref := range info.Effect {
			i := strings.LastIndex(ref, ".")
			if i < 0 {
				t.Errorf("%s: effect %q is not dir.TestName", info.Name, ref)
				continue
			}
			lits, ok := literals(ref[:i], ref[i+1:])
			if !ok {
				t.Errorf("%s: effect test %s does not exist", info.Name, ref)
				continue
			}
			if !mention.MatchString(lits) {
				t.Errorf("%s: effect test %s never mentions the option", info.Name, ref)
			}
		}
	}
	if applied < 50 {
		t.Errorf("only %d applied options: the table lost entries", applied)
	}
}

// moduleRoot is the directory holding go.mod above this package.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the package")
		}
		dir = parent
	}
}

// testLiterals maps each Test function of the _test.go files in dir to the
// text of the string literals in its body, one per line.
func testLiterals(t *testing.T, dir string) map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*_test.go"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	fset := token.NewFileSet()
	for _, f := range files {
		af, err := goparser.ParseFile(fset, f, nil, goparser.SkipObjectResolution)
		if err != nil {
			t.Fatalf("parse %s: %v", f, err)
		}
		for _, d := range af.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Recv != nil || !strings.HasPrefix(fd.Name.Name, "Test") || fd.Body == nil {
				continue
			}
			var b strings.Builder
			ast.Inspect(fd.Body, func(n ast.Node) bool {
				if bl, ok := n.(*ast.BasicLit); ok && bl.Kind == token.STRING {
					if s, err := strconv.Unquote(bl.Value); err == nil {
						b.WriteString(s)
						b.WriteByte('\n')
					}
				}
				return true
			})
			out[fd.Name.Name] = b.String()
		}
	}
	return out
}

// TestIgnoredOptionsWarn checks that an ignored option is accepted with a
// warning giving its reason (silently when Quiet), its arguments still
// checked, and a refused one fails naming its line.
func TestIgnoredOptionsWarn(t *testing.T) {
	// A parsed-but-not-applied option of its own, so the test does not
	// depend on which real options are still waiting to take effect.
	saved := optionTable
	i, _ := findOption(saved, "x-not-yet")
	optionTable = slices.Insert(slices.Clone(saved), i, notYet("x-not-yet", whyNotYet, number(1, 9, func(p *Profile, n int) { p.Verb = n })))
	defer func() { optionTable = saved }()
	p := mustParse(t, minimal+"x-not-yet 7\nmute 20\n")
	if p.Verb != 7 {
		t.Errorf("handler of an ignored option did not run: verb %d", p.Verb)
	}
	if len(p.Warnings) != 1 || !strings.Contains(p.Warnings[0].String(), "option 'x-not-yet' ignored: "+whyNotYet) {
		t.Errorf("warnings %v", p.Warnings)
	}
	if _, err := Parse(minimal + "x-not-yet 70\n"); err == nil || !strings.Contains(err.Error(), "not a number in 1..9") {
		t.Errorf("bad value of an ignored option: %v", err)
	}
	if _, err := Parse(minimal + "reneg-bytes lots\n"); err == nil || !strings.Contains(err.Error(), "not a non-negative number") {
		t.Errorf("bad reneg-bytes: %v", err)
	}
	n := strings.Count(minimal, "\n")
	_, err := Parse(minimal + "fragment 1300\n")
	if err == nil || !strings.Contains(err.Error(), "line "+strconv.Itoa(n+1)+": option 'fragment' is not supported") {
		t.Errorf("fragment: %v", err)
	}
}

// TestClientModeOptions shows what the options that make a client profile
// do: without them the profile is not a client profile; dev selects a tun
// device (tap refused); proto and port/rport become each remote's
// defaults.
func TestClientModeOptions(t *testing.T) {
	const rest = "dev tun\nremote vpn.example\n<ca>\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n</ca>\nauth-user-pass\n"
	for _, head := range []string{"client\n", "pull\ntls-client\n", "client\nmode p2p\nkey-method 2\n"} {
		if _, err := Parse(head + rest); err != nil {
			t.Errorf("%q: %v", head, err)
		}
	}
	for head, want := range map[string]string{
		"pull\n":                 "not a client profile",
		"tls-client\n":           "not a client profile",
		"client\nmode server\n":  "server-only",
		"client\nkey-method 1\n": "only key-method 2",
	} {
		if _, err := Parse(head + rest); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err %v, want %q", head, err, want)
		}
	}
	if _, err := Parse(strings.Replace("client\n"+rest, "dev tun\n", "", 1)); err == nil || !strings.Contains(err.Error(), "no 'dev'") {
		t.Errorf("no dev: %v", err)
	}
	if _, err := Parse(strings.Replace("client\n"+rest, "dev tun\n", "dev tap\n", 1)); err == nil || !strings.Contains(err.Error(), "TAP") {
		t.Errorf("dev tap: %v", err)
	}
	p := mustParse(t, strings.Replace("client\n"+rest, "dev tun\n", "dev vpn0\ndev-type tun\n", 1))
	if p.Dev != "vpn0" || p.DevType != "tun" {
		t.Errorf("dev %q type %q", p.Dev, p.DevType)
	}
	p = mustParse(t, "client\nproto tcp\nport 443\n"+rest+"remote b.example 1195 udp\n")
	want := []Remote{{"vpn.example", "443", "tcp"}, {"b.example", "1195", "udp"}}
	if len(p.Remotes) != 2 || p.Remotes[0] != want[0] || p.Remotes[1] != want[1] {
		t.Errorf("remotes %+v, want %+v", p.Remotes, want)
	}
	p = mustParse(t, "client\nrport 8443\n"+rest)
	if p.Remotes[0].Port != "8443" {
		t.Errorf("rport: remotes %+v", p.Remotes)
	}
}
