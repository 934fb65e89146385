package storage

import (
	"context"
	"time"
)

// StatusList is one Token Status List (draft-ietf-oauth-status-list): a
// fixed-size array of status bits, one per issued access token, whose indexes
// are handed out in blocks to any number of server instances.
type StatusList struct {
	ID int64
	// Size is the number of indexes (a power of two).
	Size int64
	// Key is a random per-list secret; the authserver derives from it the
	// permutation that maps allocation order to indexes, so that an index
	// says nothing about when its token was issued (draft §12.5).
	Key []byte
	// Next is how many positions have been handed out; the list is full
	// when Next equals Size.
	Next      int64
	CreatedAt time.Time
	// ExpiresAt is when every token that may hold an index of the list has
	// expired; garbage collection deletes the list after it.
	ExpiresAt time.Time
}

// StatusBlock is a run of positions [Start, Start+Count) of one list,
// reserved for one instance.
type StatusBlock struct {
	List  StatusList
	Start int64
	Count int64
}

// StatusLists allocates status list positions.
type StatusLists interface {
	// AllocateStatusBlock reserves count positions of the newest list of
	// the given size that has room for them and has not expired at now,
	// extending its ExpiresAt to at least expiresAt, or creates a new list
	// (with a fresh random Key) when none has room. Two calls, on any
	// handles of one database, never get overlapping positions of a list.
	// size must be a positive multiple of count.
	AllocateStatusBlock(ctx context.Context, size, count int64, now, expiresAt time.Time) (StatusBlock, error)
	// GetStatusList returns ErrNotFound when no list has the ID (or it was
	// garbage collected).
	GetStatusList(ctx context.Context, id int64) (StatusList, error)
	// ListStatusLists returns the lists that have not expired at now,
	// ordered by ID.
	ListStatusLists(ctx context.Context, now time.Time) ([]StatusList, error)
}
