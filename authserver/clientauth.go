package authserver

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"hash"
	"hash/maphash"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/ory/fosite"

	"github.com/oauthkit/authserver/internal/password"
	"github.com/oauthkit/authserver/storage"
)

// parseForm reads an application/x-www-form-urlencoded body strictly: a
// missing or different content type, an oversized body and a repeated
// parameter (RFC 6749 §3.2) are invalid_request.
func (s *Server) parseForm(w http.ResponseWriter, r *http.Request, repeatable ...string) (url.Values, *oauthError) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return nil, newError(http.StatusMethodNotAllowed, errInvalidRequest, "The endpoint requires POST.")
	}
	if ct := r.Header.Get("Content-Type"); ct != formContentType { // the common case needs no parsing
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != formContentType {
			return nil, invalidRequest("The request body must be application/x-www-form-urlencoded.")
		}
	}
	body, err := readBody(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes), r.ContentLength, s.cfg.MaxBodyBytes)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, newError(http.StatusRequestEntityTooLarge, errInvalidRequest, "The request body is too large.")
		}
		return nil, invalidRequest("The request body could not be read.")
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, invalidRequest("The request body is not valid form encoding.")
	}
	for k, v := range form {
		if len(v) > 1 && !slices.Contains(repeatable, k) {
			return nil, invalidRequest("The parameter '" + safeParam(k) + "' is repeated.")
		}
		if !formText(k, v) {
			return nil, invalidRequest(invalidTextDetail)
		}
	}
	// fosite reads r.PostForm; give it exactly what we validated.
	r.PostForm, r.Form = form, form
	return form, nil
}

const formContentType = "application/x-www-form-urlencoded"

// formText reports whether a parameter's name and values are text every
// backend can store and compare: valid UTF-8 (RFC 6749 Appendix B) without
// a NUL byte.
func formText(k string, vs []string) bool {
	if !validText(k) {
		return false
	}
	for _, v := range vs {
		if !validText(v) {
			return false
		}
	}
	return true
}

// validText reports whether s is valid UTF-8 without a NUL byte.
func validText(s string) bool {
	return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

// readBody reads a request body whose announced length is n (-1 when
// unknown), growing its buffer as bytes arrive: a client that announces
// max bytes and sends none holds no more than a small first buffer.
func readBody(body io.Reader, n, max int64) ([]byte, error) {
	var b bytes.Buffer
	if n > 0 && n <= max {
		b.Grow(int(min(n, 4<<10)))
	}
	if _, err := b.ReadFrom(body); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// safeParam keeps an echoed parameter name short and printable.
func safeParam(k string) string {
	if len(k) > 40 {
		k = k[:40]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return '?'
		}
		return r
	}, k)
}

// clientCredentials are what a request presented to authenticate a client.
type clientCredentials struct {
	id, secret string
	hasSecret  bool
	basic      bool
}

// readClientCredentials extracts client credentials from the Authorization
// header (client_secret_basic, RFC 6749 §2.3.1, with form-urlencoded id and
// secret) or the body (client_secret_post, or client_id alone for public
// clients). Presenting two methods at once is invalid_request.
func readClientCredentials(r *http.Request, form url.Values) (clientCredentials, *oauthError) {
	var cc clientCredentials
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, rest, _ := strings.Cut(h, " ")
		if !strings.EqualFold(scheme, "Basic") {
			return cc, invalidClient()
		}
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(rest))
		if err != nil {
			return cc, invalidClient()
		}
		id, secret, ok := strings.Cut(string(raw), ":")
		if !ok {
			return cc, invalidClient()
		}
		if id, err = url.QueryUnescape(id); err != nil {
			return cc, invalidClient()
		}
		if secret, err = url.QueryUnescape(secret); err != nil || id == "" || !validText(id) || !validText(secret) {
			return cc, invalidClient()
		}
		if _, ok := form["client_secret"]; ok {
			return cc, invalidRequest("The client used more than one authentication method.")
		}
		if fid, ok := form["client_id"]; ok && fid[0] != id {
			return cc, invalidRequest("The client_id parameter does not match the authenticated client.")
		}
		return clientCredentials{id: id, secret: secret, hasSecret: true, basic: true}, nil
	}
	cc.id = form.Get("client_id")
	if v, ok := form["client_secret"]; ok {
		cc.secret, cc.hasSecret = v[0], true
	}
	if cc.id == "" {
		return cc, invalidClient()
	}
	return cc, nil
}

// authenticateClient authenticates the client of a request. Confidential
// clients must present their secret; public clients must not present one.
func (s *Server) authenticateClient(ctx context.Context, r *http.Request, form url.Values) (storage.Client, *oauthError) {
	if hasAssertion(form) {
		return s.authenticateAssertion(ctx, r, form)
	}
	cc, oerr := readClientCredentials(r, form)
	if oerr != nil {
		return storage.Client{}, oerr
	}
	if cc.hasSecret {
		if c, ok := s.clientCache.get(cc.id, cc.secret, s.cfg.Now()); ok && !secretExpired(c, s.cfg.Now()) {
			return c, nil
		}
	}
	// A device polls every few seconds as a public client: its registration
	// is cached too, for as long as a device code lives, so that a poll
	// costs one lookup (device.go). Like every entry, it is dropped within
	// ClientChangeMaxDelay of a change to the client.
	devicePoll := !cc.hasSecret && form.Get("grant_type") == grantDeviceCode
	if devicePoll {
		if c, ok := s.clientCache.registration(cc.id, s.cfg.Now()); ok && c.Public {
			return c, nil
		}
	}
	ip := s.clientIP(r)
	if s.throttle != nil && cc.hasSecret {
		if wait := max(s.throttle.isBlocked("client:"+cc.id), s.throttle.isBlocked("ip:"+ip)); wait > 0 {
			return storage.Client{}, s.clientAuthThrottled(ctx, cc.id, wait)
		}
	}
	rd := s.clientCache.begin(cc.id)
	c, err := s.store.GetClient(ctx, cc.id)
	if errors.Is(err, storage.ErrNotFound) {
		// Same cost as a wrong secret.
		password.VerifySecret(cc.secret, "")
		s.clientAuthFailed(ctx, cc.id, ip)
		return storage.Client{}, invalidClient()
	}
	if err != nil {
		return storage.Client{}, unavailable(err)
	}
	if usesAssertion(c) {
		// A client registered for a JWT method authenticates with nothing
		// else (RFC 7591 §2: one token_endpoint_auth_method).
		s.clientAuthFailed(ctx, cc.id, ip)
		return storage.Client{}, assertionError("The client must authenticate with a client assertion (" + AuthMethodOf(c) + ").")
	}
	if c.Public {
		if cc.hasSecret {
			e := invalidClient()
			e.Description = "A public client must not present a client secret."
			return storage.Client{}, e
		}
		if devicePoll {
			s.clientCache.putRegistration(cc.id, c, s.cfg.Now(), s.cfg.DeviceCodeTTL, rd)
		}
		return c, nil
	}
	if !cc.hasSecret {
		return storage.Client{}, invalidClient()
	}
	// Every hash is checked (VerifySecret compares in constant time), so
	// the time taken does not tell which secret matched.
	ok := false
	for _, h := range c.SecretHashes {
		if password.VerifySecret(cc.secret, h) {
			ok = true
		}
	}
	if ok && secretExpired(c, s.cfg.Now()) {
		s.audit(ctx, "client_secret_expired", slog.String("client_id", c.ID))
		e := invalidClient()
		e.Description = "The client secret has expired."
		return storage.Client{}, e
	}
	if !ok {
		s.clientAuthFailed(ctx, cc.id, ip)
		return storage.Client{}, invalidClient()
	}
	s.clientCache.put(cc.id, cc.secret, c, s.cfg.Now(), rd)
	return c, nil
}

// clientRegistration returns the registration of client id as stored, from
// the client cache while it is current there (see clientCache), so that
// /authorize and /par cost no storage read for a known client. It
// authenticates nothing: the caller checks what the request may do with it.
func (s *Server) clientRegistration(ctx context.Context, id string) (storage.Client, error) {
	if c, ok := s.clientCache.registration(id, s.cfg.Now()); ok {
		return c, nil
	}
	rd := s.clientCache.begin(id)
	c, err := s.store.GetClient(ctx, id)
	if err != nil {
		return storage.Client{}, err
	}
	s.clientCache.putRegistration(id, c, s.cfg.Now(), 0, rd)
	return c, nil
}

// secretExpired reports whether the client's secret has passed its
// client_secret_expires_at (RFC 7591 §3.2.1).
func secretExpired(c storage.Client, now time.Time) bool {
	return !c.SecretExpiresAt.IsZero() && !now.Before(c.SecretExpiresAt)
}

// clientAuthFailed counts a wrong client secret against the client ID and
// the address. Secrets are checked first (a SHA-256), so the hot path of a
// correct secret costs no storage write.
func (s *Server) clientAuthFailed(ctx context.Context, id, ip string) {
	s.audit(ctx, "client_auth_failed", slog.String("client_id", safeParam(id)))
	if s.throttle == nil {
		return
	}
	s.throttle.failed(ctx, "client:"+id, s.cfg.Throttle.Client)
	s.throttle.failed(ctx, "ip:"+ip, s.cfg.Throttle.IP)
}

// fositeClientAuth is fosite's ClientAuthenticationStrategy hook.
func (s *Server) fositeClientAuth(ctx context.Context, r *http.Request, form url.Values) (fosite.Client, error) {
	if st := stateFrom(ctx); st != nil && st.clientAuthenticated && st.client != nil {
		return s.fositeClient(*st.client), nil
	}
	c, oerr := s.authenticateClient(ctx, r, form)
	if oerr != nil {
		return nil, oerr
	}
	if st := stateFrom(ctx); st != nil {
		st.client = &c
	}
	return s.fositeClient(c), nil
}

// fositeClient converts a registration to fosite's client type. Every client
// may receive the server's default audience, and its registered resources.
func (s *Server) fositeClient(c storage.Client) fosite.Client {
	fc := &fosite.DefaultClient{
		ID:            c.ID,
		GrantTypes:    c.GrantTypes,
		Scopes:        c.Scopes,
		Public:        c.Public,
		Audience:      append([]string{s.cfg.Audience}, c.Resources...),
		RedirectURIs:  c.RedirectURIs,
		ResponseTypes: []string{responseTypeCode},
	}
	if len(c.SecretHashes) > 0 {
		fc.Secret = []byte(c.SecretHashes[0])
		for _, h := range c.SecretHashes[1:] {
			fc.RotatedSecrets = append(fc.RotatedSecrets, []byte(h))
		}
	}
	return fc
}

// clientCache remembers verified client credentials, so that hot endpoints
// (introspection, client_credentials, device polls) authenticate their
// caller without a storage read. Entries are found by client ID and a keyed
// hash of the ID and secret (the secret itself is never kept), and live
// ClientCacheTTL.
//
// A cached registration is trusted only while it is known to be current: an
// entry is used within ClientChangeMaxDelay of the storage read that filled
// it, or of the start of the last successful poll of the client change feed
// (clientfeed.go), which drops the entries of every changed client. So a
// client updated, rotated or deleted on any instance stops being answered
// from this cache within ClientChangeMaxDelay; while the feed cannot be read,
// entries fall back to storage reads after that delay.
type clientCache struct {
	key  []byte
	macs sync.Pool // of *cacheMAC: HMAC-SHA256 keyed with key
	ttl  time.Duration
	// maxDelay is Config.ClientChangeMaxDelay.
	maxDelay time.Duration
	// origin is the monotonic zero of the times below (nanoseconds since
	// origin), so that a wall-clock step changes no trust decision.
	origin time.Time
	// polled is when the last successful feed poll started; 0 before one.
	polled atomic.Int64
	// gens counts the forgets per slot of client IDs: a storage read that
	// overlaps a forget of its client is not cached (see begin).
	gens  [64]atomic.Uint64
	seed  maphash.Seed
	mu    sync.RWMutex
	m     map[string][]cachedClient // by client ID
	count int
}

type cachedClient struct {
	h [32]byte // HMAC of the client ID and the secret it proves; zero for a registration
	// reg marks a registration entry: the client as stored, cached without
	// a secret (public clients polling for a device code, assertion
	// clients); it proves nothing and get never returns it.
	reg bool
	c   storage.Client
	// exp is by Config.Now; read is when the storage read that filled the
	// entry started, in clientCache time.
	exp  time.Time
	read int64
}

// clientRead marks the start of a storage read of a client, for put.
type clientRead struct {
	gen uint64
	at  int64
}

const (
	// maxCachedClients bounds the cache: a verified credential that finds
	// it full clears it, a registration is then not cached (see add).
	maxCachedClients = 4096
	// maxSecretsPerClient bounds the entries of one client ID (one per
	// verified secret: a client has few during a rotation).
	maxSecretsPerClient = 4
)

func newClientCache(key []byte, ttl, maxDelay time.Duration) *clientCache {
	return &clientCache{key: key, ttl: ttl, maxDelay: maxDelay, origin: time.Now(), seed: maphash.MakeSeed(),
		m: map[string][]cachedClient{}}
}

// clock returns the cache's monotonic time.
func (cc *clientCache) clock() int64 { return int64(time.Since(cc.origin)) }

func (cc *clientCache) hash(id, secret string) [32]byte {
	// HMACs keyed with cc.key are reused with their scratch space: Reset
	// restores the keyed state without hashing the key again.
	m, _ := cc.macs.Get().(*cacheMAC)
	if m == nil {
		m = &cacheMAC{h: hmac.New(sha256.New, cc.key)}
	} else {
		m.h.Reset()
	}
	b := append(append(append(m.buf[:0], id...), 0), secret...)
	_, _ = m.h.Write(b)
	var out [32]byte
	copy(out[:], m.h.Sum(m.sum[:0]))
	clear(b) // the secret does not stay in the pool
	m.buf = b[:0]
	cc.macs.Put(m)
	return out
}

// cacheMAC is a keyed HMAC with its scratch space.
type cacheMAC struct {
	h   hash.Hash
	buf []byte
	sum [sha256.Size]byte
}

func (cc *clientCache) gen(id string) *atomic.Uint64 {
	return &cc.gens[maphash.String(cc.seed, id)%uint64(len(cc.gens))]
}

// get returns the cached client whose secret was verified to be secret.
func (cc *clientCache) get(id, secret string, now time.Time) (storage.Client, bool) {
	if cc == nil || cc.ttl <= 0 {
		return storage.Client{}, false
	}
	return cc.lookup(id, cc.hash(id, secret), false, now)
}

// registration returns the cached registration of client id (see
// cachedClient.reg).
func (cc *clientCache) registration(id string, now time.Time) (storage.Client, bool) {
	if cc == nil || cc.ttl <= 0 {
		return storage.Client{}, false
	}
	return cc.lookup(id, [32]byte{}, true, now)
}

// lookup finds the entry (h, reg) of client id, if it is current.
func (cc *clientCache) lookup(id string, h [32]byte, reg bool, now time.Time) (storage.Client, bool) {
	var e cachedClient
	ok := false
	cc.mu.RLock()
	for _, x := range cc.m[id] {
		if x.h == h && x.reg == reg {
			e, ok = x, true
			break
		}
	}
	cc.mu.RUnlock()
	if !ok || now.After(e.exp) {
		return storage.Client{}, false
	}
	if cc.clock()-max(e.read, cc.polled.Load()) > int64(cc.maxDelay) {
		return storage.Client{}, false // not known to be current
	}
	return e.c, true
}

// begin is called before a storage read of client id whose result may be
// put: put drops the result when the client was forgotten in between (the
// read may have returned what the change replaced).
func (cc *clientCache) begin(id string) clientRead {
	if cc == nil {
		return clientRead{}
	}
	return clientRead{gen: cc.gen(id).Load(), at: cc.clock()}
}

// put caches client c as proven by secret.
func (cc *clientCache) put(id, secret string, c storage.Client, now time.Time, rd clientRead) {
	if cc != nil && cc.ttl > 0 {
		cc.add(id, cachedClient{h: cc.hash(id, secret), c: c, exp: now.Add(cc.ttl), read: rd.at}, rd)
	}
}

// putRegistration caches the registration c of client id (see
// cachedClient.reg) for the cache's TTL, or atLeast if longer.
func (cc *clientCache) putRegistration(id string, c storage.Client, now time.Time, atLeast time.Duration, rd clientRead) {
	if cc != nil && cc.ttl > 0 {
		cc.add(id, cachedClient{reg: true, c: c, exp: now.Add(max(cc.ttl, atLeast)), read: rd.at}, rd)
	}
}

// add stores e, replacing the entry with the same (h, reg).
func (cc *clientCache) add(id string, e cachedClient, rd clientRead) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.gen(id).Load() != rd.gen {
		return // forgotten since the read began
	}
	es := cc.m[id]
	for i, x := range es {
		if x.h == e.h && x.reg == e.reg {
			// A registration cached for a device code's lifetime keeps it
			// when a shorter-lived use refreshes the entry.
			if e.reg && x.exp.After(e.exp) {
				e.exp = x.exp
			}
			es[i] = e
			return
		}
	}
	if cc.count >= maxCachedClients {
		if e.reg {
			// A registration is cached for requests that prove nothing
			// (/authorize names any client): it never clears the cache
			// of verified credentials, it is just not kept.
			return
		}
		clear(cc.m)
		cc.count, es = 0, nil
	}
	if len(es) >= maxSecretsPerClient {
		es = es[1:]
		cc.count--
	}
	cc.m[id] = append(es, e)
	cc.count++
}

// forget drops every cached credential of the client, so that a changed or
// deleted registration takes effect on this instance at once; the feed
// poller calls it for the changes made elsewhere.
func (cc *clientCache) forget(id string) {
	if cc == nil {
		return
	}
	cc.mu.Lock()
	cc.count -= len(cc.m[id])
	delete(cc.m, id)
	cc.gen(id).Add(1)
	cc.mu.Unlock()
}

// empty reports whether nothing is cached.
func (cc *clientCache) empty() bool {
	cc.mu.RLock()
	defer cc.mu.RUnlock()
	return cc.count == 0
}

// clearAll drops every entry; a storage read in flight is not cached.
func (cc *clientCache) clearAll() {
	cc.mu.Lock()
	clear(cc.m)
	cc.count = 0
	for i := range cc.gens {
		cc.gens[i].Add(1)
	}
	cc.mu.Unlock()
}

// prune drops the entries that expired before now.
func (cc *clientCache) prune(now time.Time) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	for id, es := range cc.m {
		kept := es[:0]
		for _, e := range es {
			if !now.After(e.exp) {
				kept = append(kept, e)
			}
		}
		cc.count -= len(es) - len(kept)
		if len(kept) == 0 {
			delete(cc.m, id)
		} else {
			cc.m[id] = kept
		}
	}
}
