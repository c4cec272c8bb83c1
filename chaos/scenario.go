package chaos

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// run is the state of one scenario that its fault can use.
type run struct {
	env           *Env
	load          *Load
	poison        *Client // the poison client, in every room (poison scenario only)
	rooms         []string
	poisonResults []poisonOutcome

	mu    sync.Mutex
	notes []string
}

func (r *run) note(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}

// ensureHealthy brings back whatever a previous scenario left down and waits
// until the api reports every dependency ready.
func ensureHealthy(ctx context.Context, env *Env) error {
	if err := env.Services(ctx, "start"); err != nil {
		return err
	}
	for _, p := range []*Proc{env.Worker, env.API} {
		p.mu.Lock()
		down := !p.wanted
		p.mu.Unlock()
		if down {
			if err := p.Start(ctx); err != nil {
				return err
			}
		}
		if err := p.WaitReady(ctx, 90*time.Second); err != nil {
			return err
		}
	}
	rctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	hc := &http.Client{Timeout: 5 * time.Second}
	for {
		req, _ := http.NewRequestWithContext(rctx, "GET", env.BaseURL()+"/readyz", nil)
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		if err := sleepCtx(rctx, 500*time.Millisecond); err != nil {
			return fmt.Errorf("api /readyz not 200 within 90 s")
		}
	}
}

func runScenario(ctx context.Context, env *Env, o Options, sc Scenario, idx int, logf func(string, ...any)) (row Row) {
	t := o.timing()
	row.Scenario = sc.Name
	r := &run{env: env}
	fail := func(format string, args ...any) { row.Failures = append(row.Failures, fmt.Sprintf(format, args...)) }
	// failed: a short reason in the verdict, the error itself in the notes
	failed := func(what string, err error) {
		fail("%s", what)
		r.note("%s: %v", what, err)
	}
	defer func() {
		for _, p := range []*Proc{env.API, env.Worker} {
			for _, u := range p.TakeUnexpected() {
				r.note("%s", u)
			}
		}
		row.Notes = append(r.notes, row.Notes...)
	}()
	env.API.TakeUnexpected()
	env.Worker.TakeUnexpected()
	if err := ensureHealthy(ctx, env); err != nil {
		failed("setup failed", err)
		return row
	}

	// users and rooms, fresh for every scenario
	var rnd [3]byte
	_, _ = rand.Read(rnd[:])
	prefix := fmt.Sprintf("ch%s%d", hex.EncodeToString(rnd[:]), idx)
	isPoison := sc.Name == "poison"
	n := o.Users
	if isPoison {
		n++
	}
	logf("signing up %d users", n)
	users, err := SignUp(ctx, env.BaseURL(), prefix, n)
	if err != nil {
		failed("setup failed", err)
		return row
	}
	l := &Load{Base: env.BaseURL(), Rate: o.Rate / float64(o.Users), ResendAfter: 10 * time.Second}
	var senders []*Client
	roomMembers := map[string][]User{}
	for i := 0; i+o.RoomSize <= o.Users; i += o.RoomSize {
		members := users[i : i+o.RoomSize]
		others := append([]User(nil), members[1:]...)
		if isPoison {
			others = append(others, users[o.Users])
		}
		room, err := CreateRoom(ctx, env.BaseURL(), members[0], others, prefix)
		if err != nil {
			failed("setup failed", err)
			return row
		}
		r.rooms = append(r.rooms, room)
		roomMembers[room] = members
		for _, m := range members {
			senders = append(senders, l.NewClient(m, []string{room}))
		}
	}
	if isPoison {
		r.poison = l.NewClient(users[o.Users], r.rooms)
		r.poison.answers = make(chan frame, 64)
	}
	r.load = l
	logf("%d rooms, %d senders at %.1f msg/s each; transfers at %.1f/s", len(r.rooms), len(senders), l.Rate, o.transferRate())
	money, err := NewMoney(ctx, env.BaseURL(), roomMembers, o.transferRate(), 5*time.Minute)
	if err != nil {
		failed("setup failed", err)
		return row
	}
	defer money.Close()

	l.Start(ctx, senders)
	defer l.Close()
	if err := waitConnected(ctx, l, 30*time.Second); err != nil {
		failed("setup failed", err)
		return row
	}
	money.Start(ctx)
	stopProgress := sync.OnceFunc(every(5*time.Second, func() { logf("[%s] %s", sc.Name, l.Progress()) }))
	defer stopProgress()

	loadStart := time.Now()
	if err := sleepCtx(ctx, t.warmup); err != nil {
		fail("interrupted")
		return row
	}
	logf("injecting %s", sc.Name)
	faultStart := time.Now()
	if err := sc.Inject(ctx, r); err != nil {
		failed("fault injection failed", err)
	}
	faultEnd := time.Now()
	logf("fault over after %.1f s; load goes on for %s", faultEnd.Sub(faultStart).Seconds(), t.after)
	if err := sleepCtx(ctx, t.after); err != nil {
		fail("interrupted")
		return row
	}
	l.StopNew()
	stopAt := time.Now()
	logf("senders stopped; resending unacked messages for up to %s", t.drain)
	unacked := l.Drain(ctx, t.drain)
	l.Close()
	logf("waiting for the transfer requests still retrying")
	money.StopNew()
	stopProgress()

	acks, seen, errs, other, gaveUp := l.Records()
	ackTimes := l.AckTimes()
	row.Errors = errs
	row.MaxAckGap = MaxGap(loadStart, stopAt, ackTimes)
	r.note("%d messages, %d send frames, %d unacked at the end, %d reconnects", l.newMsgs.Load(), l.frames.Load(), unacked, l.reconnects.Load())
	if gaveUp > 0 {
		r.note("%d sends refused for good", gaveUp)
	}
	if len(other) > 0 {
		r.note("other error frames: %s", FormatCodes(other))
	}
	if isPoison {
		failures, note := summarizePoison(r.poisonResults)
		row.Failures = append(row.Failures, failures...)
		r.note("%s", note)
	}

	// quiescence, then verification
	logf("waiting for Postgres to hold every acked message (up to %s)", t.pgLimit)
	vctx, cancel := context.WithTimeout(ctx, t.pgLimit+t.kafkaLimit+2*time.Minute)
	defer cancel()
	pool, err := pgxpool.New(vctx, env.DatabaseURL())
	if err != nil {
		failed("Postgres unreadable", err)
		return row
	}
	defer pool.Close()
	rows, hasKind, err := waitPostgres(vctx, pool, r.rooms, acks, seen, t.pgLimit, t.pgStall, t.holeGrace, logf)
	if err != nil {
		failed("Postgres unreadable", err)
	}
	if !hasKind {
		r.note("no kind column in chat.messages: every hole counts")
	}
	logf("reading Kafka %s", messagesTopic)
	k := newKafkaTail(env.KafkaAddr(), r.rooms)
	kerr := waitKafka(vctx, k, r.rooms, rows, t.kafkaLimit, t.kafkaStall, logf)
	if again, _, err := pgRows(vctx, pool, r.rooms); err == nil && len(again) != len(rows) {
		rows = again // rows arrived meanwhile: give Kafka a moment for them too
		kerr = waitKafka(vctx, k, r.rooms, rows, 30*time.Second, 15*time.Second, logf)
	}
	if kerr != nil {
		failed("Kafka unreadable", kerr)
	}
	c := Verify(r.rooms, rows, acks, seen, k.recs)
	row.Counts = c
	for _, e := range c.Examples {
		r.note("%s", e)
	}
	check := func(n int, what string) {
		if n > 0 {
			fail("%d %s", n, what)
		}
	}
	check(c.AckedMissing, "acked missing")
	check(c.WrongSeqID, "wrong seq/id")
	check(c.Holes, "holes")
	check(c.SeenMissing, "seen missing")
	check(c.KafkaMissing, "kafka missing")
	if c.Acked == 0 {
		fail("nothing acked")
	}
	if !slices.ContainsFunc(ackTimes, func(at time.Time) bool { return at.After(faultEnd) }) {
		fail("no ack after the fault ended")
	}

	logf("checking the transfers against the ledger")
	mc, err := money.CheckMoney(vctx, pool, faultStart, faultEnd, t.pgLimit, logf)
	row.Transfers = &mc
	if err != nil {
		failed("transfers unreadable", err)
		return row
	}
	r.note("transfers: %d asked, %d accepted (%d completed, %d failed, %d compensated), %d refused, %d unanswered, %d in flight across the fault; answers other than 2xx: %s",
		mc.Requested, mc.Accepted, mc.Completed, mc.Failed, mc.Compensated, mc.Refused, mc.Unanswered, mc.Spanning, FormatCodes(money.Codes()))
	for _, p := range mc.Problems {
		r.note("transfers: %s", p)
	}
	check(len(mc.Problems), "transfer problems")
	check(mc.Refused, "transfers refused")
	check(mc.Unanswered, "transfers unanswered")
	check(money.Internal(), "transfer requests answered 5xx other than 503")
	if mc.Completed == 0 {
		fail("no transfer completed")
	}
	if mc.Spanning == 0 {
		fail("no transfer in flight across the fault")
	}
	return row
}

func waitConnected(ctx context.Context, l *Load, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		n := l.Connected()
		if n == len(l.Clients) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d clients connected after %s", n, len(l.Clients), limit)
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}
