package roomlog

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// ownRedis runs a Redis of its own on dir with the AOF as chatflow needs it.
type ownRedis struct {
	t    *testing.T
	dir  string
	port int
	cmd  *exec.Cmd
	rdb  *redis.Client
}

func startOwnRedis(t *testing.T, dir string, port int) *ownRedis {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not installed")
	}
	if port == 0 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
	}
	r := &ownRedis{t: t, dir: dir, port: port}
	r.cmd = exec.Command("redis-server", "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--appendonly", "yes", "--appendfsync", "always")
	// its own process group: kill takes the children it forks for an AOF
	// rewrite too, which would otherwise go on writing into dir while the
	// test's cleanup removes it
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.kill)
	r.rdb = redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port)})
	for i := 0; r.rdb.Ping(context.Background()).Err() != nil; i++ {
		if i > 200 {
			t.Fatal("redis did not start")
		}
		time.Sleep(25 * time.Millisecond)
	}
	return r
}

func (r *ownRedis) kill() {
	if r.cmd.ProcessState == nil {
		_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
		_ = r.cmd.Wait()
	}
	_ = r.rdb.Close()
}

// waitPersistence waits until no AOF rewrite or RDB save is running.
func (r *ownRedis) waitPersistence() {
	r.t.Helper()
	for i := 0; ; i++ {
		info := r.rdb.Info(context.Background(), "persistence").Val()
		if strings.Contains(info, "aof_rewrite_in_progress:0") && strings.Contains(info, "aof_rewrite_scheduled:0") &&
			strings.Contains(info, "rdb_bgsave_in_progress:0") {
			return
		}
		if i > 400 {
			r.t.Fatal("persistence did not finish")
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// newestIncr is the AOF file Redis appends to now.
func (r *ownRedis) newestIncr() string {
	r.t.Helper()
	files, _ := filepath.Glob(filepath.Join(r.dir, "appendonlydir", "*.incr.aof"))
	var newest string
	var at time.Time
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			continue
		}
		if newest == "" || st.ModTime().After(at) {
			newest, at = f, st.ModTime()
		}
	}
	if newest == "" {
		r.t.Fatal("no incr AOF")
	}
	return newest
}

// testFence is the seq fence of the tests on a Redis of their own.
const testFence = 1000

// fenceRoom sets up a new room on r with one member, and returns it and a
// send of a new message by that member through the send script on the
// client given (the room's Redis, or the one restarted in its place),
// returning the seq it got.
func fenceRoom(t *testing.T, r *ownRedis) (room string, send func(*redis.Client) int64) {
	t.Helper()
	ctx := context.Background()
	room, sender := uuid.NewString(), uuid.NewString()
	if err := SeedNew(ctx, r.rdb, room, 0); err != nil {
		t.Fatal(err)
	}
	if err := r.rdb.SAdd(ctx, MembersKey(room), sender).Err(); err != nil {
		t.Fatal(err)
	}
	n := 0
	return room, func(rdb *redis.Client) int64 {
		t.Helper()
		n++
		vals, err := Append{Room: room, Sender: sender, ClientMsgID: fmt.Sprint("m", n), Prefix: `{"seq":`, Suffix: `}`,
			Channel: "c:" + room, MaxBacklog: 1 << 20, DedupeTTL: time.Hour, Fence: testFence}.Run(ctx, rdb).Slice()
		if err != nil {
			t.Fatal(err)
		}
		return vals[0].(int64)
	}
}

// TestFenceAfterRewriteAndLoss: a Redis that lost its last writes (an OS
// crash on a disk that lied, a failover to a replica) must not hand a seq
// out again, also when an AOF rewrite had copied the room's alive marker
// into the base file before the loss. An RDB save of the same process must
// not fence.
func TestFenceAfterRewriteAndLoss(t *testing.T) {
	ctx := context.Background()
	r := startOwnRedis(t, t.TempDir(), 0)
	room, send := fenceRoom(t, r)
	for range 5 {
		send(r.rdb)
	}
	// an RDB save of the same process is no reason to fence
	if err := r.rdb.BgSave(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	r.waitPersistence()
	time.Sleep(1100 * time.Millisecond) // LASTSAVE has a resolution of a second
	if err := r.rdb.BgSave(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	r.waitPersistence()
	if got := send(r.rdb); got != 6 {
		t.Fatalf("send after an RDB save: seq %d, want 6", got)
	}
	// the rewrite copies the marker into the base file
	if err := r.rdb.BgRewriteAOF(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	r.waitPersistence()
	incr := r.newestIncr()
	st, err := os.Stat(incr)
	if err != nil {
		t.Fatal(err)
	}
	for range 4 {
		send(r.rdb) // seqs 7..10, acked, then lost
	}
	r.kill()
	if err := os.Truncate(incr, st.Size()); err != nil {
		t.Fatal(err)
	}
	// no pause: the new process may well start within the second of the
	// old one's start or save, which the fence must not depend on
	r2 := startOwnRedis(t, r.dir, r.port)
	if got := r2.rdb.Get(ctx, SeqKey(room)).Val(); got != "6" {
		t.Fatalf("the emulated loss left the counter at %s, want 6", got)
	}
	if got := send(r2.rdb); got <= 10 {
		t.Fatalf("after the loss the room handed out seq %d again (seqs up to 10 were acked)", got)
	}
}

// TestFenceMarkerOfAnotherProcessSameSecond: a marker set by another Redis
// process whose LASTSAVE is this one's to the second (a replica started
// with its master and promoted, masters started together and a slot moved)
// still names another process, so the room fences. The build before took
// a matching LASTSAVE for its own process and handed the seqs out again.
func TestFenceMarkerOfAnotherProcessSameSecond(t *testing.T) {
	ctx := context.Background()
	r := startOwnRedis(t, t.TempDir(), 0)
	room, send := fenceRoom(t, r)
	if got := send(r.rdb); got != 1 {
		t.Fatalf("first send: seq %d, want 1", got)
	}
	lastSave := r.rdb.LastSave(ctx).Val()
	other := strings.Repeat("ab", 20) // a run_id (40 hex digits) of no live process
	if err := r.rdb.Set(ctx, aliveKey(room), fmt.Sprintf("%d|%s", lastSave, other), 0).Err(); err != nil {
		t.Fatal(err)
	}
	if got := send(r.rdb); got != 1+testFence+1 {
		t.Fatalf("send under another process's marker of the same second: seq %d, want %d (fenced)", got, 1+testFence+1)
	}
	if got := send(r.rdb); got != 1+testFence+2 {
		t.Fatalf("the send after the fence: seq %d, want %d (fenced once)", got, 1+testFence+2)
	}
}
