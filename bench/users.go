package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"
)

type user struct {
	ID       string `json:"id"`
	Username string `json:"username"`
	Password string `json:"password"`
	Access   string `json:"-"`
	node     string
}

// signupUsers registers n users through the saga and logs them in,
// recording saga and login latency. With o.UsersFile, users made by earlier
// runs are logged in instead and new ones are appended to the file.
func signupUsers(ctx context.Context, o Options, n int, r *Result, key string) ([]user, error) {
	return cachedUsers(ctx, o, n, r, key, true)
}

// cachedUsers is signupUsers; reset allows starting the file over once.
func cachedUsers(ctx context.Context, o Options, n int, r *Result, key string, reset bool) ([]user, error) {
	if o.UsersFile == "" {
		return signupFresh(ctx, o, n, r, key)
	}
	var known []user
	if raw, err := os.ReadFile(o.UsersFile); err == nil {
		_ = json.Unmarshal(raw, &known)
	}
	if len(known) < n {
		fresh, err := signupFresh(ctx, o, n-len(known), r, key)
		if err != nil {
			return nil, err
		}
		known = append(known, fresh...)
		raw, _ := json.Marshal(known)
		if err := os.WriteFile(o.UsersFile, raw, 0o600); err != nil {
			return nil, err
		}
	}
	users := known[:n]
	hc := newHTTPClient()
	var g errgroup.Group
	g.SetLimit(64)
	for i := range users {
		g.Go(func() error {
			var pair struct {
				AccessToken string `json:"access_token"`
			}
			base := o.URLs[i%len(o.URLs)]
			if _, err := httpJSON(ctx, hc, "POST", base+"/api/v1/auth/login", "", map[string]string{"username": users[i].Username, "password": users[i].Password}, &pair); err != nil {
				return err
			}
			users[i].Access, users[i].node = pair.AccessToken, base
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		if strings.Contains(err.Error(), "invalid_credentials") && reset {
			// the file belongs to another database (its users are not
			// here): start it over rather than fail every later run
			fmt.Fprintf(os.Stderr, "%s: cached users unknown to this server; signing up new ones\n", o.UsersFile)
			if err := os.Remove(o.UsersFile); err != nil {
				return nil, err
			}
			return cachedUsers(ctx, o, n, r, key, false)
		}
		return nil, fmt.Errorf("login of cached users: %v", err)
	}
	return users, nil
}

func signupFresh(ctx context.Context, o Options, n int, r *Result, key string) ([]user, error) {
	hc := newHTTPClient()
	run := strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	users := make([]user, n)
	var sagaLat, loginLat []time.Duration
	var mu sync.Mutex
	var done, failed atomic.Int64
	var firstErr atomic.Value
	endProgress := progress(func() string {
		return fmt.Sprintf("[%s] sign-ups %d/%d failed %d", key, done.Load(), n, failed.Load())
	})
	start := time.Now()
	var all errgroup.Group // a failed sign-up is counted, not fatal to the rest
	all.SetLimit(max(1, o.Concurrency))
	for i := range users {
		all.Go(func() error {
			base := o.URLs[i%len(o.URLs)]
			u := user{Username: fmt.Sprintf("b%s_%d", run, i), Password: "bench-password-" + run, node: base}
			t0 := time.Now()
			var st struct {
				SignupID string `json:"signup_id"`
				Status   string `json:"status"`
				UserID   string `json:"user_id"`
				Error    string `json:"error"`
			}
			_, err := httpJSON(ctx, hc, "POST", base+"/api/v1/signup", "", map[string]string{
				"username": u.Username, "email": u.Username + "@bench.test", "password": u.Password, "display_name": "Bench " + strconv.Itoa(i),
			}, &st)
			for err == nil && st.Status != "completed" {
				if st.Status == "failed" {
					err = fmt.Errorf("saga failed: %s", st.Error)
					break
				}
				id := st.SignupID
				_, err = httpJSON(ctx, hc, "GET", base+"/api/v1/signup/"+id+"?wait=10s", "", nil, &st)
				st.SignupID = id
			}
			saga := time.Since(t0)
			var pair struct {
				AccessToken string `json:"access_token"`
			}
			t1 := time.Now()
			if err == nil {
				_, err = httpJSON(ctx, hc, "POST", base+"/api/v1/auth/login", "", map[string]string{"username": u.Username, "password": u.Password}, &pair)
			}
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
				return nil
			}
			u.ID, u.Access = st.UserID, pair.AccessToken
			users[i] = u
			mu.Lock()
			sagaLat = append(sagaLat, saga)
			loginLat = append(loginLat, time.Since(t1))
			mu.Unlock()
			done.Add(1)
			return nil
		})
	}
	_ = all.Wait()
	el := time.Since(start)
	endProgress()
	r.Metrics[key+"_completed"] = float64(done.Load())
	r.Metrics[key+"_failed"] = float64(failed.Load())
	r.Metrics[key+"_per_s"] = float64(done.Load()) / el.Seconds()
	r.Latency[key+"_saga"] = Summarize(sagaLat)
	r.Latency[key+"_login"] = Summarize(loginLat)
	if f := failed.Load(); f > 0 {
		return nil, fmt.Errorf("%d sign-ups failed; first: %v", f, firstErr.Load())
	}
	return users, nil
}

func runSignups(ctx context.Context, o Options, r *Result) error {
	_, err := signupUsers(ctx, o, o.Signups, r, "signup")
	if err == nil {
		r.check("signups", true, fmt.Sprintf("%d sagas completed and logged in", o.Signups))
	}
	return err
}
