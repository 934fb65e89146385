package main

import (
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/oauthkit/authserver/internal/password"
)

func TestLimitsMeasureEveryLimit(t *testing.T) {
	var got []limitRun
	err := runLimits(t.Context(), limitsConfig{
		Algorithms:      []string{"RS256", "ES256", "EdDSA"},
		Argon2:          password.TestParams,
		Concurrency:     2,
		HTTPConcurrency: 4,
		Duration:        100 * time.Millisecond,
	}, func(l limitRun) error { got = append(got, l); return nil })
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"argon2id", "sign/RS256", "verify/RS256", "sign/ES256", "verify/ES256", "sign/EdDSA", "verify/EdDSA", "http"}
	if len(got) != len(want) {
		t.Fatalf("got %d limits, want %d", len(got), len(want))
	}
	for i, l := range got {
		if l.name != want[i] || l.res.Requests == 0 || l.res.OK != l.res.Requests {
			t.Errorf("limit %d: %s ok %d of %d, errors %v", i, l.name, l.res.OK, l.res.Requests, l.res.Errors)
		}
	}
	if got[0].params != "m=64,t=1,p=1" {
		t.Errorf("argon2id params %q", got[0].params)
	}
}

func TestLimitsRejectUnknownAlgorithm(t *testing.T) {
	err := runLimits(t.Context(), limitsConfig{Algorithms: []string{"HS256"}, Duration: time.Millisecond}, func(limitRun) error { return nil })
	if err == nil {
		t.Fatal("HS256 accepted")
	}
}

func TestSignedTokensVerify(t *testing.T) {
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		s, pub, err := newLimitSigner(alg)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := signJWT(s, sampleClaims())
		if err != nil {
			t.Fatal(err)
		}
		if err := verifyJWT(tok, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)}, pub); err != nil {
			t.Errorf("%s: %v", alg, err)
		}
		if err := verifyJWT(tok[:len(tok)-4]+"AAAA", []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)}, pub); err == nil {
			t.Errorf("%s: a forged signature verified", alg)
		}
	}
}

func TestLimitsOnly(t *testing.T) {
	var got []string
	err := runLimits(t.Context(), limitsConfig{
		Algorithms: []string{"RS256"}, Argon2: password.TestParams, HTTPConcurrency: 2, Duration: 50 * time.Millisecond,
		Only: []string{"verify/EdDSA", "http"},
	}, func(l limitRun) error { got = append(got, l.name); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != "verify/EdDSA" || got[1] != "http" {
		t.Errorf("measured %v", got)
	}
	if err := runLimits(t.Context(), limitsConfig{Only: []string{"sign/HS256"}, Duration: time.Millisecond}, func(limitRun) error { return nil }); err == nil {
		t.Error("an unknown limit was accepted")
	}
}

func TestLimitsRetryKeepsTheQuietestAttempt(t *testing.T) {
	var asked []int
	var got []limitRun
	err := runLimits(t.Context(), limitsConfig{
		Only: []string{"sign/EdDSA"}, Duration: 20 * time.Millisecond,
		Retry: func(_ string, attempt int, _ float64) bool { asked = append(asked, attempt); return attempt < 3 },
	}, func(l limitRun) error { got = append(got, l); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].attempts != 3 || len(asked) != 3 {
		t.Errorf("runs %+v, asked %v", got, asked)
	}
}
