package token

import "bytes"

// DevSecret is the signing key of `chatflow dev` when JWT_SECRET is unset
// and TestSecret the key of the in-process test nodes (internal/testenv).
// Both are public: no deployment may use them (ValidateDeployable).
const (
	DevSecret  = "chatflow-dev-secret-change-me-0123456789"
	TestSecret = "chatflow-test-secret-0123456789abcdef"
)

// shippedSecrets is every JWT key that appears, or has appeared, in this
// repository: in code, tests, docs or deploy files. A deployment that
// starts with one of them is refused. TestShippedSecretsAreRefused greps the
// repository for secret-looking literals and fails on any not listed here,
// so a new one cannot be added without also being refused.
var shippedSecrets = []string{
	DevSecret,
	TestSecret,
	// deploy/compose.yaml's default for ${JWT_SECRET} (removed).
	"change-me-to-32-bytes-or-more-please!!",
	// deploy/k8s/chatflow.yaml's Secret (removed).
	"CHANGE-ME-32-BYTES-OR-MORE-0123456789",
	// tests/auth_test.go: the "other key" a forged token is signed with.
	"some-other-secret-0123456789abcdef",
}

// IsShipped reports whether key is one of the keys published in this
// repository (surrounding whitespace ignored).
func IsShipped(key []byte) bool {
	k := bytes.TrimSpace(key)
	if len(k) == 0 {
		return false
	}
	for _, s := range shippedSecrets {
		if string(k) == s {
			return true
		}
	}
	return false
}

// ShippedSecrets returns a copy of the refused keys, for tests.
func ShippedSecrets() []string { return append([]string(nil), shippedSecrets...) }
