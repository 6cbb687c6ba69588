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
	// The padding's zeros are not the token's: a token is matched only at its length.
	for _, tok := range []string{"abc", "abc\x00", strings.Repeat("z", tokenPad), strings.Repeat("z", tokenPad+1)} {
		s := newServer(&fakeCache{}, func(o *Options) { o.Token = tok })
		for _, got := range []string{tok, tok + "\x00", tok[:len(tok)-1], tok + "\x00\x00\x00\x00\x00\x00\x00\x00", strings.Repeat("\x00", 2*tokenPad+8)} {
			if want := got == tok; s.tokenMatches(got) != want {
				t.Errorf("token of %d bytes: tokenMatches(%d bytes) = %v, want %v", len(tok), len(got), !want, want)
			}
		}
	}
	empty := newServer(&fakeCache{}, func(o *Options) { o.Token = "" })
	if empty.tokenMatches("") {
		t.Error("a server without a token accepted the empty token")
	}
}

// TestTokenCompareIsConstantTime checks the source: the token is compared
// through crypto/subtle and a loop over the whole padded copy that only
// ORs differences, never with == or a function that returns at the first
// difference. (Timing itself can't be
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
	var subtleCall bool
	ast.Inspect(body, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.SelectorExpr:
			if x, ok := n.X.(*ast.Ident); ok {
				subtleCall = subtleCall || x.Name == "subtle" && n.Sel.Name == "ConstantTimeEq"
				if x.Name == "bytes" || x.Name == "strings" {
					t.Errorf("%s: tokenMatches calls %s.%s", fset.Position(n.Pos()), x.Name, n.Sel.Name)
				}
			}
		case *ast.IfStmt, *ast.SwitchStmt, *ast.BranchStmt:
			// The one early return is on got's length against the padding's.
			if is, ok := n.(*ast.IfStmt); !ok || !isLenOverPadding(is.Cond) {
				t.Errorf("%s: tokenMatches branches", fset.Position(n.Pos()))
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
	if !subtleCall {
		t.Error("tokenMatches does not decide through subtle.ConstantTimeEq")
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

// isLenOverPadding reports whether cond is len(got) > len(w).
func isLenOverPadding(cond ast.Expr) bool {
	b, ok := cond.(*ast.BinaryExpr)
	if !ok || b.Op != token.GTR {
		return false
	}
	arg := func(e ast.Expr) string {
		if c, ok := e.(*ast.CallExpr); ok && len(c.Args) == 1 {
			if f, ok := c.Fun.(*ast.Ident); ok && f.Name == "len" {
				if a, ok := c.Args[0].(*ast.Ident); ok {
					return a.Name
				}
			}
		}
		return ""
	}
	return arg(b.X) == "got" && arg(b.Y) == "w"
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
