//go:build ignore

// Command fuzzlist prints the fuzz targets of the packages that
// `go list` describes on standard input, one "import-path FuzzName" line
// each, by parsing the test files (no test binary is built):
//
//	go list -f '{{.ImportPath}}{{range .TestGoFiles}} {{$.Dir}}/{{.}}{{end}}{{range .XTestGoFiles}} {{$.Dir}}/{{.}}{{end}}' ./... |
//		go run .ci/fuzzlist.go
//
// A fuzz target is a top-level func FuzzXxx(*testing.F), as go test finds it.
package main

import (
	"bufio"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"strings"
	"unicode"
	"unicode/utf8"
)

func main() {
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	fset := token.NewFileSet()
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		for _, file := range fields[1:] {
			f, err := parser.ParseFile(fset, file, nil, parser.SkipObjectResolution)
			if err != nil {
				fmt.Fprintln(os.Stderr, "fuzzlist:", err)
				os.Exit(1)
			}
			for _, d := range f.Decls {
				if fn, ok := d.(*ast.FuncDecl); ok && isFuzzTarget(fn) {
					fmt.Println(fields[0], fn.Name.Name)
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "fuzzlist:", err)
		os.Exit(1)
	}
}

// isFuzzTarget: func FuzzXxx(f *testing.F) with no receiver or results,
// where Xxx does not start with a lower-case letter (go test's rule).
func isFuzzTarget(fn *ast.FuncDecl) bool {
	name := fn.Name.Name
	if fn.Recv != nil || !strings.HasPrefix(name, "Fuzz") || fn.Type.Results != nil {
		return false
	}
	if rest := name[len("Fuzz"):]; rest != "" {
		if r, _ := utf8.DecodeRuneInString(rest); unicode.IsLower(r) {
			return false
		}
	}
	params := fn.Type.Params.List
	if len(params) != 1 || len(params[0].Names) > 1 {
		return false
	}
	star, ok := params[0].Type.(*ast.StarExpr)
	if !ok {
		return false
	}
	sel, ok := star.X.(*ast.SelectorExpr)
	return ok && sel.Sel.Name == "F"
}
