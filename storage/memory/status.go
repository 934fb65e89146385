package memory

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/oauthkit/authserver/storage"
)

// statusLists is the in-memory table of status lists.
type statusLists struct {
	mu    sync.Mutex
	lists []storage.StatusList // by ID
	last  int64
}

func cloneList(l storage.StatusList) storage.StatusList {
	l.Key = bytes.Clone(l.Key)
	return l
}

// AllocateStatusBlock implements storage.StatusLists.
func (s *Store) AllocateStatusBlock(ctx context.Context, size, count int64, now, expiresAt time.Time) (storage.StatusBlock, error) {
	if err := ctx.Err(); err != nil {
		return storage.StatusBlock{}, err
	}
	if count <= 0 || size <= 0 || size%count != 0 {
		return storage.StatusBlock{}, errors.New("memory: allocate status block: size must be a positive multiple of count")
	}
	st := &s.status
	st.mu.Lock()
	defer st.mu.Unlock()
	for i := len(st.lists) - 1; i >= 0; i-- {
		l := &st.lists[i]
		if l.Size != size || l.Next+count > l.Size || !l.ExpiresAt.After(now) {
			continue
		}
		b := storage.StatusBlock{Start: l.Next, Count: count}
		l.Next += count
		if expiresAt.After(l.ExpiresAt) {
			l.ExpiresAt = expiresAt
		}
		b.List = cloneList(*l)
		return b, nil
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return storage.StatusBlock{}, fmt.Errorf("memory: status list key: %w", err)
	}
	st.last++
	l := storage.StatusList{ID: st.last, Size: size, Key: key, Next: count, CreatedAt: now, ExpiresAt: expiresAt}
	st.lists = append(st.lists, l)
	return storage.StatusBlock{List: cloneList(l), Start: 0, Count: count}, nil
}

// GetStatusList implements storage.StatusLists.
func (s *Store) GetStatusList(ctx context.Context, id int64) (storage.StatusList, error) {
	if err := ctx.Err(); err != nil {
		return storage.StatusList{}, err
	}
	st := &s.status
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, l := range st.lists {
		if l.ID == id {
			return cloneList(l), nil
		}
	}
	return storage.StatusList{}, fmt.Errorf("memory: status list %d: %w", id, storage.ErrNotFound)
}

// gc deletes the lists that expired before now.
func (st *statusLists) gc(now time.Time) int64 {
	st.mu.Lock()
	defer st.mu.Unlock()
	kept := st.lists[:0]
	var n int64
	for _, l := range st.lists {
		if l.ExpiresAt.Before(now) {
			n++
			continue
		}
		kept = append(kept, l)
	}
	st.lists = kept
	return n
}

// ListStatusLists implements storage.StatusLists.
func (s *Store) ListStatusLists(ctx context.Context, now time.Time) ([]storage.StatusList, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	st := &s.status
	st.mu.Lock()
	defer st.mu.Unlock()
	var out []storage.StatusList
	for _, l := range st.lists {
		if l.ExpiresAt.After(now) {
			out = append(out, cloneList(l))
		}
	}
	return out, nil
}
