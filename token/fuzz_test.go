package token

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

// FuzzParse feeds arbitrary strings to the token parser (the step Verify
// and Refresh run before Redis). It must never panic, and whatever it
// accepts must be an HS256 token whose signature is valid under the current
// or the previous key: no other algorithm (none, HS512, RS256, ...) and no
// other key gets through, whatever the header, payload or encoding says.
//
//	go test ./token -run '^$' -fuzz FuzzParse -fuzztime 60s
func FuzzParse(f *testing.F) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	// Random keys: a fixed one would be a key published in the repository.
	cur, prev := make([]byte, 32), make([]byte, 32)
	_, _ = rand.Read(cur)
	_, _ = rand.Read(prev)
	cfg := Config{
		Secret: cur, PreviousSecret: prev, Issuer: "chatflow", Audience: "chatflow-clients",
		AccessTTL: time.Minute, RefreshTTL: time.Hour,
	}
	s := &Service{cfg: cfg, now: func() time.Time { return now }}

	claims := func(kind string) Claims {
		return Claims{
			RegisteredClaims: jwt.RegisteredClaims{
				ID: uuid.NewString(), Subject: uuid.NewString(), Issuer: cfg.Issuer, Audience: jwt.ClaimStrings{cfg.Audience},
				IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Minute)),
			},
			Username: "u", Role: "admin", Family: uuid.NewString(), Kind: kind,
		}
	}
	sign := func(m jwt.SigningMethod, key any, c Claims) string {
		raw, err := jwt.NewWithClaims(m, c).SignedString(key)
		if err != nil {
			f.Fatal(err)
		}
		return raw
	}
	good := sign(jwt.SigningMethodHS256, cfg.Secret, claims(KindAccess))
	f.Add(good)
	f.Add(sign(jwt.SigningMethodHS256, cfg.PreviousSecret, claims(KindRefresh)))
	f.Add(sign(jwt.SigningMethodHS256, []byte(DevSecret), claims(KindAccess)))
	f.Add(sign(jwt.SigningMethodHS512, cfg.Secret, claims(KindAccess)))
	f.Add(sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(KindAccess)))
	parts := strings.Split(good, ".")
	for _, hdr := range []string{`{"alg":"none"}`, `{"alg":"HS256","typ":"JWT","kid":"../../x"}`, `{"alg":"RS256"}`, `{"alg":["HS256"]}`, `{}`} {
		f.Add(base64.RawURLEncoding.EncodeToString([]byte(hdr)) + "." + parts[1] + "." + parts[2])
	}
	f.Add(parts[0] + "." + parts[1] + ".")
	f.Add(parts[0] + "." + parts[1])
	f.Add("")
	f.Add("..")
	f.Add("abc.def.ghi")
	f.Add(strings.Repeat("a.", 100))

	f.Fuzz(func(t *testing.T, raw string) {
		for _, kind := range []string{KindAccess, KindRefresh} {
			c, err := s.parse(raw, kind)
			if err != nil {
				if c != nil {
					t.Fatalf("parse returned claims with an error")
				}
				continue
			}
			if c.Kind != kind || c.Subject == "" || c.ID == "" || c.Family == "" {
				t.Fatalf("accepted a token with claims %+v as %s", c, kind)
			}
			i := strings.IndexByte(raw, '.')
			hdr, herr := base64.RawURLEncoding.DecodeString(raw[:i])
			var h map[string]any
			if herr != nil || json.Unmarshal(hdr, &h) != nil || h["alg"] != "HS256" {
				t.Fatalf("accepted a token whose header is %q", hdr)
			}
			if !signedWith(raw, cfg.Secret) && !signedWith(raw, cfg.PreviousSecret) {
				t.Fatalf("accepted %q, which neither key signed", raw)
			}
		}
	})
}
