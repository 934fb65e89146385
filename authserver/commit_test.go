package authserver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oauthkit/authserver/storage"
	sqlstore "github.com/oauthkit/authserver/storage/sql"
)

func TestGroupCommitIsolatesFailures(t *testing.T) {
	st := openSQLite(t)
	c := &committer{store: st}
	tok := func(sig string) storage.Token {
		return storage.Token{Kind: storage.AccessToken, Signature: sig, RequestID: "r-" + sig, ClientID: "c",
			Active: true, RequestedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour), Payload: []byte("{}")}
	}
	if err := st.CreateToken(t.Context(), tok("dup")); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 200)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sig := fmt.Sprint("t", i)
			if i%50 == 0 {
				sig = "dup" // fails: already exists
			}
			errs[i] = c.submit(context.Background(), nil, "", nil, nil, func(ctx context.Context) error { return st.CreateToken(ctx, tok(sig)) })
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if i%50 == 0 {
			if !errors.Is(err, storage.ErrAlreadyExists) {
				t.Errorf("request %d: %v, want ErrAlreadyExists", i, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("request %d failed with a batch-mate's error: %v", i, err)
			continue
		}
		if _, err := st.GetToken(t.Context(), storage.AccessToken, fmt.Sprint("t", i)); err != nil {
			t.Errorf("request %d: committed but not stored: %v", i, err)
		}
	}
}

// A lost compare-and-swap fails its request alone; the batch commits.
func TestGroupCommitGuardLosesAlone(t *testing.T) {
	st := openSQLite(t)
	c := &committer{store: st}
	now := time.Now()
	if err := st.CreateToken(t.Context(), storage.Token{Kind: storage.RefreshToken, Signature: "rt", RequestID: "g", ClientID: "c",
		Active: true, RequestedAt: now, ExpiresAt: now.Add(time.Hour), Payload: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	results := make([]error, 20)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sig := fmt.Sprint("new", i)
			results[i] = c.submit(context.Background(), nil, "", nil,
				func(ctx context.Context) error { return st.DeactivateToken(ctx, storage.RefreshToken, "rt") },
				func(ctx context.Context) error {
					return st.CreateToken(ctx, storage.Token{Kind: storage.RefreshToken, Signature: sig, RequestID: "g", ClientID: "c",
						Active: true, RequestedAt: now, ExpiresAt: now.Add(time.Hour), Payload: []byte("{}")})
				})
		}()
	}
	wg.Wait()
	won := 0
	for i, err := range results {
		_, gerr := st.GetToken(t.Context(), storage.RefreshToken, fmt.Sprint("new", i))
		switch {
		case err == nil:
			won++
			if gerr != nil {
				t.Errorf("winner %d's token not stored", i)
			}
		case errors.Is(err, storage.ErrNotFound):
			if gerr == nil {
				t.Errorf("loser %d's token was stored", i)
			}
		default:
			t.Errorf("request %d: %v", i, err)
		}
	}
	if won != 1 {
		t.Fatalf("%d winners, want 1", won)
	}
}

// lingeringCommitter returns a committer on a real SQLite store that records
// the size of every transaction it commits.
func lingeringCommitter(t *testing.T, minBatch int, linger time.Duration) (*committer, storage.Store, func() []int) {
	st := openSQLite(t)
	var mu sync.Mutex
	var sizes []int
	c := newCommitter(st, minBatch, linger, func(n int, _ time.Duration) { mu.Lock(); sizes = append(sizes, n); mu.Unlock() })
	return c, st, func() []int { mu.Lock(); defer mu.Unlock(); return slices.Clone(sizes) }
}

func createTok(st storage.Store, sig string) func(context.Context) error {
	return func(ctx context.Context) error {
		now := time.Now()
		return st.CreateToken(ctx, storage.Token{Kind: storage.AccessToken, Signature: sig, RequestID: "r-" + sig, ClientID: "c",
			Active: true, RequestedAt: now, ExpiresAt: now.Add(time.Hour), Payload: []byte("{}")})
	}
}

// Responses announced with expect that reach the committer one after another
// share one transaction instead of committing one by one.
func TestGroupCommitLingersForAnnouncedResponses(t *testing.T) {
	c, st, sizes := lingeringCommitter(t, 8, time.Minute)
	if err := c.submit(context.Background(), nil, "", nil, nil, createTok(st, "warm")); err != nil {
		t.Fatal(err) // a commit just ended: the committer is busy
	}
	arrived := make([]func(), 8)
	for i := range arrived {
		arrived[i] = c.expect()
	}
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range arrived {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.submit(context.Background(), arrived[i], "", nil, nil, createTok(st, fmt.Sprint("t", i)))
		}()
		time.Sleep(5 * time.Millisecond) // each arrives after the previous would have committed
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if got := sizes(); !slices.Equal(got, []int{1, 8}) {
		t.Fatalf("transactions of %v requests, want [1 8]", got)
	}
}

// A request that nobody announced to follow is committed at once, and a
// lingering commit stops waiting when the response it waits for withdraws
// (its request failed before submitting).
func TestGroupCommitDoesNotLingerForNobody(t *testing.T) {
	c, st, sizes := lingeringCommitter(t, 8, time.Hour)
	done := make(chan error, 1)
	go func() { done <- c.submit(context.Background(), c.expect(), "", nil, nil, createTok(st, "alone")) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a lone request lingered")
	}

	first, second := c.expect(), c.expect()
	go func() { done <- c.submit(context.Background(), first, "", nil, nil, createTok(st, "first")) }()
	time.Sleep(20 * time.Millisecond) // the commit is lingering for second
	select {
	case err := <-done:
		t.Fatalf("committed without waiting for the announced response: %v", err)
	default:
	}
	second() // its request failed: nothing more is coming
	second() // withdrawing twice is harmless
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("still lingering after the only announced response withdrew")
	}
	if got := sizes(); !slices.Equal(got, []int{1, 1}) {
		t.Fatalf("transactions of %v requests, want [1 1]", got)
	}
	if n := c.coming.Load(); n != 0 {
		t.Fatalf("%d responses still announced", n)
	}
}

// The linger is bounded: a response announced but slow to arrive delays the
// others' commit by at most linger.
func TestGroupCommitLingerIsBounded(t *testing.T) {
	c, st, sizes := lingeringCommitter(t, 8, 50*time.Millisecond)
	if err := c.submit(context.Background(), nil, "", nil, nil, createTok(st, "warm")); err != nil {
		t.Fatal(err)
	}
	slow := c.expect()
	defer slow()
	start := time.Now()
	if err := c.submit(context.Background(), c.expect(), "", nil, nil, createTok(st, "waits")); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Fatalf("committed after %v, before the linger of 50ms with a response announced", d)
	}
	if got := sizes(); !slices.Equal(got, []int{1, 1}) {
		t.Fatalf("transactions of %v requests, want [1 1]", got)
	}
}

// A committer whose last transaction ended longer than linger ago commits at
// once even with other responses announced: at that rate batching saves
// little and waiting would only add latency.
func TestGroupCommitDoesNotLingerWhenIdle(t *testing.T) {
	c, st, sizes := lingeringCommitter(t, 8, time.Hour)
	c.lastEnd = time.Now().Add(-2 * time.Hour)
	other := c.expect()
	defer other()
	done := make(chan error, 1)
	go func() { done <- c.submit(context.Background(), c.expect(), "", nil, nil, createTok(st, "t")) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("an idle committer lingered")
	}
	if got := sizes(); !slices.Equal(got, []int{1}) {
		t.Fatalf("transactions of %v requests, want [1]", got)
	}
}

// A write that panics fails its own request; its batch-mates commit and the
// committer keeps serving.
func TestGroupCommitSurvivesAPanickingWrite(t *testing.T) {
	c, st, _ := lingeringCommitter(t, 8, time.Minute)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	arrived := make([]func(), 8)
	for i := range arrived {
		arrived[i] = c.expect()
	}
	c.lastEnd = time.Now() // busy: the eight share a batch
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := createTok(st, fmt.Sprint("t", i))
			if i == 3 {
				w = func(context.Context) error { panic("write failure") }
			}
			errs[i] = c.submit(context.Background(), arrived[i], "", nil, nil, w)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if (err != nil) != (i == 3) {
			t.Errorf("request %d: %v", i, err)
		}
	}
	if err := c.submit(context.Background(), nil, "", nil, nil, createTok(st, "after")); err != nil {
		t.Fatalf("after the panic: %v", err)
	}
	if _, err := st.GetToken(t.Context(), storage.AccessToken, "after"); err != nil {
		t.Fatal(err)
	}
}

// A batch writes its requests in their keys' lock order (stable within a
// key), and the late writes of all its requests after every other write,
// in key order.
func TestGroupCommitOrdersABatch(t *testing.T) {
	c := &committer{store: openSQLite(t)}
	c.busy = true // requests queue until drain below
	var mu sync.Mutex
	var order []string
	rec := func(what string) func(context.Context) error {
		return func(context.Context) error {
			mu.Lock()
			order = append(order, what)
			mu.Unlock()
			return nil
		}
	}
	errs := make(chan error, 4)
	for _, r := range []struct{ key, late string }{{"g2", "k3"}, {"g1", "k2"}, {"g2", "k1"}, {"g0", ""}} {
		var late []lateWrite
		if r.late != "" {
			late = []lateWrite{{key: r.late, fn: rec("late " + r.late)}}
		}
		queueRequest(t, c, errs, r.key, late, nil, rec(r.key+"/"+r.late))
	}
	c.drain(context.Background(), nil)
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// g0, g1, g2 in lock order; g2's two requests in arrival order.
	grants := []string{"g0/", "g1/k2", "g2/k3"}
	slices.SortFunc(grants, func(a, b string) int {
		return cmp.Compare(storage.LockOrder(strings.Split(a, "/")[0]), storage.LockOrder(strings.Split(b, "/")[0]))
	})
	var want []string
	for _, g := range grants {
		want = append(want, g)
		if g == "g2/k3" {
			want = append(want, "g2/k1")
		}
	}
	want = append(want, "late k1", "late k2", "late k3")
	if !slices.Equal(order, want) {
		t.Fatalf("writes ran as %v, want %v", order, want)
	}
}

// queueRequest submits one request to c, whose busy flag holds it in the
// queue, and returns once it is queued (so that requests queue in order).
func queueRequest(t *testing.T, c *committer, errs chan<- error, key string, late []lateWrite, guard func(context.Context) error, writes ...func(context.Context) error) {
	t.Helper()
	c.mu.Lock()
	want := len(c.queue) + 1
	c.mu.Unlock()
	go func() { errs <- c.submit(t.Context(), nil, key, late, guard, writes...) }()
	for {
		c.mu.Lock()
		l := len(c.queue)
		c.mu.Unlock()
		if l == want {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// pgInstance is one of two committers on one PostgreSQL schema, each a
// server instance; its batch's first lock-taking write waits (up to 300 ms)
// until the other's has taken its own, so that a cycle, if there is one,
// forms. sizes are the batches it committed.
type pgInstance struct {
	c       *committer
	first   atomic.Bool
	written chan struct{}
	other   *pgInstance
	mu      sync.Mutex
	sizes   []int
}

func twoPostgresInstances(t *testing.T) [2]*pgInstance {
	base := os.Getenv("AUTHSERVER_TEST_POSTGRES_DSN")
	if base == "" {
		t.Skip("AUTHSERVER_TEST_POSTGRES_DSN not set; skipping the PostgreSQL case")
	}
	dsn := postgresSchemaDSN(t, base)
	var in [2]*pgInstance
	for i := range in {
		st, err := sqlstore.OpenPostgres(t.Context(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		n := &pgInstance{written: make(chan struct{})}
		n.c = &committer{store: st, observe: func(requests int, _ time.Duration) {
			n.mu.Lock()
			n.sizes = append(n.sizes, requests)
			n.mu.Unlock()
		}}
		n.c.busy = true // requests queue until drain below
		in[i] = n
	}
	in[0].other, in[1].other = in[1], in[0]
	return in
}

// useOnce is a guard that stores the single-use record key as useOnce
// does (errReplayed when it exists), counts it in won, and meets.
func (n *pgInstance) useOnce(key string, won *atomic.Int32) func(context.Context) error {
	now := time.Now()
	return func(tx context.Context) error {
		created, err := n.c.store.CreateTokenIfAbsent(tx, storage.Token{Kind: storage.UsedJTI, Signature: key, RequestID: key,
			ClientID: "c", Active: true, RequestedAt: now, ExpiresAt: now.Add(time.Hour), Payload: []byte("{}")})
		if err == nil && !created {
			err = errReplayed
		}
		if err == nil {
			won.Add(1)
		}
		n.meet()
		return err
	}
}

// meet is called after a write that took a lock.
func (n *pgInstance) meet() {
	if n.first.CompareAndSwap(false, true) {
		close(n.written)
		select {
		case <-n.other.written:
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// run drains both instances at once and checks that each committed its
// requests as one batch: a batch that PostgreSQL failed as a deadlock
// (after deadlock_timeout, 1 s) is retried request by request.
func runBoth(t *testing.T, in [2]*pgInstance, errs chan error, requests int, lost func(error) bool) {
	t.Helper()
	start := time.Now()
	var wg sync.WaitGroup
	for _, n := range in {
		wg.Go(func() { n.c.drain(context.Background(), nil) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	for range requests {
		if err := <-errs; err != nil && !lost(err) {
			t.Errorf("a request failed: %v", err)
		}
	}
	for i, n := range in {
		if !slices.Equal(n.sizes, []int{requests / 2}) {
			t.Errorf("instance %d committed batches of %v, want one of %d (after %v)", i, n.sizes, requests/2, elapsed)
		}
	}
}

// Two instances whose batches hold the same two single-use records, queued
// the other way round, write them in one key order: the second batch waits
// for the first instead of deadlocking with it, and both commit whole. In
// arrival order each would hold one record's lock and wait for the other's
// until PostgreSQL's deadlock check failed one batch (after 1 s), which
// the committer then retried request by request.
func TestGroupCommitBatchesInKeyOrderOnPostgres(t *testing.T) {
	in := twoPostgresInstances(t)
	var won atomic.Int32
	errs := make(chan error, 4)
	for _, q := range []struct {
		n   *pgInstance
		key string
	}{{in[0], "jti-x"}, {in[0], "jti-y"}, {in[1], "jti-y"}, {in[1], "jti-x"}} {
		queueRequest(t, q.n.c, errs, q.key, nil, q.n.useOnce(q.key, &won))
	}
	runBoth(t, in, errs, 4, func(err error) bool { return errors.Is(err, storage.ErrNotFound) })
	if won.Load() != 2 {
		t.Errorf("%d requests stored their record, want 2 (one per key)", won.Load())
	}
}

// Four distinct single-use records whose lock keys (hashtext) collide
// pairwise, the other way round from their string order, as a client can
// arrange with jtis it chooses: the batches take the locks in lock order
// and do not deadlock.
func TestGroupCommitBatchesInLockOrderOnPostgres(t *testing.T) {
	in := twoPostgresInstances(t)
	// hashtext(a) = hashtext(c) and hashtext(b) = hashtext(d), a < b < c < d:
	// in string order instance 0 would lock b's key, then c's (a's), and
	// instance 1 a's, then d's (b's).
	a, b := "dpop:02461c5130daee73a8c73a51060e2adc", "dpop:20518a57e2f2f7092c9238e7d6fbbea1"
	c, d := "dpop:2f5506cfa3444c95300ec7a0d9fd5aa3", "dpop:6e785fdfb123ff8b192f26cf595f74b1"
	if storage.LockOrder(a) != storage.LockOrder(c) || storage.LockOrder(b) != storage.LockOrder(d) {
		t.Fatalf("the keys do not collide: %d %d %d %d", storage.LockOrder(a), storage.LockOrder(b), storage.LockOrder(c), storage.LockOrder(d))
	}
	var won atomic.Int32
	errs := make(chan error, 4)
	for _, q := range []struct {
		n   *pgInstance
		key string
	}{{in[0], b}, {in[0], c}, {in[1], a}, {in[1], d}} {
		queueRequest(t, q.n.c, errs, q.key, nil, q.n.useOnce(q.key, &won))
	}
	runBoth(t, in, errs, 4, func(error) bool { return false })
	if won.Load() != 4 {
		t.Errorf("%d requests stored their record, want all 4 (distinct keys)", won.Load())
	}
}

// Password grants of the same two accounts on two instances release the
// accounts' throttling counters (rows of their own) in the batch: as late
// writes, in key order, so the two batches do not deadlock on those rows
// whatever order their grants sort in.
func TestGroupCommitReleasesCountersInKeyOrderOnPostgres(t *testing.T) {
	in := twoPostgresInstances(t)
	th := &throttler{store: in[0].c.store}
	for _, k := range []string{"acct-ip:u1|ip", "acct:u1", "acct-ip:u2|ip", "acct:u2"} {
		if _, err := th.store.UpdateAttempts(t.Context(), k, func(a storage.Attempts) (storage.Attempts, error) {
			a.Failures, a.Last = 1, time.Now()
			return a, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	release := func(n *pgInstance, user string) []lateWrite {
		ws := (&throttler{store: n.c.store}).releaseWrites("acct-ip:"+user+"|ip", "acct:"+user)
		for i, w := range ws {
			ws[i].fn = func(tx context.Context) error {
				err := w.fn(tx)
				n.meet()
				return err
			}
		}
		return ws
	}
	errs := make(chan error, 4)
	// The grants' keys are random: here u1's sorts first on instance 0,
	// u2's on instance 1.
	for _, q := range []struct {
		n          *pgInstance
		grant, who string
	}{{in[0], "grant-a", "u1"}, {in[0], "grant-b", "u2"}, {in[1], "grant-c", "u2"}, {in[1], "grant-d", "u1"}} {
		queueRequest(t, q.n.c, errs, q.grant, release(q.n, q.who), nil)
	}
	runBoth(t, in, errs, 4, func(error) bool { return false })
	for _, k := range []string{"acct-ip:u1|ip", "acct:u1", "acct-ip:u2|ip", "acct:u2"} {
		a, err := th.store.UpdateAttempts(t.Context(), k, func(a storage.Attempts) (storage.Attempts, error) { return a, nil })
		if err != nil || a.Failures != 0 {
			t.Errorf("counter %s after the releases: %+v %v", k, a, err)
		}
	}
}
