package token

import (
	"context"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/chatflow/chatflow"
)

// rotated returns a service whose current key is new and whose previous key
// is old's key, sharing old's Redis: the state after a key rollover.
func rotated(t *testing.T, old *Service) *Service {
	t.Helper()
	cfg := testConfig(t)
	cfg.PreviousSecret = old.cfg.Secret
	return New(cfg, old.rdb)
}

// TestRotationPreviousKeyVerifies: during a rollover, access and refresh
// tokens signed with JWT_PREVIOUS_SECRET still work, and everything issued
// from then on is signed with the current key only.
func TestRotationPreviousKeyVerifies(t *testing.T) {
	ctx := context.Background()
	old := newService(t)
	uid := user()
	before := issue(t, old, uid)

	s := rotated(t, old)
	if c := verifyOK(t, s, before.AccessToken); c.Subject != uid {
		t.Fatalf("old access token after rollover: sub %q", c.Subject)
	}
	// The old refresh token rotates into a pair signed with the new key.
	after, err := s.Refresh(ctx, before.RefreshToken, fixedLookup("alice", "user"))
	if err != nil {
		t.Fatalf("refresh with a token signed by the previous key: %v", err)
	}
	for name, raw := range map[string]string{"access": after.AccessToken, "refresh": after.RefreshToken} {
		if signedWith(raw, old.cfg.Secret) || !signedWith(raw, s.cfg.Secret) {
			t.Errorf("new %s token is not signed with the current key only", name)
		}
	}
	verifyOK(t, s, after.AccessToken)
	// A service that has dropped the previous key no longer accepts the old token...
	cfg := s.cfg
	cfg.PreviousSecret = nil
	done := New(cfg, s.rdb)
	wantInvalid(t, done, before.AccessToken, "old access token once the previous key is dropped")
	// ...and the old node, which never knew the new key, refuses new tokens.
	wantInvalid(t, old, after.AccessToken, "token of the new key on a node with the old key only")
	// Rotation keeps reuse detection: the old refresh token was used once.
	if _, err := s.Refresh(ctx, before.RefreshToken, fixedLookup("alice", "user")); err == nil {
		t.Fatal("the old refresh token worked twice")
	} else {
		wantCode(t, err, chatflow.ECodeTokenReused, "reused refresh token after rollover")
	}
}

// TestRotationOtherKeysRefused: with two keys configured, a token signed
// with any third key, or with the previous key under another algorithm, is
// refused.
func TestRotationOtherKeysRefused(t *testing.T) {
	old := newService(t)
	s := rotated(t, old)
	c := validClaims(s, user())
	for _, key := range [][]byte{testConfig(t).Secret, []byte(DevSecret), []byte(TestSecret)} {
		raw, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		wantInvalid(t, s, raw, "token signed with a third key")
	}
	raw, err := jwt.NewWithClaims(jwt.SigningMethodHS512, c).SignedString(old.cfg.Secret)
	if err != nil {
		t.Fatal(err)
	}
	wantInvalid(t, s, raw, "HS512 token signed with the previous key")
	raw, err = jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(old.cfg.Secret)
	if err != nil {
		t.Fatal(err)
	}
	verifyOK(t, s, raw) // control
}

// signedWith reports whether raw's HS256 signature is valid under key.
func signedWith(raw string, key []byte) bool {
	i := strings.LastIndexByte(raw, '.')
	if i < 0 {
		return false
	}
	sig, err := jwt.NewParser().DecodeSegment(raw[i+1:])
	if err != nil {
		return false
	}
	return jwt.SigningMethodHS256.Verify(raw[:i], sig, key) == nil
}

// TestValidateDeployable: a deployment refuses a missing, short or shipped
// key (current or previous); tests and `chatflow dev` (Validate) only
// refuse missing or short ones.
func TestValidateDeployable(t *testing.T) {
	good := testConfig(t)
	if err := good.ValidateDeployable(); err != nil {
		t.Fatalf("random 32-byte key refused: %v", err)
	}
	withPrev := good
	withPrev.PreviousSecret = testConfig(t).Secret
	if err := withPrev.ValidateDeployable(); err != nil {
		t.Fatalf("random previous key refused: %v", err)
	}
	bad := map[string]Config{
		"missing":        {},
		"short":          {Secret: []byte(strings.Repeat("k", MinSecretLen-1))},
		"short previous": {Secret: good.Secret, PreviousSecret: []byte("short")},
	}
	for _, s := range ShippedSecrets() {
		bad["shipped "+s] = Config{Secret: []byte(s)}
		bad["shipped with a newline "+s] = Config{Secret: []byte(s + "\n")}
		bad["shipped previous "+s] = Config{Secret: good.Secret, PreviousSecret: []byte(s)}
	}
	for name, c := range bad {
		if err := c.ValidateDeployable(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := (Config{Secret: []byte(TestSecret)}).Validate(); err != nil {
		t.Errorf("Validate refuses the test key: %v", err)
	}
	if err := (Config{Secret: []byte("short")}).Validate(); err == nil {
		t.Error("Validate accepts a short key")
	}
}
