package authserver

import (
	"bytes"
	"compress/zlib"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/oauthkit/authserver/storage"
)

// tokenStatus reads the status claim of an access token (unverified: the
// token comes straight from the server).
func tokenStatus(t *testing.T, at string) (uri string, idx int64) {
	t.Helper()
	parts := strings.Split(at, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", at)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Status struct {
			StatusList struct {
				Idx *int64 `json:"idx"`
				URI string `json:"uri"`
			} `json:"status_list"`
		} `json:"status"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	if c.Status.StatusList.Idx == nil || c.Status.StatusList.URI == "" {
		t.Fatalf("access token without a status claim: %s", b)
	}
	return c.Status.StatusList.URI, *c.Status.StatusList.Idx
}

// fetchStatus GETs a list URI (with If-None-Match when etag is set).
func fetchStatus(t *testing.T, uri, etag string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, uri, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/statuslist+jwt")
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// decodeStatusList is an implementation of the draft's decoding written for
// the test, independent of the server's encoder: go-jose verifies the
// signature with the published JWKS, compress/zlib inflates lst.
func decodeStatusList(t *testing.T, issuer, uri string, body []byte) []byte {
	t.Helper()
	resp, err := http.Get(issuer + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	jws, err := jose.ParseSignedCompact(string(body), []jose.SignatureAlgorithm{jose.ES256, jose.RS256})
	if err != nil {
		t.Fatalf("parse list token: %v", err)
	}
	h := jws.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders["typ"].(string); typ != "statuslist+jwt" {
		t.Fatalf("typ = %q, want statuslist+jwt", typ)
	}
	keys := set.Key(h.KeyID)
	if len(keys) == 0 {
		t.Fatalf("no published key %q", h.KeyID)
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		t.Fatalf("list token signature: %v", err)
	}
	var c struct {
		Sub        string `json:"sub"`
		Iat, Exp   int64
		TTL        *int64 `json:"ttl"`
		StatusList struct {
			Bits int    `json:"bits"`
			Lst  string `json:"lst"`
		} `json:"status_list"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	now := time.Now().Unix()
	if c.Sub != uri || c.Iat == 0 || c.Iat > now+1 || c.Exp <= now || c.TTL == nil || *c.TTL <= 0 || c.StatusList.Bits != 1 {
		t.Fatalf("list token claims = %s (uri %s)", payload, uri)
	}
	z, err := base64.RawURLEncoding.DecodeString(c.StatusList.Lst)
	if err != nil {
		t.Fatalf("lst is not base64url without padding: %v", err)
	}
	zr, err := zlib.NewReader(bytes.NewReader(z))
	if err != nil {
		t.Fatalf("lst is not ZLIB: %v", err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// statusBit reads the status of idx: bit idx%8, from the least significant,
// of byte idx/8.
func statusBit(raw []byte, idx int64) byte {
	return raw[idx/8] >> (idx % 8) & 1
}

// listBits fetches and decodes a list, waiting out the rebuild interval.
func listBits(t *testing.T, issuer, uri string) []byte {
	t.Helper()
	resp := fetchStatus(t, uri, "")
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/statuslist+jwt" {
		t.Fatalf("GET %s: %d %s %s", uri, resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	return decodeStatusList(t, issuer, uri, body)
}

// waitBit polls the list until idx reads want, for at most limit.
func waitBit(t *testing.T, issuer, uri string, idx int64, want byte, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		raw := listBits(t, issuer, uri)
		if statusBit(raw, idx) == want {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("bit %d of %s is still %d after %v", idx, uri, 1-want, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func smallLists(c *Config) {
	c.StatusList = StatusListConfig{Size: 1 << 10, BlockSize: 16}
	c.RevocationMaxDelay = 200 * time.Millisecond
}

func TestStatusListRevocationSetsTheBit(t *testing.T) {
	env := newTestEnv(t, openSQLite(t), smallLists)
	other, _ := secondInstance(t, env, smallLists)
	limit := statusRebuildInterval + time.Second

	t.Run("RFC7009", func(t *testing.T) {
		at, _ := env.passwordToken("alice@example.com", alicePW)
		uri, idx := tokenStatus(t, at)
		if !strings.HasPrefix(uri, env.issuer+"/statuslists/") {
			t.Fatalf("uri = %s", uri)
		}
		if statusBit(listBits(t, env.issuer, uri), idx) != 0 {
			t.Fatal("a fresh token is not VALID")
		}
		env.revoke(at)
		waitBit(t, env.issuer, uri, idx, 1, limit)
		// Another instance serves the same list from the feed.
		otherURI := strings.Replace(uri, env.issuer, other, 1)
		resp := fetchStatus(t, otherURI, "")
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		raw := decodeStatusList(t, env.issuer, uri, body) // sub is the issuer's URI
		if statusBit(raw, idx) != 1 {
			t.Fatal("the other instance's list does not have the bit")
		}
	})
	t.Run("RefreshReuseDetection", func(t *testing.T) {
		_, rt := env.passwordToken("alice@example.com", alicePW)
		resp := env.post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"demo"}}, "", "")
		m := decode(t, resp)
		at2, _ := m["access_token"].(string)
		uri, idx := tokenStatus(t, at2)
		time.Sleep(10 * time.Millisecond)
		resp = env.post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"demo"}}, "", "")
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("reuse: %d %v", resp.StatusCode, decode(t, resp))
		}
		resp.Body.Close()
		waitBit(t, env.issuer, uri, idx, 1, limit)
	})
	t.Run("RevokeTokensBySubject", func(t *testing.T) {
		// `tokens revoke`, user disable and user delete all end the user's
		// tokens with RevokeTokens.
		at, _ := env.passwordToken("bob@example.com", bobPW)
		uri, idx := tokenStatus(t, at)
		if _, err := env.store.RevokeTokens(t.Context(), storage.TokenFilter{Subject: env.bob.ID}); err != nil {
			t.Fatal(err)
		}
		waitBit(t, env.issuer, uri, idx, 1, limit)
	})
	t.Run("OthersStayValid", func(t *testing.T) {
		at, _ := env.passwordToken("alice@example.com", alicePW)
		uri, idx := tokenStatus(t, at)
		time.Sleep(limit)
		if statusBit(listBits(t, env.issuer, uri), idx) != 0 {
			t.Fatal("an unrevoked token reads INVALID")
		}
	})
}

func TestStatusListConditionalRequests(t *testing.T) {
	env := newTestEnv(t, openMemory(t), smallLists)
	at, _ := env.passwordToken("alice@example.com", alicePW)
	uri, _ := tokenStatus(t, at)
	resp := fetchStatus(t, uri, "")
	resp.Body.Close()
	etag := resp.Header.Get("ETag")
	if resp.StatusCode != http.StatusOK || etag == "" || resp.Header.Get("Cache-Control") != "max-age=5" {
		t.Fatalf("GET: %d ETag %q Cache-Control %q", resp.StatusCode, etag, resp.Header.Get("Cache-Control"))
	}
	resp = fetchStatus(t, uri, etag)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotModified || len(body) != 0 || resp.Header.Get("ETag") != etag {
		t.Fatalf("conditional GET: %d %q ETag %q, want 304", resp.StatusCode, body, resp.Header.Get("ETag"))
	}
	// A revocation changes the list, hence the ETag (after the rebuild
	// interval).
	env.revoke(at)
	time.Sleep(statusRebuildInterval + 50*time.Millisecond)
	resp = fetchStatus(t, uri, etag)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("ETag") == etag {
		t.Fatalf("after a revocation: %d ETag %q, want 200 and a new ETag", resp.StatusCode, resp.Header.Get("ETag"))
	}
	// The metadata names the aggregation endpoint, which lists the URI.
	resp, err := http.Get(env.issuer + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	agg, _ := decode(t, resp)["status_list_aggregation_endpoint"].(string)
	if agg != env.issuer+"/statuslists" {
		t.Fatalf("status_list_aggregation_endpoint = %q", agg)
	}
	resp, err = http.Get(agg)
	if err != nil {
		t.Fatal(err)
	}
	if m := decode(t, resp); fmt.Sprint(m["status_lists"]) != "["+uri+"]" {
		t.Fatalf("aggregation = %v, want [%s]", m, uri)
	}
	for _, p := range []string{"/statuslists/0", "/statuslists/999", "/statuslists/x", "/statuslists/-1"} {
		resp := fetchStatus(t, env.issuer+p, "")
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, resp.StatusCode)
		}
	}
}

func TestStatusListIndexesAreUniqueAndUnordered(t *testing.T) {
	env := newTestEnv(t, openMemory(t), smallLists)
	seen := map[string]bool{}
	var idxs []int64
	for range 40 {
		resp := env.post("/token", url.Values{"grant_type": {"client_credentials"}}, "svc", svcSecret)
		m := decode(t, resp)
		at, _ := m["access_token"].(string)
		uri, idx := tokenStatus(t, at)
		k := uri + "#" + string(rune(idx))
		if seen[k] {
			t.Fatalf("index %d of %s issued twice", idx, uri)
		}
		seen[k] = true
		idxs = append(idxs, idx)
	}
	ascending := 0
	for i := 1; i < len(idxs); i++ {
		if idxs[i] > idxs[i-1] {
			ascending++
		}
	}
	if ascending == len(idxs)-1 || ascending == 0 {
		t.Fatalf("indexes follow issue order: %v", idxs)
	}
}

func TestStatusListPermutationIsABijection(t *testing.T) {
	for _, size := range []int64{8, 16, 1 << 9, 1 << 12} {
		p := newPermutation([]byte("0123456789abcdef0123456789abcdef"), size)
		seen := make([]bool, size)
		for pos := range size {
			i := p.apply(pos)
			if i < 0 || i >= size || seen[i] {
				t.Fatalf("size %d: position %d → %d (out of range or repeated)", size, pos, i)
			}
			seen[i] = true
		}
	}
}

// TestStatusListMemoryIsBoundedForAMillionTokens allocates 2^20 indexes
// (one full list of the default size), revokes one in eight and builds the
// list token: the bits take 128 KiB whatever the number of tokens.
func TestStatusListMemoryIsBoundedForAMillionTokens(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	env := newTestEnv(t, openMemory(t), func(c *Config) { c.StatusList = StatusListConfig{Size: 1 << 20, BlockSize: 1 << 14} })
	a := env.as.strategy.status
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var list int64
	for i := range 1 << 20 {
		l, idx, err := a.next(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if list == 0 {
			list = l
		} else if l != list {
			t.Fatalf("token %d went to list %d, want all in %d", i, l, list)
		}
		if idx%8 == 0 {
			env.as.status.revoke(storage.Revocation{StatusList: l, StatusIndex: idx})
		}
	}
	if _, _, err := a.next(t.Context()); err != nil {
		t.Fatal(err)
	}
	sl, err := env.as.statusListByID(t.Context(), list)
	if err != nil {
		t.Fatal(err)
	}
	b, err := env.as.currentStatus(t.Context(), sl)
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	grew := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("1M indexes: heap +%d KiB, list token %d bytes", grew>>10, len(b.token))
	if grew > 4<<20 {
		t.Fatalf("heap grew by %d KiB for one list of 2^20 tokens", grew>>10)
	}
	uri := env.as.statusURI(list)
	raw := decodeStatusList(t, env.issuer, uri, b.token)
	if len(raw) != 1<<17 {
		t.Fatalf("decoded list is %d bytes, want %d", len(raw), 1<<17)
	}
	ones := 0
	for _, c := range raw {
		for ; c != 0; c &= c - 1 {
			ones++
		}
	}
	if ones != 1<<17 {
		t.Fatalf("%d INVALID bits, want %d", ones, 1<<17)
	}
}
