package dataplane

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// The data path's system calls on its non-blocking descriptors are raw
// (tunio's raw.go says why: an ordinary call wakes the runtime's monitor
// thread whenever the process was idle, which doubled the context
// switches of a UDP upload). Each function here issues the calls of one
// hop; an ordinary call (unix.Read, unix.Syscall6, f.Write …) in any of
// them brings those wake-ups back.
func TestDataPathSyscallsAreRaw(t *testing.T) {
	hops := map[string][]string{ // package directory: receiver.function
		"../tunio":     {"fileReader.drain", "fileWriter.write", ".rawIO", ".rawSleep"},
		"../udpbatch":  {"Writer.send"},
		"../transport": {"MmsgReader.recv"},
	}
	for dir, funcs := range hops {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		found := map[string]*ast.FuncDecl{}
		fset := token.NewFileSet()
		for _, name := range files {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, name, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range f.Decls {
				if fd, ok := d.(*ast.FuncDecl); ok {
					found[recvName(fd)+"."+fd.Name.Name] = fd
				}
			}
		}
		for _, name := range funcs {
			fd := found[name]
			if fd == nil {
				t.Errorf("%s: no function %s (renamed? update this test)", dir, name)
				continue
			}
			raw := 0
			ast.Inspect(fd.Body, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				switch fn := call.Fun.(type) {
				case *ast.SelectorExpr:
					pkg, _ := fn.X.(*ast.Ident)
					switch {
					case pkg == nil:
					case (pkg.Name == "unix" || pkg.Name == "syscall") && strings.HasPrefix(fn.Sel.Name, "Raw"):
						raw++
					case pkg.Name == "unix" || pkg.Name == "syscall" || pkg.Name == "os":
						t.Errorf("%s %s: %s.%s is not a raw system call", fset.Position(call.Pos()), name, pkg.Name, fn.Sel.Name)
					}
				case *ast.Ident:
					if fn.Name == "rawRead" || fn.Name == "rawWrite" || fn.Name == "rawIO" {
						raw++
					}
				}
				return true
			})
			if raw == 0 {
				t.Errorf("%s %s: no raw system call", dir, name)
			}
		}
	}
}

// recvName is a method's receiver type name, "" for a function.
func recvName(fd *ast.FuncDecl) string {
	if fd.Recv == nil || len(fd.Recv.List) == 0 {
		return ""
	}
	typ := fd.Recv.List[0].Type
	if s, ok := typ.(*ast.StarExpr); ok {
		typ = s.X
	}
	if id, ok := typ.(*ast.Ident); ok {
		return id.Name
	}
	return ""
}
