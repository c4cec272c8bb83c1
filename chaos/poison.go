package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// A poison case is one bad message, sent over WebSocket and over REST. The
// frame/body is built by hand so that invalid UTF-8 and lone surrogates
// reach the server exactly as written.
type poisonCase struct {
	name string
	cmid func(n string) string // the client_msg_id (as a JSON string literal body, unescaped)
	body string                // the body as a JSON string literal, without quotes
}

var poisonCases = []poisonCase{
	{name: "nul-body", body: `a\u0000b`},
	{name: "c0-body", body: `a\u0001b\u0008c\u001bd\u001f`},
	{name: "invalid-utf8", body: "a\xff\xfe\xc3b"},
	{name: "lone-surrogate", body: `x\ud800y`},
	{name: "long-body", body: strings.Repeat("x", 5000)},
	{name: "nul-cmid", body: "nul in the client_msg_id", cmid: func(n string) string { return n + `\u0000x` }},
}

// poisonOutcome is how the server answered one poison message.
type poisonOutcome struct {
	Case, Via string
	Result    string // "refused" (error frame or 4xx), "accepted", "5xx", "no answer"
	Code      string
}

// rawJSONString decodes the JSON string literal s (no quotes) the way the
// server would, for matching the echoed client_msg_id.
func rawJSONString(s string) string {
	var out string
	if json.Unmarshal([]byte(`"`+s+`"`), &out) != nil {
		return s
	}
	return out
}

// poisonRound sends every poison case once over the poison client's
// WebSocket and once over REST to room, one at a time, and records what
// came back. A message the server accepted is recorded as an ack of the
// poison client, so the verification checks it like any other.
func poisonRound(ctx context.Context, c *Client, base, room string, round int) []poisonOutcome {
	var res []poisonOutcome
	for i, pc := range poisonCases {
		cmidLit := fmt.Sprintf("poison-%s-%d-%d", c.tag, round, i)
		if pc.cmid != nil {
			cmidLit = pc.cmid(cmidLit)
		}
		res = append(res, c.poisonWS(ctx, pc, room, cmidLit, 15*time.Second))
		res = append(res, c.poisonREST(ctx, pc, base, room, cmidLit+"r"))
	}
	return res
}

func (c *Client) poisonWS(ctx context.Context, pc poisonCase, room, cmidLit string, wait time.Duration) poisonOutcome {
	out := poisonOutcome{Case: pc.name, Via: "ws", Result: "no answer"}
	for len(c.answers) > 0 { // late answers of an earlier probe
		<-c.answers
	}
	c.mu.Lock()
	conn := c.conn
	c.mu.Unlock()
	if conn == nil {
		out.Result = "not connected"
		return out
	}
	raw := []byte(`{"type":"send","room_id":"` + room + `","client_msg_id":"` + cmidLit + `","body":"` + pc.body + `"}`)
	if err := c.writeRaw(conn, raw); err != nil {
		out.Result = "not connected"
		return out
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return out
		case <-timer.C:
			return out
		case f := <-c.answers:
			// one probe is outstanding at a time: the next error or ack answers it
			if f.Type == "error" {
				out.Result, out.Code = "refused", f.Code
				return out
			}
			if f.ClientMsgID != rawJSONString(cmidLit) {
				continue
			}
			out.Result = "accepted"
			c.mu.Lock()
			c.Acks = append(c.Acks, AckRec{Sender: c.U.ID, ClientMsgID: f.ClientMsgID, Room: room, Seq: f.Seq, MessageID: f.MessageID})
			c.mu.Unlock()
			return out
		}
	}
}

func (c *Client) poisonREST(ctx context.Context, pc poisonCase, base, room, cmidLit string) poisonOutcome {
	out := poisonOutcome{Case: pc.name, Via: "rest", Result: "no answer"}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	raw := []byte(`{"client_msg_id":"` + cmidLit + `","body":"` + pc.body + `"}`)
	var m struct {
		MessageID   string `json:"message_id"`
		Seq         int64  `json:"seq"`
		ClientMsgID string `json:"client_msg_id"`
	}
	status, body, err := httpDo(ctx, newHTTPClient(), "POST", base+"/api/v1/rooms/"+room+"/messages", c.U.Access, raw, &m)
	var problem struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(body, &problem)
	out.Code = problem.Code
	switch {
	case status == 0:
		out.Code = fmt.Sprint(err)
	case status >= 500:
		out.Result = "5xx"
		out.Code = fmt.Sprintf("%d %s", status, problem.Code)
	case status >= 400:
		out.Result = "refused"
	case status >= 200 && status < 300:
		out.Result = "accepted"
		c.mu.Lock()
		c.Acks = append(c.Acks, AckRec{Sender: c.U.ID, ClientMsgID: m.ClientMsgID, Room: room, Seq: m.Seq, MessageID: m.MessageID})
		c.mu.Unlock()
	}
	return out
}

// summarizePoison turns the outcomes into failures and a note.
func summarizePoison(res []poisonOutcome) (failures []string, note string) {
	byResult := map[string]map[string]int{}
	for _, o := range res {
		if byResult[o.Result] == nil {
			byResult[o.Result] = map[string]int{}
		}
		key := o.Case + "/" + o.Via
		if o.Result == "refused" {
			key = o.Code
		}
		byResult[o.Result][key]++
	}
	results := make([]string, 0, len(byResult))
	for r := range byResult {
		results = append(results, r)
	}
	sort.Strings(results)
	var parts []string
	for _, r := range results {
		n := 0
		for _, v := range byResult[r] {
			n += v
		}
		parts = append(parts, fmt.Sprintf("%d %s (%s)", n, r, FormatCodes(byResult[r])))
		if r != "refused" {
			failures = append(failures, fmt.Sprintf("%d poison %s", n, r))
		}
	}
	return failures, fmt.Sprintf("poison: %d probes: %s", len(res), strings.Join(parts, "; "))
}
