package resource

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestMetadataURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://api.example.com":         "https://api.example.com/.well-known/oauth-protected-resource",
		"https://api.example.com/":        "https://api.example.com/.well-known/oauth-protected-resource",
		"https://api.example.com/v1":      "https://api.example.com/.well-known/oauth-protected-resource/v1",
		"https://api.example.com/v1/?x=1": "https://api.example.com/.well-known/oauth-protected-resource/v1?x=1",
		"http://localhost:8080/api":       "http://localhost:8080/.well-known/oauth-protected-resource/api",
	} {
		got, err := MetadataURL(in)
		if err != nil || got != want {
			t.Errorf("MetadataURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"api", "/api", "https://api.example.com/#frag", "::"} {
		if _, err := MetadataURL(bad); err == nil {
			t.Errorf("MetadataURL(%q) succeeded", bad)
		}
	}
}

func TestMetadataHandler(t *testing.T) {
	is := newTestIssuer(t)
	m := newAuth(t, is, nil).Metadata()
	m.ScopesSupported = []string{"read:items"}
	h := MetadataHandler(m)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, WellKnownPath+"/api", nil))
	if w.Code != 200 || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, content type %q", w.Code, w.Header().Get("Content-Type"))
	}
	var got map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"resource":                          is.audience(),
		"authorization_servers":             []any{is.URL()},
		"scopes_supported":                  []any{"read:items"},
		"bearer_methods_supported":          []any{"header"},
		"dpop_signing_alg_values_supported": []any{"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"},
	}
	gb, _ := json.Marshal(got)
	wb, _ := json.Marshal(want)
	if string(gb) != string(wb) {
		t.Errorf("metadata\n%s\nwant\n%s", gb, wb)
	}
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, WellKnownPath, nil))
	if w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: status %d", w.Code)
	}
}
