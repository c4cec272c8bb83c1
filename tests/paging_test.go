package tests

import (
	"strconv"
	"strings"
	"testing"

	"github.com/chatflow/chatflow/internal/testenv"
)

// Every paged list follows one limit rule: absent is the default, 1..max is
// used, anything else (0, above the max) is 422 validation_failed naming
// the max; never a silent clamp.
func TestPagingLimitRule(t *testing.T) {
	env := testenv.Open(t)
	env.Worker(t, nil)
	n := env.StartNode(t, testenv.NodeConfig{})
	a := n.SignUp(t, "pga")
	room := n.CreateRoom(t, a)
	lists := []struct {
		path string
		max  int
	}{
		{"/api/v1/rooms/" + room + "/messages?", 200},
		{"/api/v1/users?q=pga&", 50},
		{"/api/v1/me/account/transactions?", 200},
		{"/api/v1/me/transfers?", 200},
		{"/api/v1/search?q=hello&", 50},
	}
	for _, l := range lists {
		if st := n.Call(t, "GET", l.path+"limit="+strconv.Itoa(l.max), a.Access, nil, nil); st != 200 {
			t.Fatalf("%slimit=%d (the max): %d", l.path, l.max, st)
		}
		if st := n.Call(t, "GET", strings.TrimSuffix(strings.TrimSuffix(l.path, "&"), "?"), a.Access, nil, nil); st != 200 {
			t.Fatalf("%s without limit: %d", l.path, st)
		}
		for _, bad := range []string{strconv.Itoa(l.max + 1), "0", "100000", "-1", "x"} {
			var e problem
			st := n.Call(t, "GET", l.path+"limit="+bad, a.Access, nil, &e)
			if st != 422 || e.Code != "validation_failed" || !strings.Contains(e.Detail, strconv.Itoa(l.max)) {
				t.Fatalf("%slimit=%s: %d %+v, want 422 validation_failed naming %d", l.path, bad, st, e, l.max)
			}
		}
	}
}
