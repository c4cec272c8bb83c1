// Package token issues and checks the JWTs that guard chatflow: short-lived
// HS256 access tokens and rotating refresh tokens whose families are tracked
// in Redis, so that logout revokes and a replayed refresh token revokes all.
package token

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/chatflow/chatflow"
)

// Token kinds, carried in the "typ" claim so one can never stand in for the other.
const (
	KindAccess  = "access"
	KindRefresh = "refresh"
)

// Config sets the signing key and lifetimes.
type Config struct {
	// Secret signs every new token and verifies tokens.
	Secret []byte
	// PreviousSecret, if set, still verifies tokens (access and refresh)
	// during a key rollover but never signs one: deploy the new key as
	// Secret with the old one here, and drop it once REFRESH_TTL has passed.
	PreviousSecret []byte
	Issuer         string
	Audience       string
	AccessTTL      time.Duration
	RefreshTTL     time.Duration
}

// Claims are chatflow's JWT claims.
type Claims struct {
	jwt.RegisteredClaims
	Username string `json:"name"`
	Role     string `json:"role"`
	Family   string `json:"fid"`
	Kind     string `json:"typ"`
}

// UserID returns the subject.
func (c *Claims) UserID() string { return c.Subject }

// Pair is what login and refresh return.
type Pair struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
}

// Service issues and verifies tokens.
type Service struct {
	cfg Config
	rdb redis.UniversalClient
	now func() time.Time
}

// New returns a token service backed by rdb.
func New(cfg Config, rdb redis.UniversalClient) *Service {
	return &Service{cfg: cfg, rdb: rdb, now: time.Now}
}

// MinSecretLen is the shortest HS256 key accepted.
const MinSecretLen = 32

// DefaultConfig has every setting but the secret, which a deployment must provide.
func DefaultConfig() Config {
	return Config{Issuer: "chatflow", Audience: "chatflow-clients", AccessTTL: 15 * time.Minute, RefreshTTL: 30 * 24 * time.Hour}
}

// Validate refuses a configuration that would make tokens forgeable by
// brute force: a missing or short key. It accepts the keys shipped in this
// repository (tests and `chatflow dev` use them); a deployment checks
// ValidateDeployable instead.
func (c Config) Validate() error {
	if len(c.Secret) < MinSecretLen {
		return fmt.Errorf("JWT secret must be at least %d bytes", MinSecretLen)
	}
	if len(c.PreviousSecret) > 0 && len(c.PreviousSecret) < MinSecretLen {
		return fmt.Errorf("previous JWT secret must be at least %d bytes", MinSecretLen)
	}
	return nil
}

// ValidateDeployable is Validate plus: neither key may be one that appears
// in this repository, because anyone who has read the repository could sign
// tokens (role admin included) with it.
func (c Config) ValidateDeployable() error {
	if len(c.Secret) == 0 {
		return errors.New("JWT secret is not set")
	}
	if err := c.Validate(); err != nil {
		return err
	}
	if IsShipped(c.Secret) {
		return errors.New("JWT secret is a value published in the chatflow repository: anyone could sign tokens with it")
	}
	if IsShipped(c.PreviousSecret) {
		return errors.New("previous JWT secret is a value published in the chatflow repository")
	}
	return nil
}

// Keys share the family as a hash tag so the rotation script touches one Redis Cluster slot.
func refreshKey(fid, jti string) string  { return "rt:{" + fid + "}:" + jti }
func familyRevokedKey(fid string) string { return "rtf:{" + fid + "}" }
func accessRevokedKey(fid, jti string) string {
	return "at:{" + fid + "}:" + jti
}

// Issue creates a new access/refresh pair. An empty family starts a new one (login).
func (s *Service) Issue(ctx context.Context, userID, username, role, family string) (Pair, error) {
	if family == "" {
		family = uuid.NewString()
	}
	now := s.now()
	access, err := s.sign(userID, username, role, family, KindAccess, now, s.cfg.AccessTTL)
	if err != nil {
		return Pair{}, err
	}
	rjti := uuid.NewString()
	refresh, err := s.signWithID(rjti, userID, username, role, family, KindRefresh, now, s.cfg.RefreshTTL)
	if err != nil {
		return Pair{}, err
	}
	if err := s.rdb.HSet(ctx, refreshKey(family, rjti), "uid", userID, "used", "0").Err(); err != nil {
		return Pair{}, err
	}
	if err := s.rdb.Expire(ctx, refreshKey(family, rjti), s.cfg.RefreshTTL).Err(); err != nil {
		return Pair{}, err
	}
	return Pair{AccessToken: access, RefreshToken: refresh, TokenType: "Bearer", ExpiresIn: int(s.cfg.AccessTTL.Seconds())}, nil
}

func (s *Service) sign(userID, username, role, family, kind string, now time.Time, ttl time.Duration) (string, error) {
	return s.signWithID(uuid.NewString(), userID, username, role, family, kind, now, ttl)
}

func (s *Service) signWithID(jti, userID, username, role, family, kind string, now time.Time, ttl time.Duration) (string, error) {
	c := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			ID:        jti,
			Subject:   userID,
			Issuer:    s.cfg.Issuer,
			Audience:  jwt.ClaimStrings{s.cfg.Audience},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now.Add(-5 * time.Second)),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
		Username: username, Role: role, Family: family, Kind: kind,
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(s.cfg.Secret)
}

// keys returns the verification keys: the current one, then the previous.
func (s *Service) keys(*jwt.Token) (any, error) {
	if len(s.cfg.PreviousSecret) == 0 {
		return s.cfg.Secret, nil
	}
	return jwt.VerificationKeySet{Keys: []jwt.VerificationKey{s.cfg.Secret, s.cfg.PreviousSecret}}, nil
}

// parse checks signature (HS256 only, with the current or the previous
// key), issuer, audience, expiry and kind.
func (s *Service) parse(raw, kind string) (*Claims, error) {
	var c Claims
	_, err := jwt.ParseWithClaims(raw, &c, s.keys,
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(s.cfg.Issuer),
		jwt.WithAudience(s.cfg.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(5*time.Second),
		jwt.WithTimeFunc(s.now),
	)
	if err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) {
			return nil, chatflow.Errorf(chatflow.ECodeInvalidToken, "token expired")
		}
		return nil, chatflow.Errorf(chatflow.ECodeInvalidToken, "token rejected: %v", err)
	}
	if c.Kind != kind || c.Subject == "" || c.ID == "" || c.Family == "" {
		return nil, chatflow.Errorf(chatflow.ECodeInvalidToken, "not a %s token", kind)
	}
	return &c, nil
}

// Verify checks an access token, including revocation.
func (s *Service) Verify(ctx context.Context, raw string) (*Claims, error) {
	c, err := s.parse(raw, KindAccess)
	if err != nil {
		return nil, err
	}
	n, err := s.rdb.Exists(ctx, familyRevokedKey(c.Family), accessRevokedKey(c.Family, c.ID)).Result()
	if err != nil {
		return nil, fmt.Errorf("revocation check: %w", err)
	}
	if n > 0 {
		return nil, chatflow.Errorf(chatflow.ECodeInvalidToken, "token revoked")
	}
	return c, nil
}

// rotateScript marks a refresh token used exactly once. A second use of the
// same token means it leaked, so the whole family is revoked.
var rotateScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[2]) == 1 then return 'revoked' end
local used = redis.call('HGET', KEYS[1], 'used')
if not used then return 'unknown' end
if used == '1' then
  redis.call('SET', KEYS[2], '1', 'EX', ARGV[1])
  return 'reused'
end
redis.call('HSET', KEYS[1], 'used', '1')
return 'ok'`)

// Refresh rotates a refresh token into a new pair of the same family.
// Role and username come from lookup so a changed role takes effect. The
// lookup runs before the token is marked used, so that a failing lookup does
// not burn the token and turn the client's retry into a "reuse".
func (s *Service) Refresh(ctx context.Context, raw string, lookup func(ctx context.Context, userID string) (username, role string, err error)) (Pair, error) {
	c, err := s.parse(raw, KindRefresh)
	if err != nil {
		return Pair{}, err
	}
	username, role, err := lookup(ctx, c.Subject)
	if err != nil {
		return Pair{}, err
	}
	res, err := rotateScript.Run(ctx, s.rdb, []string{refreshKey(c.Family, c.ID), familyRevokedKey(c.Family)},
		int(s.cfg.RefreshTTL.Seconds())).Text()
	if err != nil {
		return Pair{}, fmt.Errorf("rotate: %w", err)
	}
	switch res {
	case "ok":
	case "reused":
		return Pair{}, chatflow.Errorf(chatflow.ECodeTokenReused, "refresh token was already used; the session is revoked")
	default:
		return Pair{}, chatflow.Errorf(chatflow.ECodeInvalidToken, "refresh token is not valid")
	}
	return s.Issue(ctx, c.Subject, username, role, c.Family)
}

// Logout revokes the session family of the access token (every refresh
// token of it) and the access token itself.
func (s *Service) Logout(ctx context.Context, access *Claims) error {
	ttl := time.Until(access.ExpiresAt.Time) + 10*time.Second
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, familyRevokedKey(access.Family), "1", s.cfg.RefreshTTL)
		p.Set(ctx, accessRevokedKey(access.Family, access.ID), "1", ttl)
		return nil
	})
	return err
}
