// Package token issues and checks the JWTs that guard chatflow: short-lived
// HS256 access tokens and rotating refresh tokens whose families are tracked
// in Redis, so that logout revokes and a replayed refresh token revokes all.
package token

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
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
	// RefreshGrace is how long after its first use a refresh token may be
	// presented again and get the same new pair (two tabs refreshing at
	// once) instead of counting as a replay; 0 turns the window off.
	RefreshGrace time.Duration
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
	// onRevoke is told about every revoked family, so that the sockets
	// opened with it can be closed on every node.
	onRevoke func(ctx context.Context, userID, family string)
}

// OnRevoke registers fn to be called after a session family is revoked
// (logout, or a replayed refresh token); the api node closes that family's
// WebSockets on every node from it.
func (s *Service) OnRevoke(fn func(ctx context.Context, userID, family string)) { s.onRevoke = fn }

func (s *Service) revoked(ctx context.Context, userID, family string) {
	if s.onRevoke != nil {
		s.onRevoke(ctx, userID, family)
	}
}

// New returns a token service backed by rdb.
func New(cfg Config, rdb redis.UniversalClient) *Service {
	return &Service{cfg: cfg, rdb: rdb, now: time.Now}
}

// MinSecretLen is the shortest HS256 key accepted.
const MinSecretLen = 32

// DefaultConfig has every setting but the secret, which a deployment must provide.
func DefaultConfig() Config {
	return Config{Issuer: "chatflow", Audience: "chatflow-clients", AccessTTL: 15 * time.Minute, RefreshTTL: 30 * 24 * time.Hour, RefreshGrace: 10 * time.Second}
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
	return s.IssueAfter(ctx, s.now(), userID, username, role, family)
}

// IssueAfter is Issue for a login whose credentials were checked at
// checkedAt: if every session of the user was revoked since (RevokeUser, a
// password change or a disabled account), no session is issued. A new
// family is recorded with its user in the same script that reads the
// user's revocation time, so a RevokeUser either sees the family or the
// login sees the revocation; no session slips between the two.
func (s *Service) IssueAfter(ctx context.Context, checkedAt time.Time, userID, username, role, family string) (Pair, error) {
	if family == "" {
		family = uuid.NewString()
		res, err := addFamilyScript.Run(ctx, s.rdb, []string{userFamiliesKey(userID), userRevokedKey(userID)},
			family, int(s.cfg.RefreshTTL.Seconds())).Int64()
		if err != nil {
			return Pair{}, fmt.Errorf("record session: %w", err)
		}
		if res >= checkedAt.UnixMilli() {
			// nothing was signed for the family: refusing is enough
			return Pair{}, chatflow.Errorf(chatflow.ECodeInvalidCredentials, "the account's sessions were revoked while logging in; log in again")
		}
	}
	rjti := uuid.NewString()
	pair, err := s.pair(userID, username, role, family, uuid.NewString(), rjti, s.now())
	if err != nil {
		return Pair{}, err
	}
	if err := s.rdb.HSet(ctx, refreshKey(family, rjti), "uid", userID, "used", "0").Err(); err != nil {
		return Pair{}, err
	}
	if err := s.rdb.Expire(ctx, refreshKey(family, rjti), s.cfg.RefreshTTL).Err(); err != nil {
		return Pair{}, err
	}
	return pair, nil
}

func userFamiliesKey(uid string) string { return "uf:{" + uid + "}" }
func userRevokedKey(uid string) string  { return "ur:{" + uid + "}" }

// addFamilyScript records a session family of a user and answers the time
// (unix ms) of the user's last RevokeUser, 0 if none.
// KEYS: the user's families, the user's revocation time; ARGV: family, ttl (s)
var addFamilyScript = redis.NewScript(`
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return tonumber(redis.call('GET', KEYS[2]) or '0')`)

// revokeUserScript records the time of a RevokeUser and answers the user's
// session families, forgetting them all except the one kept.
// KEYS: the user's families, the user's revocation time; ARGV: now (unix ms), ttl (s), kept family
var revokeUserScript = redis.NewScript(`
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
local fams = redis.call('SMEMBERS', KEYS[1])
redis.call('DEL', KEYS[1])
if ARGV[3] ~= '' then redis.call('SADD', KEYS[1], ARGV[3]); redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return fams`)

// RevokeUser revokes every session of a user except the family keep (""
// for none): their refresh tokens stop rotating and their access tokens
// stop verifying at once, and OnRevoke closes their sockets on every node.
// A login whose credentials were checked before the call gets no session
// (IssueAfter).
func (s *Service) RevokeUser(ctx context.Context, userID, keep string) error {
	fams, err := revokeUserScript.Run(ctx, s.rdb, []string{userFamiliesKey(userID), userRevokedKey(userID)},
		s.now().UnixMilli(), int(s.cfg.RefreshTTL.Seconds()), keep).StringSlice()
	if err != nil {
		return fmt.Errorf("revoke sessions: %w", err)
	}
	fams = slices.DeleteFunc(fams, func(f string) bool { return f == keep })
	return s.revokeFamilies(ctx, userID, fams)
}

func (s *Service) revokeFamilies(ctx context.Context, userID string, fams []string) error {
	if len(fams) == 0 {
		return nil
	}
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, f := range fams {
			p.Set(ctx, familyRevokedKey(f), "1", s.cfg.RefreshTTL)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("revoke sessions: %w", err)
	}
	for _, f := range fams {
		s.revoked(ctx, userID, f)
	}
	return nil
}

// pair signs an access/refresh pair. HS256 is deterministic: the same
// claims (ids and issue time included) give the same tokens, which is what
// lets concurrent refreshes in the grace window answer the same pair.
func (s *Service) pair(userID, username, role, family, ajti, rjti string, now time.Time) (Pair, error) {
	access, err := s.signWithID(ajti, userID, username, role, family, KindAccess, now, s.cfg.AccessTTL)
	if err != nil {
		return Pair{}, err
	}
	refresh, err := s.signWithID(rjti, userID, username, role, family, KindRefresh, now, s.cfg.RefreshTTL)
	if err != nil {
		return Pair{}, err
	}
	return Pair{AccessToken: access, RefreshToken: refresh, TokenType: "Bearer", ExpiresIn: int(s.cfg.AccessTTL.Seconds())}, nil
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
	revoked, err := s.Revoked(ctx, c.Family, c.ID)
	if err != nil {
		return nil, err
	}
	if revoked {
		return nil, chatflow.Errorf(chatflow.ECodeInvalidToken, "token revoked")
	}
	return c, nil
}

// Revoked reports whether the access token jti of family, verified
// earlier, has been revoked since (its session logged out or its family
// revoked by a replayed refresh token).
func (s *Service) Revoked(ctx context.Context, family, jti string) (bool, error) {
	n, err := s.rdb.Exists(ctx, familyRevokedKey(family), accessRevokedKey(family, jti)).Result()
	if err != nil {
		return false, fmt.Errorf("revocation check: %w", err)
	}
	return n > 0, nil
}

// rotationNS derives the ids of the pair a refresh token rotates into from
// the token's own id, so every answer for one rotation is the same pair.
var rotationNS = uuid.MustParse("5f0d7a5e-3c1b-4c8e-9a59-2f7b0f6f1d10")

// rotateScript marks a refresh token used exactly once and creates the
// refresh token it rotates into. Presenting a used token again within the
// grace window (ARGV[3] ms after its first use) answers that first use's
// time and claims, so the caller signs the very same pair; after the window
// a second use means the token leaked, and the whole family is revoked.
//
// KEYS: the token's record, family revoked, the record of the token it rotates into
// ARGV: refresh ttl (s), now (unix ms), grace (ms), username, role
var rotateScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[2]) == 1 then return {'revoked'} end
local used = redis.call('HGET', KEYS[1], 'used')
if not used then return {'unknown'} end
if used == '1' then
  local at = redis.call('HGET', KEYS[1], 'at')
  local grace = tonumber(ARGV[3])
  if at and grace > 0 and tonumber(ARGV[2]) - tonumber(at) <= grace then
    return {'grace', at, redis.call('HGET', KEYS[1], 'name') or '', redis.call('HGET', KEYS[1], 'role') or ''}
  end
  redis.call('SET', KEYS[2], '1', 'EX', ARGV[1])
  return {'reused'}
end
redis.call('HSET', KEYS[1], 'used', '1', 'at', ARGV[2], 'name', ARGV[4], 'role', ARGV[5])
redis.call('HSET', KEYS[3], 'uid', redis.call('HGET', KEYS[1], 'uid') or '', 'used', '0')
redis.call('EXPIRE', KEYS[3], ARGV[1])
return {'ok', ARGV[2], ARGV[4], ARGV[5]}`)

// Refresh rotates a refresh token into a new pair of the same family.
// Role and username come from lookup so a changed role takes effect. The
// lookup runs before the token is marked used, so that a failing lookup does
// not burn the token and turn the client's retry into a "reuse".
//
// Concurrent refreshes with the same token within RefreshGrace of its first
// use (two tabs of one browser) all get the same new pair. A use after the
// window revokes the family, and the revocation is reported to OnRevoke so
// that every socket of the family is closed.
func (s *Service) Refresh(ctx context.Context, raw string, lookup func(ctx context.Context, userID string) (username, role string, err error)) (Pair, error) {
	c, err := s.parse(raw, KindRefresh)
	if err != nil {
		return Pair{}, err
	}
	username, role, err := lookup(ctx, c.Subject)
	if err != nil {
		return Pair{}, err
	}
	ajti := uuid.NewSHA1(rotationNS, []byte("access:"+c.ID)).String()
	rjti := uuid.NewSHA1(rotationNS, []byte("refresh:"+c.ID)).String()
	res, err := rotateScript.Run(ctx, s.rdb, []string{refreshKey(c.Family, c.ID), familyRevokedKey(c.Family), refreshKey(c.Family, rjti)},
		int(s.cfg.RefreshTTL.Seconds()), s.now().UnixMilli(), s.cfg.RefreshGrace.Milliseconds(), username, role).StringSlice()
	if err != nil {
		return Pair{}, fmt.Errorf("rotate: %w", err)
	}
	switch res[0] {
	case "ok", "grace":
	case "reused":
		s.revoked(ctx, c.Subject, c.Family)
		return Pair{}, chatflow.Errorf(chatflow.ECodeTokenReused, "refresh token was already used; the session is revoked")
	default:
		return Pair{}, chatflow.Errorf(chatflow.ECodeInvalidToken, "refresh token is not valid")
	}
	if len(res) < 4 {
		return Pair{}, fmt.Errorf("rotate: unexpected answer %q", res)
	}
	at, err := strconv.ParseInt(res[1], 10, 64)
	if err != nil {
		return Pair{}, fmt.Errorf("rotate: time %q: %w", res[1], err)
	}
	return s.pair(c.Subject, res[2], res[3], c.Family, ajti, rjti, time.UnixMilli(at))
}

// Logout revokes the session family of the access token (every refresh
// token of it) and the access token itself, and reports the revocation to
// OnRevoke.
func (s *Service) Logout(ctx context.Context, access *Claims) error {
	ttl := time.Until(access.ExpiresAt.Time) + 10*time.Second
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, familyRevokedKey(access.Family), "1", s.cfg.RefreshTTL)
		p.Set(ctx, accessRevokedKey(access.Family, access.ID), "1", ttl)
		return nil
	})
	if err != nil {
		return err
	}
	s.revoked(ctx, access.Subject, access.Family)
	return nil
}
