package storagetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/oauthkit/authserver/storage"
)

// testStatusLists checks block allocation, list rollover, the status entry
// of token records and of the revocation feed, and garbage collection.
func testStatusLists(t *testing.T, s storage.Store) {
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Second)
	exp := now.Add(time.Hour)
	var blocks []storage.StatusBlock
	for range 3 {
		b, err := s.AllocateStatusBlock(ctx, 8, 4, now, exp)
		must(t, "AllocateStatusBlock", err)
		blocks = append(blocks, b)
	}
	if blocks[0].List.ID != blocks[1].List.ID || blocks[0].Start != 0 || blocks[1].Start != 4 {
		t.Fatalf("first two blocks = %+v, %+v; want positions 0 and 4 of one list", blocks[0], blocks[1])
	}
	if blocks[2].List.ID == blocks[0].List.ID || blocks[2].Start != 0 {
		t.Fatalf("third block = %+v; want a new list once the first is full", blocks[2])
	}
	if len(blocks[0].List.Key) < 16 || string(blocks[0].List.Key) == string(blocks[2].List.Key) {
		t.Fatal("lists need distinct random keys")
	}
	l, err := s.GetStatusList(ctx, blocks[0].List.ID)
	must(t, "GetStatusList", err)
	if l.Size != 8 || l.Next != 8 || string(l.Key) != string(blocks[0].List.Key) {
		t.Fatalf("GetStatusList = %+v", l)
	}
	if _, err := s.GetStatusList(ctx, 1<<40); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("GetStatusList(missing) = %v, want ErrNotFound", err)
	}

	// The token record and the revocation feed carry the entry.
	before := feed(t, s, 0)
	var after int64
	if len(before) > 0 {
		after = before[len(before)-1].Seq
	}
	tok := storage.Token{Kind: storage.AccessToken, Signature: "status-at", RequestID: "status-req", ClientID: "c",
		Active: true, RequestedAt: now, ExpiresAt: exp, StatusList: blocks[1].List.ID, StatusIndex: 5}
	must(t, "CreateToken", s.CreateToken(ctx, tok))
	got, err := s.GetToken(ctx, storage.AccessToken, "status-at")
	must(t, "GetToken", err)
	if got.StatusList != tok.StatusList || got.StatusIndex != 5 {
		t.Fatalf("token status entry = %d/%d, want %d/5", got.StatusList, got.StatusIndex, tok.StatusList)
	}
	must(t, "DeleteToken", s.DeleteToken(ctx, storage.AccessToken, "status-at"))
	rs := feed(t, s, after)
	if len(rs) != 1 || rs[0].StatusList != tok.StatusList || rs[0].StatusIndex != 5 {
		t.Fatalf("feed after revocation = %+v, want the token's status entry", rs)
	}

	// A list is deleted once its tokens have all expired.
	short, err := s.AllocateStatusBlock(ctx, 16, 4, now, now.Add(time.Minute))
	must(t, "AllocateStatusBlock", err)
	res, err := s.GarbageCollect(ctx, now.Add(2*time.Minute), time.Hour)
	must(t, "GarbageCollect", err)
	if res.StatusLists != 1 {
		t.Fatalf("GarbageCollect removed %d status lists, want 1", res.StatusLists)
	}
	if _, err := s.GetStatusList(ctx, short.List.ID); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("expired list: GetStatusList = %v, want ErrNotFound", err)
	}
	if _, err := s.GetStatusList(ctx, blocks[0].List.ID); err != nil {
		t.Fatalf("live list was collected: %v", err)
	}
	live, err := s.ListStatusLists(ctx, now.Add(2*time.Minute))
	must(t, "ListStatusLists", err)
	if len(live) != 2 || live[0].ID != blocks[0].List.ID || live[1].ID != blocks[2].List.ID {
		t.Fatalf("ListStatusLists = %+v, want the two live lists in ID order", live)
	}
	// An expired list gets no more blocks.
	b, err := s.AllocateStatusBlock(ctx, 16, 4, now.Add(2*time.Minute), now.Add(time.Hour))
	must(t, "AllocateStatusBlock", err)
	if b.List.ID == short.List.ID {
		t.Fatal("allocated from an expired list")
	}
}

// testRaceStatusBlocks allocates blocks from both handles at once: no
// position of a list is handed out twice.
func testRaceStatusBlocks(t *testing.T, a, b storage.Store) {
	ctx := t.Context()
	now := time.Now().UTC()
	var mu sync.Mutex
	seen := map[string]bool{}
	var errs []error
	race(64, a, b, func(i int, s storage.Store) {
		for range 4 {
			var blk storage.StatusBlock
			err := retry(func() error {
				var err error
				blk, err = s.AllocateStatusBlock(ctx, 64, 4, now, now.Add(time.Hour))
				return err
			})
			mu.Lock()
			if err != nil {
				errs = append(errs, err)
			} else {
				for p := blk.Start; p < blk.Start+blk.Count; p++ {
					k := fmt.Sprint(blk.List.ID, "/", p)
					if seen[k] {
						errs = append(errs, fmt.Errorf("position %s handed out twice", k))
					}
					seen[k] = true
				}
			}
			mu.Unlock()
		}
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 64*4*4 {
		t.Fatalf("%d positions, want %d", len(seen), 64*4*4)
	}
}
