package allow

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gorilla/mux"
)

func TestMethods(t *testing.T) {
	r := mux.NewRouter()
	noop := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	r.Handle("/a", noop).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/a", noop).Methods(http.MethodDelete)
	r.Handle("/b/{id}", noop).Methods(http.MethodPut)
	for path, want := range map[string]string{"/a": "GET, HEAD, DELETE", "/b/x": "PUT", "/c": ""} {
		if got := Methods(r, httptest.NewRequest(http.MethodPost, path, nil)); got != want {
			t.Errorf("Methods(%s) = %q, want %q", path, got, want)
		}
	}
}
