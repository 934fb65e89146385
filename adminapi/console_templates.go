package adminapi

import (
	"fmt"
	"html/template"
	"sort"
	"time"
)

// navItem is an entry of the console's navigation.
type navItem struct{ Page, Href, Label string }

// consoleNav is the navigation, in order; Page is the template name.
var consoleNav = []navItem{
	{"dashboard", "/admin/ui/", "Dashboard"},
	{"users", "/admin/ui/users", "Users"},
	{"clients", "/admin/ui/clients", "Clients"},
	{"keys", "/admin/ui/keys", "Keys"},
	{"sessions", "/admin/ui/sessions", "Sessions"},
	{"audit", "/admin/ui/audit", "Audit log"},
}

// consoleTemplates are the console's pages: server-rendered, no script,
// usable on a phone (one column under 40em).
var consoleTemplates = template.Must(template.New("console").Funcs(template.FuncMap{
	"num":      func(f float64) string { return fmt.Sprintf("%.0f", f) },
	"navItems": func() []navItem { return consoleNav },
	// when shortens an audit event's RFC 3339 time to the second, in UTC.
	"when": func(v any) string {
		switch v := v.(type) {
		case time.Time:
			return v.UTC().Format(time.DateTime)
		case *time.Time:
			if v != nil {
				return v.UTC().Format(time.DateTime)
			}
			return ""
		case string:
			if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
				return t.UTC().Format(time.DateTime)
			}
			return v
		}
		return fmt.Sprint(v)
	},
	"keys": func(m map[string]any) []string {
		out := make([]string, 0, len(m))
		for k := range m {
			if k != "time" && k != "event" {
				out = append(out, k)
			}
		}
		sort.Strings(out)
		return out
	},
}).Parse(`
{{define "head"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Page}} · authserver admin</title>
<style>
body{font:16px/1.4 system-ui,sans-serif;margin:0;color:#111;background:#fff}
header{background:#1d3557;color:#fff;padding:.5em 1em;display:flex;flex-wrap:wrap;gap:.5em 1em;align-items:center}
header a{color:#fff} nav{display:flex;flex-wrap:wrap;gap:.25em 1em} nav a[aria-current]{font-weight:bold;text-decoration-thickness:3px}
main{padding:1em;max-width:70em}
a{color:#1a4f8b} a:focus-visible,button:focus-visible,input:focus-visible{outline:3px solid #e76f00;outline-offset:2px}
header a:focus-visible,header button:focus-visible{outline-color:#ffd166}
table{border-collapse:collapse;width:100%} th,td{text-align:left;padding:.3em;border-bottom:1px solid #ccc;vertical-align:top} td.details{overflow-wrap:anywhere}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(24em,100%),1fr));gap:1em}
figure{margin:0;border:1px solid #ccc;padding:.5em} svg{width:100%;height:auto} rect{fill:#1d3557} svg text{fill:#555;font-size:8px}
.secret{background:#ffe8a3;padding:.5em;overflow-wrap:anywhere} .error{color:#a00} .notice{color:#155724;background:#e6f4ea;padding:.5em}
.muted{color:#555} code{overflow-wrap:anywhere}
label{display:block;margin:.3em 0} input{font:inherit;max-width:100%} button{font:inherit;padding:.4em .8em}
form.inline{display:inline}
@media (max-width:40em){th:nth-child(n+4),td:nth-child(n+4){display:none}}
</style></head><body>
<header><strong>authserver admin</strong>
<nav aria-label="Console">{{$p := .Page}}{{range navItems}}<a href="{{.Href}}"{{if eq .Page $p}} aria-current="page"{{end}}>{{.Label}}</a>{{end}}</nav>
<form method="post" action="/admin/ui/logout"><input type="hidden" name="csrf" value="{{.CSRF}}"><button>Sign out {{.Me}}</button></form>
</header><main class="console">{{end}}
{{define "foot"}}</main></body></html>{{end}}

{{define "dashboard"}}{{template "head" .}}<h1>Dashboard</h1><p>Per minute, last hour.</p>
<div class="charts">{{range .Charts}}<figure><figcaption>{{.Title}}: {{num .Total}} in the last hour</figcaption>
<svg viewBox="0 0 300 62" role="img" aria-label="{{.Title}} per minute, peak {{num .Max}}"><line x1="0" y1="50.5" x2="300" y2="50.5" stroke="#767676"/>
{{range .Bars}}<rect x="{{.X}}" y="{{.Y}}" width="4" height="{{.H}}"><title>{{num .V}}</title></rect>{{end}}
<text x="0" y="60">60 min ago</text><text x="300" y="60" text-anchor="end">now</text></svg></figure>{{else}}<p>No metrics.</p>{{end}}</div>
{{template "foot" .}}{{end}}

{{define "users"}}{{template "head" .}}<h1>Users</h1>
<form method="get" action="/admin/ui/users"><label>Find by email <input type="email" name="email" value="{{.Email}}"></label><button>Find</button></form>
<table><thead><tr><th scope="col">Email</th><th scope="col">Status</th><th scope="col">Action</th><th scope="col">Name</th><th scope="col">Roles</th><th scope="col">ID</th></tr></thead><tbody>
{{range .Users}}<tr><td>{{.Email}}</td><td>{{if .Disabled}}disabled{{else}}active{{end}}</td><td>
<form class="inline" method="post" action="/admin/ui/users/{{.ID}}/{{if .Disabled}}enable{{else}}disable{{end}}"><input type="hidden" name="csrf" value="{{$.CSRF}}"><button aria-label="{{if .Disabled}}Enable{{else}}Disable{{end}} {{.Email}}">{{if .Disabled}}Enable{{else}}Disable{{end}}</button></form>
<a href="/admin/ui/sessions?email={{.Email}}" aria-label="Sessions of {{.Email}}">Sessions</a></td>
<td>{{.Name}}</td><td>{{range .Roles}}{{.}} {{end}}</td><td><code>{{.ID}}</code></td></tr>{{else}}<tr><td colspan="6">No users.</td></tr>{{end}}
</tbody></table>{{if .Next}}<p><a href="/admin/ui/users?cursor={{.Next}}">Next page</a></p>{{end}}
{{template "foot" .}}{{end}}

{{define "clients"}}{{template "head" .}}<h1>Clients</h1>
{{if .Error}}<p class="error" role="alert">{{.Error}}</p>{{end}}
{{if .Secret}}<p class="secret" role="status">Created {{.Created}}. Its secret, shown once: <code>{{.Secret}}</code></p>{{end}}
<table><thead><tr><th scope="col">ID</th><th scope="col">Grants</th><th scope="col">Scopes</th><th scope="col">Name</th><th scope="col">Public</th></tr></thead><tbody>
{{range .Clients}}<tr><td><code>{{.ID}}</code></td><td>{{range .GrantTypes}}{{.}} {{end}}</td><td>{{range .Scopes}}{{.}} {{end}}</td><td>{{.Name}}</td><td>{{.Public}}</td></tr>{{end}}
</tbody></table>
<h2>Register a confidential client</h2>
<form method="post" action="/admin/ui/clients"><input type="hidden" name="csrf" value="{{.CSRF}}">
<label>ID <input name="id" required></label><label>Name <input name="name"></label>
<label>Grants (space-separated) <input name="grants" value="client_credentials"></label><label>Scopes (space-separated) <input name="scopes"></label>
<button>Register</button></form>
{{template "foot" .}}{{end}}

{{define "keys"}}{{template "head" .}}<h1>Signing keys</h1>
<table><thead><tr><th scope="col">Key ID</th><th scope="col">State</th><th scope="col">Algorithm</th><th scope="col">Created (UTC)</th><th scope="col">Activates (UTC)</th></tr></thead><tbody>
{{range .Keys}}<tr><td><code>{{.ID}}</code></td><td>{{.State}}</td><td>{{.Algorithm}}</td><td>{{when .CreatedAt}}</td><td>{{when .ActivateAt}}</td></tr>{{end}}
</tbody></table>
<form method="post" action="/admin/ui/keys"><input type="hidden" name="csrf" value="{{.CSRF}}">
<label><input type="checkbox" name="now"> Activate at once (tokens it signs may fail where the JWKS is cached)</label><button>Rotate</button></form>
{{template "foot" .}}{{end}}

{{define "sessions"}}{{template "head" .}}<h1>Sessions and consents</h1>
<form method="get" action="/admin/ui/sessions"><label>User's email <input type="email" name="email" value="{{.Email}}" required></label><button>Show</button></form>
{{if .Error}}<p class="error" role="alert">{{.Error}}</p>{{end}}
{{if eq .Done "sessions"}}<p class="notice" role="status">Every browser session of the user ended; their tokens are revoked.</p>{{end}}
{{if eq .Done "consent"}}<p class="notice" role="status">Consent revoked: the user is asked again next time.</p>{{end}}
{{with .User}}<h2>{{.Email}}{{if .Name}} ({{.Name}}){{end}}{{if .Disabled}} · disabled{{end}}</h2>
<h3>Browser sessions</h3>
<p class="muted">A browser session is stored under a hash of its cookie, which is never shown. Ending the sessions signs the user out
of every browser, sends logout tokens to the clients registered for back-channel logout, and revokes every token and remembered consent of the user.</p>
<form method="post" action="/admin/ui/users/{{.ID}}/sessions/revoke"><input type="hidden" name="csrf" value="{{$.CSRF}}"><button>End all sessions of {{.Email}}</button></form>
<h3>Consents</h3>
<table class="consents"><thead><tr><th scope="col">Client</th><th scope="col">Scopes</th><th scope="col">Action</th><th scope="col">Granted (UTC)</th></tr></thead><tbody>
{{range $.Consents}}<tr><td><code>{{.ClientID}}</code></td><td>{{range .Scopes}}{{.}} {{end}}</td><td>
<form method="post" action="/admin/ui/users/{{$.User.ID}}/consents/revoke"><input type="hidden" name="csrf" value="{{$.CSRF}}"><input type="hidden" name="client_id" value="{{.ClientID}}"><button aria-label="Revoke the consent to {{.ClientID}}">Revoke</button></form></td>
<td>{{when .GrantedAt}}</td></tr>{{else}}<tr><td colspan="4">No remembered consents.</td></tr>{{end}}
</tbody></table>{{end}}
{{template "foot" .}}{{end}}

{{define "error"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Page}} · authserver admin</title>
<style>body{font:16px/1.4 system-ui,sans-serif;margin:0;color:#111;background:#fff} header{background:#1d3557;color:#fff;padding:.5em 1em} main{padding:1em}
a{color:#1a4f8b} a:focus-visible{outline:3px solid #e76f00;outline-offset:2px}</style></head><body>
<header><strong>authserver admin</strong></header><main class="console"><h1>{{.Status}} {{.Page}}</h1><p class="error" role="alert">{{.Message}}</p>
<p><a href="/admin/ui/">Back to the console</a></p></main></body></html>{{end}}

{{define "audit"}}{{template "head" .}}<h1>Audit log</h1>
<form method="get" action="/admin/ui/audit"><label>Event <input name="event" value="{{.Event}}"></label><button>Filter</button></form>
<table><thead><tr><th scope="col">Time (UTC)</th><th scope="col">Event</th><th scope="col">Details</th></tr></thead><tbody>
{{range .Events}}<tr><td>{{when (index . "time")}}</td><td>{{index . "event"}}</td><td class="details">{{$e := .}}{{range keys .}}{{.}}={{index $e .}} {{end}}</td></tr>{{else}}<tr><td colspan="3">No events.</td></tr>{{end}}
</tbody></table>
{{template "foot" .}}{{end}}
`))
