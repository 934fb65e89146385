package ui

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

//go:embed templates/*.html static/*
var embedded embed.FS

// Page names, one per template file.
const (
	PageLogin     = "login"
	PageConsent   = "consent"
	PageMessage   = "message"
	PageLogout    = "logout"
	PageConsents  = "consents"
	PagePassword  = "password" // a new password after an administrator's reset
	PageDevice    = "device"
	pageLayout    = "layout"
	staticPrefix  = "/ui/static/"
	templatesDir  = "templates"
	staticDir     = "static"
	templateExt   = ".html"
	maxBufferSize = 1 << 20
)

// StaticPrefix is the URL path under which Pages.StaticHandler is mounted.
const StaticPrefix = staticPrefix

// Pages renders the pages. Create it with New.
type Pages struct {
	pages  map[string]*template.Template
	static http.Handler
	base   string
}

// New loads the embedded templates and static files; files in dir (when not
// empty) replace embedded ones of the same name: dir/templates/login.html
// replaces the sign-in page, dir/static/style.css the stylesheet. base is
// the path the server is mounted under ("" at the root); templates link to
// static files with {{static "style.css"}}.
func New(dir, base string) (*Pages, error) {
	tfs, err := fs.Sub(embedded, templatesDir)
	if err != nil {
		return nil, err
	}
	sfs, err := fs.Sub(embedded, staticDir)
	if err != nil {
		return nil, err
	}
	if dir != "" {
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("ui: --ui-dir %q is not a readable directory", dir)
		}
		tfs = overlay{top: os.DirFS(filepath.Join(dir, templatesDir)), base: tfs}
		sfs = overlay{top: os.DirFS(filepath.Join(dir, staticDir)), base: sfs}
	}
	layout, err := fs.ReadFile(tfs, pageLayout+templateExt)
	if err != nil {
		return nil, fmt.Errorf("ui: layout template: %w", err)
	}
	p := &Pages{pages: map[string]*template.Template{}, base: base}
	funcs := template.FuncMap{"static": func(name string) string { return base + staticPrefix + name }}
	for _, name := range []string{PageLogin, PagePassword, PageConsent, PageMessage, PageLogout, PageConsents, PageDevice} {
		body, err := fs.ReadFile(tfs, name+templateExt)
		if err != nil {
			return nil, fmt.Errorf("ui: template %s: %w", name, err)
		}
		t, err := template.New(pageLayout).Funcs(funcs).Parse(string(layout))
		if err == nil {
			_, err = t.New(name).Parse(string(body))
		}
		if err != nil {
			return nil, fmt.Errorf("ui: template %s: %w", name, err)
		}
		p.pages[name] = t
	}
	p.static = http.StripPrefix(staticPrefix, http.FileServerFS(sfs))
	return p, nil
}

// overlay is a file system whose top layer hides files of the same name in
// the base layer.
type overlay struct{ top, base fs.FS }

func (o overlay) Open(name string) (fs.File, error) {
	if f, err := o.top.Open(name); err == nil {
		if st, err := f.Stat(); err == nil && !st.IsDir() {
			return f, nil
		}
		f.Close()
	}
	return o.base.Open(name)
}

// StaticHandler serves the stylesheet and images under StaticPrefix.
func (p *Pages) StaticHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r) // no directory listings
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=3600")
		p.static.ServeHTTP(w, r)
	})
}

// Render writes page with data and status. formTargets are the origins (or
// private-use schemes, such as "com.example.app:") that a form of the page may
// end up at through a redirect, besides the server itself: browsers apply the
// CSP form-action directive to the redirects that follow a submission.
func (p *Pages) Render(w http.ResponseWriter, status int, page string, data any, formTargets ...string) {
	t, ok := p.pages[page]
	var buf bytes.Buffer
	if ok {
		if err := t.ExecuteTemplate(&buf, pageLayout, data); err != nil || buf.Len() > maxBufferSize {
			ok = false
		}
	}
	if !ok {
		// A broken operator template must not leak a half-rendered page.
		buf.Reset()
		buf.WriteString("<!doctype html><html lang=\"en\"><title>Error</title><p>The page could not be shown.</p></html>")
		status = http.StatusInternalServerError
	}
	SetHeaders(w, formTargets...)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// SetHeaders sets the security headers of an HTML page: a CSP with no script
// and no framing, no caching (the pages carry CSRF tokens), no referrer.
func SetHeaders(w http.ResponseWriter, formTargets ...string) {
	formAction := "'self'"
	for _, t := range formTargets {
		if t != "" && !strings.ContainsAny(t, " ;,'\"") {
			formAction += " " + t
		}
	}
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action "+
		formAction+"; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set("Referrer-Policy", "no-referrer")
}

// CSRF makes and checks the tokens of the pages' forms: an HMAC of values
// that bind the form to its browser (a cookie) and its purpose. A token
// cannot be made without the key, nor used from another browser.
type CSRF struct{ key []byte }

// NewCSRF returns a CSRF with a key of at least 32 bytes.
func NewCSRF(key []byte) CSRF { return CSRF{key: key} }

// Token returns the token for the binding values, in order.
func (c CSRF) Token(binding ...string) string {
	return base64.RawURLEncoding.EncodeToString(c.mac(binding))
}

// Valid reports whether token is the token for the binding values. Empty
// binding values never validate: a form without its cookie is refused.
func (c CSRF) Valid(token string, binding ...string) bool {
	for _, b := range binding {
		if b == "" {
			return false
		}
	}
	got, err := base64.RawURLEncoding.DecodeString(token)
	return err == nil && hmac.Equal(got, c.mac(binding))
}

func (c CSRF) mac(binding []string) []byte {
	m := hmac.New(sha256.New, c.key)
	for _, b := range binding {
		fmt.Fprintf(m, "%d:%s|", len(b), b)
	}
	return m.Sum(nil)
}
