package localserver

import (
	"go/ast"
	"go/parser"
	"go/token"
	"strings"
	"testing"
)

func TestTokenMatches(t *testing.T) {
	s := newServer(&fakeCache{})
	for _, tt := range []struct {
		got  string
		want bool
	}{
		{testToken, true},
		{"", false},
		{testToken[:len(testToken)-1], false},
		{testToken + "x", false},
		{"X" + testToken[1:], false},
	} {
		if got := s.tokenMatches(tt.got); got != tt.want {
			t.Errorf("tokenMatches(%q) = %v, want %v", tt.got, got, tt.want)
		}
	}
	empty := newServer(&fakeCache{}, func(o *Options) { o.Token = "" })
	if empty.tokenMatches("") {
		t.Error("a server without a token accepted the empty token")
	}
}

// TestTokenCompareIsConstantTime checks the source: the token is compared
// only through crypto/subtle, on fixed-length digests, never with == or a
// function that returns at the first difference. (Timing itself can't be
// measured reliably in a test; the code's shape can be checked.)
func TestTokenCompareIsConstantTime(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "server.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var body *ast.BlockStmt
	ast.Inspect(f, func(n ast.Node) bool {
		if fd, ok := n.(*ast.FuncDecl); ok && fd.Name.Name == "tokenMatches" {
			body = fd.Body
		}
		return true
	})
	if body == nil {
		t.Fatal("server.go has no tokenMatches")
	}
	var subtleCall, digest bool
	ast.Inspect(body, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.SelectorExpr:
			if x, ok := n.X.(*ast.Ident); ok {
				subtleCall = subtleCall || x.Name == "subtle" && n.Sel.Name == "ConstantTimeCompare"
				digest = digest || x.Name == "sha256" && n.Sel.Name == "Sum256"
				if x.Name == "bytes" || x.Name == "strings" {
					t.Errorf("%s: tokenMatches calls %s.%s", fset.Position(n.Pos()), x.Name, n.Sel.Name)
				}
			}
		case *ast.BinaryExpr:
			if n.Op == token.EQL || n.Op == token.NEQ {
				if lit, ok := n.Y.(*ast.BasicLit); !ok || lit.Kind != token.INT {
					t.Errorf("%s: tokenMatches compares with %s", fset.Position(n.Pos()), n.Op)
				}
			}
		}
		return true
	})
	if !subtleCall || !digest {
		t.Errorf("tokenMatches: subtle.ConstantTimeCompare %v, sha256.Sum256 %v; want both", subtleCall, digest)
	}
	// And the handler checks the token through tokenMatches alone.
	ast.Inspect(f, func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok && sel.Sel.Name == "token" {
			if fd := enclosingFunc(f, sel.Pos()); fd != "New" && fd != "tokenMatches" {
				t.Errorf("%s: %s uses the token directly", fset.Position(sel.Pos()), fd)
			}
		}
		return true
	})
}

func enclosingFunc(f *ast.File, pos token.Pos) string {
	for _, d := range f.Decls {
		if fd, ok := d.(*ast.FuncDecl); ok && fd.Pos() <= pos && pos < fd.End() {
			return fd.Name.Name
		}
	}
	return ""
}

// TestTokenMatchesAllocatesNothing: a Lambda session token is about 1,100
// characters, and the check runs on every request.
func TestTokenMatchesAllocatesNothing(t *testing.T) {
	long := strings.Repeat("t", 1100)
	s := newServer(&fakeCache{}, func(o *Options) { o.Token = long })
	for _, got := range []string{long, long[:1099] + "x", "short"} {
		if n := testing.AllocsPerRun(100, func() { s.tokenMatches(got) }); n != 0 {
			t.Errorf("tokenMatches of %d bytes: %.0f allocations, want 0", len(got), n)
		}
	}
	if !s.tokenMatches(long) || s.tokenMatches(long[:1099]+"x") {
		t.Error("the long token is not matched exactly")
	}
}
