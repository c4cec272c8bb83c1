package main

import (
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/chatflow/chatflow/token"
)

func randomKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// clearEnv unsets what loadConfig reads about keys, for one test.
func clearEnv(t *testing.T) {
	for _, k := range []string{"JWT_SECRET", "JWT_PREVIOUS_SECRET", "ADMIN_USERNAMES", "WS_ORIGINS", "HTTP_ADDR", "METRICS_ADDR"} {
		t.Setenv(k, "")
	}
}

// TestDeployedRolesRefusePublishedKeys: api, worker and migrate do not
// start with a missing or short JWT_SECRET, nor with any key published in
// the repository (the dev default, the test key, the old deploy defaults):
// a token forged with such a key never meets a node that accepts it.
func TestDeployedRolesRefusePublishedKeys(t *testing.T) {
	clearEnv(t)
	bad := map[string][2]string{ // name → JWT_SECRET, JWT_PREVIOUS_SECRET
		"missing": {"", ""},
		"short":   {"too-short-0123456789", ""},
	}
	for _, k := range token.ShippedSecrets() {
		bad["published "+k] = [2]string{k, ""}
		bad["published previous "+k] = [2]string{randomKey(), k}
	}
	for name, v := range bad {
		t.Setenv("JWT_SECRET", v[0])
		t.Setenv("JWT_PREVIOUS_SECRET", v[1])
		if _, err := loadConfig(keysDeployed); err == nil {
			t.Errorf("%s: deployed role starts", name)
		} else if !strings.Contains(err.Error(), "JWT_SECRET") {
			t.Errorf("%s: error %q does not name the variable", name, err)
		}
	}

	cur, prev := randomKey(), randomKey()
	t.Setenv("JWT_SECRET", cur)
	t.Setenv("JWT_PREVIOUS_SECRET", prev)
	c, err := loadConfig(keysDeployed)
	if err != nil {
		t.Fatalf("random keys refused: %v", err)
	}
	if string(c.Token.Secret) != cur || string(c.Token.PreviousSecret) != prev {
		t.Fatal("keys not taken from the environment")
	}
}

// TestDevRoleMayUseDevKey: `chatflow dev` runs with the dev default when
// JWT_SECRET is unset (run warns), and listens on loopback by default.
func TestDevRoleMayUseDevKey(t *testing.T) {
	clearEnv(t)
	c, err := loadConfig(keysDev)
	if err != nil {
		t.Fatal(err)
	}
	if string(c.Token.Secret) != DevJWTSecret || !token.IsShipped(c.Token.Secret) {
		t.Fatalf("dev key = %q", c.Token.Secret)
	}
	if c.HTTPAddr != "127.0.0.1:8080" || c.MetricsAddr != "127.0.0.1:9090" {
		t.Fatalf("default listeners %s, %s; want loopback", c.HTTPAddr, c.MetricsAddr)
	}
	t.Setenv("JWT_SECRET", "short")
	if _, err := loadConfig(keysDev); err == nil {
		t.Fatal("dev accepts a short key")
	}
	// admin neither signs nor verifies: it needs no key.
	t.Setenv("JWT_SECRET", "")
	if _, err := loadConfig(keysUnused); err != nil {
		t.Fatalf("admin command needs a key: %v", err)
	}
}

// TestRemovedAndNewVariables: ADMIN_USERNAMES is refused (it no longer
// grants anything, and silently ignoring it would hide that); WS_ORIGINS is
// a comma-separated list.
func TestRemovedAndNewVariables(t *testing.T) {
	clearEnv(t)
	t.Setenv("JWT_SECRET", randomKey())
	t.Setenv("ADMIN_USERNAMES", "alice")
	if _, err := loadConfig(keysDeployed); err == nil || !strings.Contains(err.Error(), "chatflow admin grant") {
		t.Fatalf("ADMIN_USERNAMES: %v", err)
	}
	t.Setenv("ADMIN_USERNAMES", "")
	t.Setenv("WS_ORIGINS", " https://a.example ,https://b.example:8443,, ")
	c, err := loadConfig(keysDeployed)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.API.WSOrigins, "|") != "https://a.example|https://b.example:8443" {
		t.Fatalf("WS_ORIGINS = %q", c.API.WSOrigins)
	}
}

// TestUploadSweepVariables: the sweep's TTL and schedule come from the
// environment, and a TTL no longer than the pre-signed URLs' lifetime is
// refused (a sweep would expire an upload whose PUT URL still works).
func TestUploadSweepVariables(t *testing.T) {
	clearEnv(t)
	t.Setenv("JWT_SECRET", randomKey())
	t.Setenv("UPLOAD_PENDING_TTL", "2h")
	t.Setenv("UPLOAD_SWEEP_EVERY", "3m")
	c, err := loadConfig(keysDeployed)
	if err != nil {
		t.Fatal(err)
	}
	if c.Activities.UploadPendingTTL != 2*time.Hour || c.Workers.SweepEvery != 3*time.Minute {
		t.Fatalf("UPLOAD_PENDING_TTL %s, UPLOAD_SWEEP_EVERY %s", c.Activities.UploadPendingTTL, c.Workers.SweepEvery)
	}
	for _, v := range [][2]string{{"5m", "5m"}, {"10m", "1h"}} { // ttl, url ttl
		t.Setenv("UPLOAD_PENDING_TTL", v[0])
		t.Setenv("S3_URL_TTL", v[1])
		if _, err := loadConfig(keysDeployed); err == nil || !strings.Contains(err.Error(), "UPLOAD_PENDING_TTL") {
			t.Fatalf("UPLOAD_PENDING_TTL=%s with S3_URL_TTL=%s: %v", v[0], v[1], err)
		}
	}
}
