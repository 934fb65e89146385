package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// The state's path map sends a scenario's request to another server's path,
// or to a whole other URL; unmapped paths and a nil state are unchanged.
func TestRequestFollowsStatePaths(t *testing.T) {
	var got []string
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = append(got, r.Host+r.URL.Path) })
	a, b := httptest.NewServer(h), httptest.NewServer(h)
	defer a.Close()
	defer b.Close()
	e := &target{base: a.URL, client: a.Client()}
	if _, _, err := e.request(t.Context(), http.MethodGet, "/token", "", nil, false); err != nil {
		t.Fatal(err)
	}
	e.state = &benchState{Paths: map[string]string{"/token": "/oauth2/token", "/introspect": b.URL + "/admin/oauth2/introspect"}}
	for _, p := range []string{"/token", "/introspect", "/.well-known/jwks.json"} {
		if _, _, err := e.request(t.Context(), http.MethodGet, p, "", nil, false); err != nil {
			t.Fatal(err)
		}
	}
	ha, hb := a.Listener.Addr().String(), b.Listener.Addr().String()
	want := []string{ha + "/token", ha + "/oauth2/token", hb + "/admin/oauth2/introspect", ha + "/.well-known/jwks.json"}
	if len(got) != len(want) {
		t.Fatalf("requests %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("request %d went to %s, want %s", i, got[i], want[i])
		}
	}
}
