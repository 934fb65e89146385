package keys

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/oauthkit/authserver/storage"
)

// With ExtraAlgorithms, each algorithm keeps one active key in the same
// rotation machinery, and the JWKS publishes both.
func TestExtraAlgorithmKeepsItsOwnActiveKey(t *testing.T) {
	clk := newClock()
	cfg := testConfig(clk, ES256)
	cfg.ExtraAlgorithms = []string{RS256, ES256} // ES256 (the primary) is ignored
	store := newFakeStore()
	m := mustNew(t, store, cfg)
	ctx := t.Context()

	prim, err := m.Current()
	if err != nil || prim.Algorithm != ES256 {
		t.Fatalf("Current = %v, %v; want the ES256 key", prim.Algorithm, err)
	}
	rs, err := m.CurrentFor(RS256)
	if err != nil || rs.Algorithm != RS256 || rs.KeyID == prim.KeyID {
		t.Fatalf("CurrentFor(RS256) = %v %v, %v", rs.Algorithm, rs.KeyID, err)
	}
	if _, err := m.CurrentFor(EdDSA); err == nil {
		t.Fatal("CurrentFor(EdDSA) found a key that was never configured")
	}
	if got := m.Algorithms(); !slices.Equal(got, []string{ES256, RS256}) {
		t.Fatalf("Algorithms = %v", got)
	}
	body, _ := m.JWKS()
	var jwks struct {
		Keys []struct{ Kid, Alg string } `json:"keys"`
	}
	if err := json.Unmarshal(body, &jwks); err != nil || len(jwks.Keys) != 2 {
		t.Fatalf("JWKS %s: %v", body, err)
	}

	// One rotation schedule for both: a forced rotation moves each group on.
	if err := m.Rotate(ctx, true); err != nil {
		t.Fatal(err)
	}
	prim2, _ := m.Current()
	rs2, _ := m.CurrentFor(RS256)
	if prim2.KeyID == prim.KeyID || rs2.KeyID == rs.KeyID || prim2.Algorithm != ES256 || rs2.Algorithm != RS256 {
		t.Fatalf("after Rotate: %s/%s and %s/%s", prim2.Algorithm, prim2.KeyID, rs2.Algorithm, rs2.KeyID)
	}
	active := map[string]int{}
	for _, k := range store.stored(t).Keys {
		if k.State == storage.KeyActive {
			active[k.Algorithm]++
		}
	}
	if active[ES256] != 1 || active[RS256] != 1 {
		t.Fatalf("active keys by algorithm: %v", active)
	}

	// The schedule: after a whole period, Step alone has rotated both.
	clk.Add(cfg.RotationPeriod + m.PrePublication())
	for range 3 {
		if err := m.Step(ctx); err != nil {
			t.Fatal(err)
		}
		clk.Add(m.PrePublication())
	}
	prim3, _ := m.Current()
	rs3, _ := m.CurrentFor(RS256)
	if prim3.KeyID == prim2.KeyID || rs3.KeyID == rs2.KeyID {
		t.Fatal("Step did not rotate both algorithms' keys")
	}
}
