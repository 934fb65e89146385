package authserver

import (
	"go/ast"
	"go/parser"
	"go/token"
	"testing"
)

// TestClientSecretComparisonIsConstantTime pins, in the source, how client
// secrets are compared (issue 16 item 5), since a timing test would be
// flaky: password.VerifySecret hashes the presented secret with SHA-256 and
// compares the fixed-length encodings with subtle.ConstantTimeCompare
// (never == or bytes.Equal), and authenticateClient checks every registered
// hash without leaving the loop early, so the time taken does not tell
// which secret matched. (client_secret_jwt signatures are checked by
// go-jose, which compares HMACs with hmac.Equal.)
func TestClientSecretComparisonIsConstantTime(t *testing.T) {
	fset := token.NewFileSet()
	verify := findFunc(t, fset, "../internal/password/password.go", "VerifySecret")
	var ctCompare, sha, plainCompare bool
	ast.Inspect(verify, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.SelectorExpr:
			if id, ok := n.X.(*ast.Ident); ok {
				switch id.Name + "." + n.Sel.Name {
				case "subtle.ConstantTimeCompare":
					ctCompare = true
				case "sha256.Sum256":
					sha = true
				case "bytes.Equal", "strings.EqualFold":
					plainCompare = true
				}
			}
		case *ast.BinaryExpr:
			if n.Op == token.EQL || n.Op == token.NEQ {
				if lit, ok := n.Y.(*ast.BasicLit); !ok || lit.Kind != token.INT {
					plainCompare = true
				}
			}
		}
		return true
	})
	if !ctCompare || !sha || plainCompare {
		t.Errorf("password.VerifySecret: subtle.ConstantTimeCompare %v, sha256 %v, a plain comparison %v; want true, true, false", ctCompare, sha, plainCompare)
	}

	auth := findFunc(t, fset, "clientauth.go", "authenticateClient")
	found := false
	ast.Inspect(auth, func(n ast.Node) bool {
		r, ok := n.(*ast.RangeStmt)
		if !ok {
			return true
		}
		if sel, ok := r.X.(*ast.SelectorExpr); !ok || sel.Sel.Name != "SecretHashes" {
			return true
		}
		found = true
		ast.Inspect(r.Body, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.ReturnStmt:
				t.Error("authenticateClient returns from inside the loop over SecretHashes")
			case *ast.BranchStmt:
				if n.Tok == token.BREAK {
					t.Error("authenticateClient breaks out of the loop over SecretHashes")
				}
			}
			return true
		})
		return false
	})
	if !found {
		t.Error("authenticateClient has no loop over c.SecretHashes")
	}
}

func findFunc(t *testing.T, fset *token.FileSet, path, name string) *ast.FuncDecl {
	t.Helper()
	f, err := parser.ParseFile(fset, path, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range f.Decls {
		if fd, ok := d.(*ast.FuncDecl); ok && fd.Name.Name == name {
			return fd
		}
	}
	t.Fatalf("%s: no func %s", path, name)
	return nil
}
