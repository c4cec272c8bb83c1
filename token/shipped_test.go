package token

import (
	"go/scanner"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// repoRoot is the repository root seen from this package's directory.
const repoRoot = ".."

// secretWords mark a literal, or the code around it, as a signing key.
var secretWords = regexp.MustCompile(`(?i)secret|jwt|signing|hmac|change-?me|passw`)

// keyChars are the characters of a key someone would type or generate
// (base64, hex, passphrases with punctuation); JSON, regexps and format
// strings fall outside.
var keyChars = regexp.MustCompile(`^[A-Za-z0-9+/=_.~!@#$^&*-]+$`)

// secretLooking reports whether a literal could be a JWT key: long enough to
// pass the length check, one word of key characters.
func secretLooking(v string) bool {
	return len(v) >= MinSecretLen && keyChars.MatchString(v)
}

// goSecretLiterals scans a Go file's string literals and returns the
// secret-looking ones whose own text or line mentions a secret.
func goSecretLiterals(t *testing.T, path string, src []byte) []string {
	t.Helper()
	fset := token.NewFileSet()
	file := fset.AddFile(path, -1, len(src))
	var s scanner.Scanner
	s.Init(file, src, nil, 0)
	lines := strings.Split(string(src), "\n")
	var out []string
	for {
		pos, tok, lit := s.Scan()
		if tok == token.EOF {
			return out
		}
		if tok != token.STRING {
			continue
		}
		v, err := strconv.Unquote(lit)
		if err != nil || !secretLooking(v) {
			continue
		}
		line := lines[fset.Position(pos).Line-1]
		if secretWords.MatchString(v) || secretWords.MatchString(line) {
			out = append(out, v)
		}
	}
}

// configSecret matches a secret given a value in YAML, env files, shell or
// nginx/Docker config: `JWT_SECRET: v`, `JWT_SECRET=v`, `--secret v`, and
// the default of a compose/shell substitution `${JWT_SECRET:-v}`.
var (
	configSecret  = regexp.MustCompile(`(?i)[A-Z_]*(SECRET|KEY|TOKEN|PASSWORD)[A-Z_]*["']?\s*[:=]\s*["']?([^\s"'}#,]+)`)
	defaultSecret = regexp.MustCompile(`\$\{[A-Za-z_]*(?i:SECRET|KEY)[A-Za-z_]*:?[-=]([^}]*)\}`)
	longWord      = regexp.MustCompile(`[^\s"'` + "`" + `]{32,}`)
)

// identifier is a name or a dotted path of names without digits (a hex or
// base64 key has digits).
var identifier = regexp.MustCompile(`^[A-Za-z_]+(\.[A-Za-z_]+)*$`)

// assignment is a `NAME=`, `NAME:` or `--flag=` in front of a word.
var assignment = regexp.MustCompile(`^-{0,2}[A-Za-z_][A-Za-z_-]*[:=]`)

// stripAssignments removes the assignments in front of a value
// (`--from-literal=JWT_SECRET=value` → `value`), but not a key's own
// base64 padding (`abc==` stays).
func stripAssignments(w string) string {
	for {
		m := assignment.FindStringIndex(w)
		if m == nil {
			return w
		}
		rest := w[m[1]:]
		if rest != "" && strings.Trim(rest, "=") == "" {
			return w
		}
		w = rest
	}
}

// textSecretLiterals returns the secret values a config or doc file gives.
func textSecretLiterals(src []byte) []string {
	var out []string
	seen := map[string]bool{}
	add := func(v string) {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	for _, line := range strings.Split(string(src), "\n") {
		for _, m := range configSecret.FindAllStringSubmatch(line, -1) {
			if v := m[2]; secretLooking(v) && !strings.HasPrefix(v, "$") {
				add(v)
			}
		}
		for _, m := range defaultSecret.FindAllStringSubmatch(line, -1) {
			if v := strings.Trim(m[1], `"'`); secretLooking(v) {
				add(v)
			}
		}
		if secretWords.MatchString(line) {
			for _, w := range longWord.FindAllString(line, -1) {
				w = strings.Trim(stripAssignments(w), ".,;:()[]{}*|<>")
				// In free text, identifiers (TestStagedSecretsVerdict,
				// token.Config.ValidateDeployable) are names, not keys.
				if secretLooking(w) && !strings.Contains(w, "/") && !identifier.MatchString(w) {
					add(w)
				}
			}
		}
	}
	return out
}

// TestShippedSecretsAreRefused: every secret-looking literal in the Go
// sources, the deploy files, the scripts and the docs is in the refused
// list, so whatever key the repository shows cannot run a deployment.
func TestShippedSecretsAreRefused(t *testing.T) {
	found := map[string][]string{} // value → files
	err := filepath.WalkDir(repoRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			switch name {
			case ".git", ".data", "node_modules", "bin", "results":
				return filepath.SkipDir
			}
			return nil
		}
		ext := filepath.Ext(name)
		inDeploy := strings.HasPrefix(filepath.ToSlash(path), repoRoot+"/deploy/")
		var lits []string
		switch {
		case ext == ".go":
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			lits = goSecretLiterals(t, path, src)
		case inDeploy, ext == ".yaml", ext == ".yml", ext == ".sh", ext == ".md", ext == ".conf", ext == ".env", name == "Makefile", name == "Dockerfile":
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			lits = textSecretLiterals(src)
		}
		for _, v := range lits {
			found[v] = append(found[v], path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The scan must see the keys it is meant to catch, or it proves nothing.
	for _, want := range []string{DevSecret, TestSecret} {
		if _, ok := found[want]; !ok {
			t.Errorf("the scan did not find %q in the sources: the scan is broken", want)
		}
	}
	for v, files := range found {
		if !IsShipped([]byte(v)) {
			t.Errorf("secret-looking literal %q in %v is not in shippedSecrets (token/shipped.go): add it there, or take it from the environment", v, files)
		}
	}
}

// TestScannerFindsSecrets: the scan catches the shapes a key is given in.
func TestScannerFindsSecrets(t *testing.T) {
	const k = "abcdefghijklmnopqrstuvwxyz0123456789"
	for _, src := range []string{
		"  JWT_SECRET: " + k,
		"  JWT_SECRET: \"" + k + "\"",
		"JWT_SECRET=" + k + " bin/chatflow api",
		"  JWT_SECRET: ${JWT_SECRET:-" + k + "}",
		"stringData: { JWT_PREVIOUS_SECRET: '" + k + "' }",
		"kubectl create secret generic jwt --from-literal=JWT_SECRET=" + k,
	} {
		if got := textSecretLiterals([]byte(src)); len(got) != 1 || got[0] != k {
			t.Errorf("%q: found %q", src, got)
		}
	}
	for _, src := range []string{
		"  JWT_SECRET: ${JWT_SECRET:?set JWT_SECRET}",
		"  - { name: JWT_SECRET, valueFrom: { secretKeyRef: { name: chatflow-jwt, key: JWT_SECRET } } }",
		`  --from-literal=JWT_PREVIOUS_SECRET="$OLD_KEY" | kubectl apply -f -`,
		`  --from-literal=JWT_SECRET="$(openssl rand -base64 48)"`,
	} {
		if got := textSecretLiterals([]byte(src)); len(got) != 0 {
			t.Errorf("%q: found %q, want nothing", src, got)
		}
	}
	// a hex key in prose is a key; a test name is not
	hex := "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	if got := textSecretLiterals([]byte("the secret is " + hex + ", see TestStagedSecretsCompensatedSignup")); len(got) != 1 || got[0] != hex {
		t.Errorf("prose: found %q", got)
	}
	// base64 padding is part of the key
	for _, src := range []string{"JWT_SECRET=" + k + "==", "openssl output: " + k + "== (secret)"} {
		if got := textSecretLiterals([]byte(src)); len(got) != 1 || got[0] != k+"==" {
			t.Errorf("%q: found %q", src, got)
		}
	}
	goSrc := "package x\nconst jwtKey = \"" + k + "\"\nvar msg = \"" + strings.Repeat("x", 40) + "\"\n"
	if got := goSecretLiterals(t, "x.go", []byte(goSrc)); len(got) != 1 || got[0] != k {
		t.Errorf("go: found %q", got)
	}
}
