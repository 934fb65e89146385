package authserver

import (
	"bytes"
	"compress/zlib"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/mux"

	"github.com/oauthkit/authserver/storage"
)

// Token Status List (draft-ietf-oauth-status-list, draft 21 and later):
// every access token carries
//
//	"status": {"status_list": {"idx": N, "uri": "<issuer>/statuslists/<id>"}}
//
// and GET of the URI returns a Status List Token (typ statuslist+jwt) whose
// status_list.lst is the ZLIB-compressed array of 1-bit statuses: bit idx%8
// (from the least significant bit) of byte idx/8 is 1 (INVALID) once the token
// was revoked, 0 (VALID) otherwise.
//
// Indexes: each instance takes blocks of positions from storage (one round
// trip per StatusListConfig.BlockSize tokens) and maps a position to an
// index with a keyed permutation of the list (a Feistel network over the
// index bits, keyed with the list's random storage key), so an index says
// nothing about the order of issue (§12.5).
//
// Bits: the revocation feed (introspect_cache.go) carries the (list, index)
// of every revoked access token; this instance applies its entries to
// in-memory bit arrays, and a list token is rebuilt from them at most once
// per second per list, when they changed.

// StatusListConfig configures the Token Status Lists.
type StatusListConfig struct {
	// Size is the number of indexes of one list, a power of two (default
	// 2^20, 128 KiB of bits before compression).
	Size int64
	// BlockSize is how many indexes an instance reserves at once (default
	// 1024); it must divide Size.
	BlockSize int64
	// BlockHold is how long an instance issues indexes from one block before
	// it takes a new one (default one minute); it bounds how long after its
	// last allocation a list may still gain tokens.
	BlockHold time.Duration
	// TTL is the Status List Token's ttl claim and Cache-Control max-age
	// (default 5 seconds).
	TTL time.Duration
	// TokenLifetime is the Status List Token's exp - iat (default one hour).
	TokenLifetime time.Duration
}

func (c *StatusListConfig) setDefaults() error {
	if c.Size == 0 {
		c.Size = 1 << 20
	}
	if c.BlockSize == 0 {
		c.BlockSize = min(1024, c.Size)
	}
	if c.Size < 8 || c.Size&(c.Size-1) != 0 || c.BlockSize <= 0 || c.Size%c.BlockSize != 0 {
		return errors.New("authserver: StatusList.Size must be a power of two of at least 8 and a multiple of BlockSize")
	}
	if c.BlockHold <= 0 {
		c.BlockHold = time.Minute
	}
	if c.TTL <= 0 {
		c.TTL = 5 * time.Second
	}
	if c.TokenLifetime <= 0 {
		c.TokenLifetime = time.Hour
	}
	return nil
}

// statusListPath is the route of a list; its URI is the issuer + this path.
const statusListPath = "/statuslists/"

// statusMediaType is the media type of a Status List Token in JWT format.
const statusMediaType = "application/statuslist+jwt"

// statusRebuildInterval is the shortest time between two signatures of one
// list.
const statusRebuildInterval = time.Second

// statusClaim is the access token's status claim (draft §6.1).
type statusClaim struct {
	StatusList statusListRef `json:"status_list"`
}

type statusListRef struct {
	Idx int64  `json:"idx"`
	URI string `json:"uri"`
}

// statusListClaims is the payload of a Status List Token (draft §5.1).
type statusListClaims struct {
	Issuer     string        `json:"iss,omitempty"`
	Subject    string        `json:"sub"`
	IssuedAt   int64         `json:"iat"`
	Expiry     int64         `json:"exp"`
	TTL        int64         `json:"ttl"`
	StatusList statusListLst `json:"status_list"`
}

type statusListLst struct {
	Bits int    `json:"bits"`
	Lst  string `json:"lst"`
}

// permutation is a keyed bijection of [0, size) for a power-of-two size: a
// four-round Feistel network on an even number of bits, cycle-walking the
// values at or above size.
type permutation struct {
	key  []byte
	half uint // bits per Feistel half
	size uint64
}

func newPermutation(key []byte, size int64) permutation {
	n := uint(bits.TrailingZeros64(uint64(size)))
	return permutation{key: key, half: (n + 1) / 2, size: uint64(size)}
}

func (p permutation) round(r byte, x uint64) uint64 {
	var buf [64]byte
	n := copy(buf[:], p.key)
	buf[n] = r
	binary.LittleEndian.PutUint64(buf[n+1:], x)
	h := sha256.Sum256(buf[:n+9])
	return binary.LittleEndian.Uint64(h[:8]) & (1<<p.half - 1)
}

func (p permutation) apply(pos int64) int64 {
	mask := uint64(1)<<p.half - 1
	x := uint64(pos)
	for {
		l, r := x>>p.half, x&mask
		for i := range byte(4) {
			l, r = r, l^p.round(i, r)
		}
		x = l<<p.half | r
		if x < p.size {
			return int64(x)
		}
	}
}

// statusAllocator hands out (list, index) pairs from blocks held in memory.
type statusAllocator struct {
	store    storage.StatusLists
	cfg      StatusListConfig
	tokenTTL time.Duration
	now      func() time.Time

	mu    sync.Mutex
	block storage.StatusBlock
	perm  permutation
	used  int64
	taken time.Time
}

// next returns the list and index of a new access token.
func (a *statusAllocator) next(ctx context.Context) (int64, int64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	if a.used >= a.block.Count || now.Sub(a.taken) >= a.cfg.BlockHold {
		// Every token of the block expires within BlockHold + the access
		// token lifetime (+ a minute of clock skew between instances).
		b, err := a.store.AllocateStatusBlock(ctx, a.cfg.Size, a.cfg.BlockSize, now,
			now.Add(a.cfg.BlockHold+a.tokenTTL+time.Minute))
		if err != nil {
			return 0, 0, fmt.Errorf("authserver: allocate status list indexes: %w", err)
		}
		a.block, a.perm, a.used, a.taken = b, newPermutation(b.List.Key, b.List.Size), 0, now
	}
	pos := a.block.Start + a.used
	a.used++
	return a.block.List.ID, a.perm.apply(pos), nil
}

// statusBits is this instance's copy of one list's revoked bits.
type statusBits struct {
	mu      sync.Mutex
	bits    []byte // nil until the first revocation
	version uint64
}

// builtStatus is a signed Status List Token and its validators.
type builtStatus struct {
	token   []byte
	etag    string
	built   time.Time
	version uint64
}

// statusList is one list as served.
type statusList struct {
	meta storage.StatusList // ID and Size; ExpiresAt is read from expires
	// expires is the list's ExpiresAt (UnixNano), extended when storage
	// says another instance extended it.
	expires atomic.Int64
	bits    *statusBits
	current atomic.Pointer[builtStatus]
	build   sync.Mutex // single flight
}

// statusLists holds the bits of every list this instance knows and the
// signed tokens it serves.
type statusLists struct {
	// maxSize bounds the indexes applied from the feed (the configured
	// list size).
	maxSize int64

	mu    sync.Mutex
	bits  map[int64]*statusBits
	lists map[int64]*statusList
}

func newStatusLists(maxSize int64) *statusLists {
	return &statusLists{maxSize: maxSize, bits: map[int64]*statusBits{}, lists: map[int64]*statusList{}}
}

func (l *statusLists) bitsOf(id int64) *statusBits {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bits[id]
	if b == nil {
		b = &statusBits{}
		l.bits[id] = b
	}
	return b
}

// revoke applies a revocation feed entry.
func (l *statusLists) revoke(e storage.Revocation) {
	if e.StatusList <= 0 || e.StatusIndex < 0 || e.StatusIndex >= l.maxSize {
		return
	}
	b := l.bitsOf(e.StatusList)
	b.mu.Lock()
	defer b.mu.Unlock()
	i := e.StatusIndex
	if need := int(i/8 + 1); len(b.bits) < need {
		b.bits = append(b.bits, make([]byte, need-len(b.bits))...)
	}
	if b.bits[i/8]&(1<<(i%8)) == 0 {
		b.bits[i/8] |= 1 << (i % 8)
		b.version++
	}
}

// forget drops a list that was garbage collected.
func (l *statusLists) forget(id int64) {
	l.mu.Lock()
	delete(l.bits, id)
	delete(l.lists, id)
	l.mu.Unlock()
}

// statusURI is the URI of list id.
func (s *Server) statusURI(id int64) string {
	return s.cfg.Issuer + statusListPath + strconv.FormatInt(id, 10)
}

// list returns the served list id, reading its record from storage the
// first time; ErrNotFound when it does not exist or has expired.
func (s *Server) statusListByID(ctx context.Context, id int64) (*statusList, error) {
	l := s.status
	l.mu.Lock()
	sl := l.lists[id]
	l.mu.Unlock()
	if sl == nil {
		meta, err := s.store.GetStatusList(ctx, id)
		if err != nil {
			return nil, err
		}
		sl = &statusList{meta: meta, bits: l.bitsOf(id)}
		sl.expires.Store(meta.ExpiresAt.UnixNano())
		l.mu.Lock()
		if old := l.lists[id]; old != nil {
			sl = old
		} else {
			l.lists[id] = sl
		}
		l.mu.Unlock()
	}
	if time.Unix(0, sl.expires.Load()).Compare(s.cfg.Now()) <= 0 {
		// The list's tokens have all expired by the list's last known
		// expiry; read it again in case another instance extended it.
		meta, err := s.store.GetStatusList(ctx, id)
		if err != nil || !meta.ExpiresAt.After(s.cfg.Now()) {
			s.status.forget(id)
			return nil, storage.ErrNotFound
		}
		sl.expires.Store(meta.ExpiresAt.UnixNano())
	}
	return sl, nil
}

// handleStatusList serves GET /statuslists/{id}.
func (s *Server) handleStatusList(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(mux.Vars(r)["id"], 10, 64)
	if err != nil || id <= 0 {
		notFound(w, r)
		return
	}
	ctx := r.Context()
	sl, err := s.statusListByID(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		notFound(w, r)
		return
	}
	if err != nil {
		s.log.ErrorContext(ctx, "status list", "list", id, "err", err)
		writeOAuthError(w, unavailable(err))
		return
	}
	if !s.revoked.fresh(ctx) {
		s.log.WarnContext(ctx, "status list: revocation feed unavailable", "list", id)
	}
	cur, err := s.currentStatus(ctx, sl)
	if err != nil {
		s.log.ErrorContext(ctx, "status list", "list", id, "err", err)
		writeOAuthError(w, unavailable(err))
		return
	}
	h := w.Header()
	h.Set("ETag", cur.etag)
	h.Set("Cache-Control", "max-age="+strconv.Itoa(int(s.cfg.StatusList.TTL/time.Second)))
	if etagMatch(r.Header.Get("If-None-Match"), cur.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", statusMediaType)
	h.Set("Content-Length", strconv.Itoa(len(cur.token)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(cur.token)
	}
}

// etagMatch implements If-None-Match's weak comparison (RFC 9110 §13.1.2).
func etagMatch(header, etag string) bool {
	if header == "" {
		return false
	}
	for t := range strings.SplitSeq(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == etag {
			return true
		}
	}
	return false
}

// currentStatus returns the list's token, rebuilding it (one request at a
// time; the others get the previous token) when its bits changed and it is
// at least statusRebuildInterval old, or when it is half-way to exp.
func (s *Server) currentStatus(ctx context.Context, sl *statusList) (*builtStatus, error) {
	cur := sl.current.Load()
	now := s.cfg.Now()
	if cur != nil {
		age := now.Sub(cur.built)
		if age < statusRebuildInterval {
			return cur, nil
		}
		sl.bits.mu.Lock()
		v := sl.bits.version
		sl.bits.mu.Unlock()
		if v == cur.version && age < s.cfg.StatusList.TokenLifetime/2 {
			return cur, nil
		}
		if !sl.build.TryLock() {
			return cur, nil
		}
	} else {
		sl.build.Lock()
	}
	defer sl.build.Unlock()
	if c := sl.current.Load(); c != nil && c != cur {
		return c, nil // built while this request waited
	}
	b, err := s.buildStatus(ctx, sl, now)
	if err != nil {
		if cur != nil {
			return cur, nil
		}
		return nil, err
	}
	sl.current.Store(b)
	return b, nil
}

// buildStatus compresses and signs the list's bits.
func (s *Server) buildStatus(ctx context.Context, sl *statusList, now time.Time) (*builtStatus, error) {
	raw := make([]byte, sl.meta.Size/8)
	sl.bits.mu.Lock()
	copy(raw, sl.bits.bits)
	v := sl.bits.version
	sl.bits.mu.Unlock()
	var z bytes.Buffer
	zw, err := zlib.NewWriterLevel(&z, zlib.BestCompression)
	if err != nil {
		return nil, fmt.Errorf("authserver: status list: %w", err)
	}
	if _, err := zw.Write(raw); err != nil {
		return nil, fmt.Errorf("authserver: status list: compress: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("authserver: status list: compress: %w", err)
	}
	uri := s.statusURI(sl.meta.ID)
	c := statusListClaims{
		Issuer:     s.cfg.Issuer,
		Subject:    uri,
		IssuedAt:   now.Unix(),
		Expiry:     now.Add(s.cfg.StatusList.TokenLifetime).Unix(),
		TTL:        int64(s.cfg.StatusList.TTL / time.Second),
		StatusList: statusListLst{Bits: 1, Lst: base64.RawURLEncoding.EncodeToString(z.Bytes())},
	}
	tok, err := s.strategy.sign(ctx, c, "statuslist+jwt")
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(tok))
	return &builtStatus{token: []byte(tok), etag: `"` + hex.EncodeToString(sum[:12]) + `"`, built: now, version: v}, nil
}

// statusAggregationPath is the Status List Aggregation endpoint (draft §9).
const statusAggregationPath = "/statuslists"

// handleStatusAggregation serves the URIs of every live list (draft §9.3):
// {"status_lists": ["…", …]}.
func (s *Server) handleStatusAggregation(w http.ResponseWriter, r *http.Request) {
	ls, err := s.store.ListStatusLists(r.Context(), s.cfg.Now())
	if err != nil {
		s.log.ErrorContext(r.Context(), "status list aggregation", "err", err)
		writeOAuthError(w, unavailable(err))
		return
	}
	uris := make([]string, 0, len(ls))
	for _, l := range ls {
		uris = append(uris, s.statusURI(l.ID))
	}
	w.Header().Set("Cache-Control", "max-age="+strconv.Itoa(int(s.cfg.StatusList.TTL/time.Second)))
	writeJSON(w, http.StatusOK, map[string][]string{"status_lists": uris})
}
