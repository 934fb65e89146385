package sql

import (
	"context"
	"time"

	"github.com/oauthkit/authserver/storage"
)

// gcBatch is the most rows one garbage-collection statement deletes.
const gcBatch = 1000

// GarbageCollect deletes expired tokens, the revocation feed entries of
// expired tokens, old client change feed entries and old counters, at most gcBatch
// rows per statement, each statement its own transaction. On PostgreSQL the
// batches skip rows other transactions hold locked, so several instances can
// collect at once without waiting on each other or on requests.
func (s *Store) GarbageCollect(ctx context.Context, now time.Time, attemptsTTL time.Duration) (storage.GCResult, error) {
	var res storage.GCResult
	var err error
	res.Tokens, err = s.deleteBatches(ctx, "garbage collect tokens",
		`DELETE FROM tokens WHERE (kind, signature) IN
		(SELECT kind, signature FROM tokens WHERE expires_at < $1 LIMIT $2`+s.d.skipLocked+`)`,
		s.d.timeArg(now), gcBatch)
	if err != nil {
		return res, err
	}
	res.Revocations, err = s.deleteBatches(ctx, "garbage collect revocations",
		`DELETE FROM revocations WHERE seq IN
		(SELECT seq FROM revocations WHERE expires_at < $1 LIMIT $2`+s.d.skipLocked+`)`,
		s.d.timeArg(now), gcBatch)
	if err != nil {
		return res, err
	}
	res.StatusLists, err = s.deleteBatches(ctx, "garbage collect status lists",
		`DELETE FROM status_lists WHERE id IN
		(SELECT id FROM status_lists WHERE expires_at < $1 LIMIT $2`+s.d.skipLocked+`)`,
		s.d.timeArg(now), gcBatch)
	if err != nil {
		return res, err
	}
	res.ClientChanges, err = s.deleteBatches(ctx, "garbage collect client changes",
		`DELETE FROM client_changes WHERE seq IN
		(SELECT seq FROM client_changes WHERE changed_at < $1 LIMIT $2`+s.d.skipLocked+`)`,
		s.d.timeArg(now.Add(-storage.ClientChangeRetention)), gcBatch)
	if err != nil {
		return res, err
	}
	res.Attempts, err = s.deleteBatches(ctx, "garbage collect attempts",
		`DELETE FROM attempts WHERE throttle_key IN
		(SELECT throttle_key FROM attempts WHERE last_at < $1 LIMIT $2`+s.d.skipLocked+`)`,
		s.d.timeArg(now.Add(-attemptsTTL)), gcBatch)
	return res, err
}

func (s *Store) deleteBatches(ctx context.Context, op, query string, args ...any) (int64, error) {
	var total int64
	for {
		n, err := s.execCount(ctx, s.writer(ctx), op, query, args...)
		total += n
		if err != nil || n < gcBatch {
			return total, err
		}
	}
}
