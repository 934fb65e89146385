package memory

import (
	"context"
	"slices"
	"time"

	"github.com/oauthkit/authserver/storage"
)

// clientChanged appends a client change feed entry for id; UpdateClient and
// DeleteClient call it inside their write, so the entry commits (or rolls
// back) with the change, as the SQL triggers do.
func (d *data) clientChanged(id string) {
	d.clientChangeSeq++
	d.clientChanges = append(d.clientChanges, storage.ClientChange{Seq: d.clientChangeSeq, ClientID: id,
		ChangedAt: time.Now().UTC()})
}

// gcClientChanges drops the feed entries older than
// storage.ClientChangeRetention before now and returns how many it dropped.
// Entries are in Seq order, which is ChangedAt order here.
func (d *data) gcClientChanges(now time.Time) int64 {
	cutoff := now.Add(-storage.ClientChangeRetention)
	n := 0
	for n < len(d.clientChanges) && d.clientChanges[n].ChangedAt.Before(cutoff) {
		n++
	}
	if n > 0 {
		// A fresh array: snapshots taken before keep reading the old one.
		d.clientChanges = slices.Clone(d.clientChanges[n:])
	}
	return int64(n)
}

// ListClientChanges returns at most limit client change feed entries with
// Seq > after.
func (s *Store) ListClientChanges(ctx context.Context, after int64, limit int) ([]storage.ClientChange, error) {
	var out []storage.ClientChange
	err := s.view(ctx, func(d *data) error {
		out = pageAfter(d.clientChanges, after, limit, func(c storage.ClientChange) int64 { return c.Seq })
		return nil
	})
	return out, err
}
