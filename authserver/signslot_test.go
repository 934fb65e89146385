package authserver

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

type panicSigner struct{ jose.Signer }

func (panicSigner) Sign([]byte) (*jose.JSONWebSignature, error) { panic("signer failure") }

// A signer that panics gives its signing slot back, so panics (recovered by
// net/http) cannot use up the slots and stall every later token response.
func TestSignGivesTheSlotBackOnPanic(t *testing.T) {
	env := newTestEnv(t, openMemory(t))
	st := env.as.strategy
	cur, err := env.km.Current()
	if err != nil {
		t.Fatal(err)
	}
	claims := map[string]any{"sub": "s"}
	if _, err := st.sign(t.Context(), claims, "at+jwt"); err != nil {
		t.Fatal(err)
	}
	key := cur.KeyID + "\x00at+jwt"
	real, _ := st.signers.Load(key)
	st.signers.Store(key, panicSigner{})
	for range cap(st.slots) + 1 {
		func() {
			defer func() { _ = recover() }()
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			defer cancel()
			_, _ = st.sign(ctx, claims, "at+jwt")
		}()
	}
	st.signers.Store(key, real)
	if n := len(st.slots); n != 0 {
		t.Fatalf("%d of %d signing slots still taken after the panics", n, cap(st.slots))
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := st.sign(ctx, claims, "at+jwt"); err != nil {
		t.Fatalf("signing after the panics: %v", err)
	}
}

// Waiting for a signing slot ends with the request's context.
func TestSignWaitsForASlotNoLongerThanTheContext(t *testing.T) {
	env := newTestEnv(t, openMemory(t))
	st := env.as.strategy
	if cap(st.slots) != runtime.GOMAXPROCS(0) {
		t.Fatalf("%d signing slots, want GOMAXPROCS (%d)", cap(st.slots), runtime.GOMAXPROCS(0))
	}
	for range cap(st.slots) {
		st.slots <- struct{}{}
	}
	defer func() {
		for range cap(st.slots) {
			<-st.slots
		}
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := st.sign(ctx, map[string]any{"sub": "s"}, "at+jwt"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("sign with every slot taken: %v, want the context's deadline", err)
	}
}
