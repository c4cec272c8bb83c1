package tests

import (
	"context"
	"crypto/rand"
	"net/http"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/chatflow/chatflow"
	"github.com/chatflow/chatflow/internal/app"
	"github.com/chatflow/chatflow/internal/testenv"
	"github.com/chatflow/chatflow/token"
)

// TestAdminOnlyByGrant: no username makes an admin (there is no list to
// race for); `chatflow admin grant` (app.SetAdmin) does, from the next
// login; a revocation shuts the admin routes at once and the role claim
// goes at the next refresh.
func TestAdminOnlyByGrant(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	ctx := context.Background()
	u := n.SignUp(t, "admin") // a name an admin list would have held

	var me struct {
		Role string `json:"role"`
	}
	if r := acctCall(t, n, "GET", "/api/v1/me", u.Access, nil, &me); r.Status != 200 || me.Role != "user" {
		t.Fatalf("fresh sign-up %s: %d role %q", u.Username, r.Status, me.Role)
	}
	if c := tokenClaims(t, u.Access); c.Role != "user" {
		t.Fatalf("fresh sign-up's token role %q", c.Role)
	}
	wantProblem(t, "fresh sign-up on admin stats", acctCall(t, n, "GET", "/api/v1/admin/stats", u.Access, nil, nil), 403, chatflow.ECodeForbidden)

	if err := app.SetAdmin(ctx, env.Pool, "nobody_"+testenv.Unique(), true); err == nil {
		t.Fatal("granting admin to a user who does not exist succeeded")
	}
	if err := app.SetAdmin(ctx, env.Pool, u.Username, true); err != nil {
		t.Fatal(err)
	}
	// The token issued before the grant still says user.
	wantProblem(t, "pre-grant token on admin stats", acctCall(t, n, "GET", "/api/v1/admin/stats", u.Access, nil, nil), 403, chatflow.ECodeForbidden)
	n.Login(t, &u)
	if c := tokenClaims(t, u.Access); c.Role != "admin" {
		t.Fatalf("token after grant and login: role %q", c.Role)
	}
	if r := acctCall(t, n, "GET", "/api/v1/admin/stats", u.Access, nil, nil); r.Status != 200 {
		t.Fatalf("granted admin on stats: %d %s", r.Status, r.Body)
	}
	if r := acctCall(t, n, "GET", "/api/v1/me", u.Access, nil, &me); r.Status != 200 || me.Role != "admin" {
		t.Fatalf("granted admin's me: %d role %q", r.Status, me.Role)
	}

	if err := app.SetAdmin(ctx, env.Pool, u.Username, false); err != nil {
		t.Fatal(err)
	}
	wantProblem(t, "revoked admin's token on admin stats", acctCall(t, n, "GET", "/api/v1/admin/stats", u.Access, nil, nil), 403, chatflow.ECodeForbidden)
	r, p := refresh(t, n, u.Refresh)
	if r.Status != 200 {
		t.Fatalf("refresh after revoke: %d %s", r.Status, r.Body)
	}
	if c := tokenClaims(t, p.AccessToken); c.Role != "user" {
		t.Fatalf("token refreshed after revoke: role %q", c.Role)
	}
}

// TestAdminForgedTokensRefused: a token with role admin for a real admin,
// signed with any key but the node's (each key published in the repository,
// a random one), is refused with 401 on REST and on the WebSocket upgrade.
// (That a deployment cannot start with a published key at all is
// cmd/chatflow's TestDeployedRolesRefusePublishedKeys.)
func TestAdminForgedTokensRefused(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	boss := n.SignUp(t, "auforge")
	if err := app.SetAdmin(context.Background(), env.Pool, boss.Username, true); err != nil {
		t.Fatal(err)
	}

	// Control: the node's own key with the same claims is accepted.
	if r := acctCall(t, n, "GET", "/api/v1/admin/stats", mintAdminToken(t, []byte(testenv.Secret), boss), nil, nil); r.Status != 200 {
		t.Fatalf("control: token signed with the node's key: %d %s", r.Status, r.Body)
	}
	random := make([]byte, 32)
	_, _ = rand.Read(random)
	keys := map[string][]byte{"random": random}
	for _, k := range token.ShippedSecrets() {
		if k != testenv.Secret {
			keys[k] = []byte(k)
		}
	}
	for name, key := range keys {
		forged := mintAdminToken(t, key, boss)
		for _, path := range []string{"/api/v1/admin/stats", "/api/v1/me"} {
			wantProblem(t, "token signed with "+name+" on "+path, acctCall(t, n, "GET", path, forged, nil, nil), 401, chatflow.ECodeInvalidToken)
		}
		_, resp, err := websocket.DefaultDialer.Dial("ws://"+n.Addr+"/ws?access_token="+forged, nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("ws upgrade with a token signed with %s: %v (%v)", name, err, resp)
		}
	}
}

// mintAdminToken signs a valid admin access token for u with key.
func mintAdminToken(t *testing.T, key []byte, u testenv.User) string {
	t.Helper()
	now := time.Now()
	c := token.Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			ID: uuid.NewString(), Subject: u.ID, Issuer: "chatflow", Audience: jwt.ClaimStrings{"chatflow-clients"},
			IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now.Add(-5 * time.Second)), ExpiresAt: jwt.NewNumericDate(now.Add(time.Minute)),
		},
		Username: u.Username, Role: "admin", Family: uuid.NewString(), Kind: token.KindAccess,
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tokenClaims reads a token's claims without checking it.
func tokenClaims(t *testing.T, raw string) token.Claims {
	t.Helper()
	var c token.Claims
	if _, _, err := jwt.NewParser().ParseUnverified(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c
}
