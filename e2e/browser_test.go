package e2e

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
)

// browser is a user agent without JavaScript for the end-to-end tests: a
// cookie jar, redirects followed only within the instance that sent them
// (a redirect to a client's redirect URI is returned, not followed), and
// forms read from the HTML with a real parser.
//
// The instances of a test all listen on 127.0.0.1, and a cookie jar ignores
// ports, so a cookie set by one instance is sent to every instance: the way
// a browser sees several instances behind one public origin.
type browser struct {
	t   testing.TB
	jar *cookiejar.Jar
	c   *http.Client
}

func newBrowser(t testing.TB) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{t: t, jar: jar, c: &http.Client{
		Jar:     jar,
		Timeout: 30 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Host != via[0].URL.Host || len(via) > 10 {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}}
}

// page is a response with its body read.
type page struct {
	status int
	body   string
	// url is the URL of the request that answered (after redirects).
	url *url.URL
	// location is set when the response is a redirect the browser did not
	// follow, such as the authorization response to a client.
	location *url.URL
	// redirected reports whether the browser followed a redirect to get here.
	redirected bool
}

func (b *browser) do(req *http.Request) *page {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	p := &page{status: resp.StatusCode, body: string(body), url: resp.Request.URL, redirected: resp.Request.Response != nil}
	if loc := resp.Header.Get("Location"); loc != "" && resp.StatusCode/100 == 3 {
		if p.location, err = resp.Request.URL.Parse(loc); err != nil {
			b.t.Fatalf("bad Location %q: %v", loc, err)
		}
	}
	return p
}

func (b *browser) get(rawURL string) *page {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.do(req)
}

func (b *browser) post(rawURL string, form url.Values) *page {
	b.t.Helper()
	req, err := http.NewRequest(http.MethodPost, rawURL, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// submit fills the page's form with fields and posts it. With base set
// (an instance's URL), the form is posted to that instance instead of the
// one that rendered it: another instance behind the same origin.
func (b *browser) submit(p *page, base string, fields url.Values) *page {
	b.t.Helper()
	action, values := p.form(b.t)
	for k, v := range fields {
		values[k] = v
	}
	if base != "" {
		u, err := url.Parse(base)
		if err != nil {
			b.t.Fatal(err)
		}
		action.Scheme, action.Host = u.Scheme, u.Host
	}
	return b.post(action.String(), values)
}

// cookie returns the value of the cookie the browser sends to rawURL, or "".
func (b *browser) cookie(rawURL, name string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		b.t.Fatal(err)
	}
	for _, c := range b.jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// form returns the resolved action and the prefilled fields (hidden inputs
// and inputs with a value) of the page's first POST form. Submit buttons are
// left out: the caller picks one.
func (p *page) form(t testing.TB) (*url.URL, url.Values) {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(p.body))
	if err != nil {
		t.Fatalf("parse the page: %v", err)
	}
	f := find(doc, func(n *html.Node) bool {
		return n.Data == "form" && strings.EqualFold(attr(n, "method"), "post")
	})
	if f == nil {
		t.Fatalf("no form on the page %s (status %d): %s", p.url, p.status, p.body)
	}
	action, err := p.url.Parse(attr(f, "action"))
	if err != nil {
		t.Fatalf("form action %q: %v", attr(f, "action"), err)
	}
	values := url.Values{}
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "input" && attr(n, "name") != "" {
			if typ := strings.ToLower(attr(n, "type")); typ != "submit" && typ != "button" {
				if _, ok := attrOK(n, "value"); ok || typ == "hidden" {
					values.Add(attr(n, "name"), attr(n, "value"))
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(f)
	return action, values
}

// hasInput reports whether the page has an input or button named name.
func (p *page) hasInput(name string) bool {
	doc, err := html.Parse(strings.NewReader(p.body))
	if err != nil {
		return false
	}
	return find(doc, func(n *html.Node) bool {
		return (n.Data == "input" || n.Data == "button") && attr(n, "name") == name
	}) != nil
}

func find(n *html.Node, match func(*html.Node) bool) *html.Node {
	if n.Type == html.ElementNode && match(n) {
		return n
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if m := find(c, match); m != nil {
			return m
		}
	}
	return nil
}

func attrOK(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Namespace == "" && a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

func attr(n *html.Node, key string) string {
	v, _ := attrOK(n, key)
	return v
}
