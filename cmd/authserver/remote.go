package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/oauthkit/authserver/adminapi"
	"github.com/oauthkit/authserver/keys"
	"github.com/oauthkit/authserver/storage"
)

// adminTokenEnv holds the bearer token of --admin-url. It is read from the
// environment only, never from a flag, so that it stays out of process
// listings and shell history.
const adminTokenEnv = envPrefix + "ADMIN_TOKEN"

// remoteGroups are the command groups that can act through the admin API.
var remoteGroups = []string{"users", "clients", "tokens", "keys"}

// remoteCommands implement the admin commands through the admin API, with
// the same output as the database versions.
var remoteCommands = map[string]func(*remote, *cobra.Command, []string) error{
	"users add":             (*remote).usersAdd,
	"users list":            (*remote).usersList,
	"users show":            (*remote).usersShow,
	"users set-password":    (*remote).usersSetPassword,
	"users set-roles":       (*remote).usersSetRoles,
	"users disable":         usersAction("disable"),
	"users enable":          usersAction("enable"),
	"users delete":          (*remote).usersDelete,
	"users consents":        (*remote).usersConsents,
	"users revoke-consent":  (*remote).usersRevokeConsent,
	"clients add":           (*remote).clientsAdd,
	"clients update":        (*remote).clientsUpdate,
	"clients list":          (*remote).clientsList,
	"clients show":          (*remote).clientsShow,
	"clients rotate-secret": (*remote).clientsRotate,
	"clients delete":        (*remote).clientsDelete,
	"tokens revoke":         (*remote).tokensRevoke,
	"keys list":             (*remote).keysList,
	"keys rotate":           (*remote).keysRotate,
}

// remoteAdmin gives each admin group an --admin-url flag (also
// AUTHSERVER_ADMIN_URL) and makes its commands act through the admin API
// when it is set. Commands without a remote form refuse --admin-url.
func (g *globals) remoteAdmin(root *cobra.Command) {
	for _, name := range remoteGroups {
		group, _, err := root.Find([]string{name})
		if err != nil {
			panic("authserver: command group " + name + " not found")
		}
		urlFlag := new(string)
		group.PersistentFlags().StringVar(urlFlag, "admin-url", "", "act through the admin API at this URL (such as http://127.0.0.1:8081) instead of on the database; the token is read from "+adminTokenEnv)
		for _, cmd := range group.Commands() {
			if cmd.RunE == nil {
				continue
			}
			path := name + " " + cmd.Name()
			inner, impl := cmd.RunE, remoteCommands[path]
			cmd.RunE = func(c *cobra.Command, args []string) error {
				if *urlFlag == "" {
					return inner(c, args)
				}
				if impl == nil {
					return fmt.Errorf("%s is not available through --admin-url; run it on the database", c.CommandPath())
				}
				r, err := g.newRemote(*urlFlag)
				if err != nil {
					return err
				}
				return impl(r, c, args)
			}
		}
	}
}

// remote is a client of the admin API.
type remote struct {
	g     *globals
	base  string
	token string
	hc    *http.Client
}

func (g *globals) newRemote(base string) (*remote, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--admin-url must be an http(s) URL, not %q", base)
	}
	return &remote{g: g, base: strings.TrimRight(base, "/"), token: os.Getenv(adminTokenEnv), hc: &http.Client{Timeout: 30 * time.Second}}, nil
}

// do calls the API; out, if set, receives the JSON body of a success. A
// problem becomes an error with its detail.
func (r *remote) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, r.base+adminapi.Prefix+path, body)
	if err != nil {
		return fmt.Errorf("admin API: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		return fmt.Errorf("admin API: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("admin API: %w", err)
	}
	if resp.StatusCode >= 300 {
		var p adminapi.Problem
		if json.Unmarshal(b, &p) == nil && p.Detail != "" {
			if resp.StatusCode == http.StatusUnauthorized && r.token == "" {
				return fmt.Errorf("admin API: %s (set %s to an access token with the admin scope)", p.Detail, adminTokenEnv)
			}
			return fmt.Errorf("admin API: %s (%d)", p.Detail, resp.StatusCode)
		}
		return fmt.Errorf("admin API: %s %s: %s", method, path, resp.Status)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("admin API: decode response: %w", err)
		}
	}
	return nil
}

// list fetches every page of a list.
func list[T any](ctx context.Context, r *remote, path string) ([]T, error) {
	var all []T
	cursor := ""
	for {
		var page adminapi.List[T]
		if err := r.do(ctx, http.MethodGet, path+"?limit=500&cursor="+url.QueryEscape(cursor), nil, &page); err != nil {
			return nil, err
		}
		all = append(all, page.Items...)
		if cursor = page.NextCursor; cursor == "" {
			return all, nil
		}
	}
}

func parseTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339, s)
	return t
}

func userFromAPI(u adminapi.User) storage.User {
	return storage.User{ID: u.ID, Email: u.Email, Name: u.Name, Roles: u.Roles, Disabled: u.Disabled, CreatedAt: parseTime(u.CreatedAt)}
}

// findUser resolves ID|EMAIL as the database commands do.
func (r *remote) findUser(ctx context.Context, ref string) (adminapi.User, error) {
	var u adminapi.User
	err := r.do(ctx, http.MethodGet, "/users/"+url.PathEscape(ref), nil, &u)
	if err == nil || !strings.HasSuffix(err.Error(), "(404)") {
		return u, err
	}
	var l adminapi.List[adminapi.User]
	if err := r.do(ctx, http.MethodGet, "/users?email="+url.QueryEscape(ref), nil, &l); err != nil {
		return u, err
	}
	if len(l.Items) == 0 {
		return u, fmt.Errorf("no user %q", ref)
	}
	return l.Items[0], nil
}

func (r *remote) printUser(u adminapi.User, msg string) error {
	return r.g.print(viewUser(userFromAPI(u)), func(w io.Writer) { fmt.Fprintf(w, msg+"\n", u.ID, u.Email) })
}

func (r *remote) usersAdd(c *cobra.Command, _ []string) error {
	fs := c.Flags()
	if hash, _ := fs.GetBool("password-hash-stdin"); hash {
		return errors.New("--password-hash-stdin is not available through --admin-url; import users on the database")
	}
	if pw, _ := fs.GetBool("password-stdin"); !pw {
		return errors.New("give --password-stdin (passwords are never taken as arguments)")
	}
	email, _ := fs.GetString("email")
	name, _ := fs.GetString("name")
	roles, _ := fs.GetStringSlice("role")
	pw, err := readSecretLine(r.g.stdin)
	if err != nil {
		return err
	}
	var u adminapi.User
	if err := r.do(c.Context(), http.MethodPost, "/users", adminapi.UserInput{Email: email, Name: name, Roles: roles, Password: pw}, &u); err != nil {
		return err
	}
	return r.printUser(u, "created user %s (%s)")
}

func (r *remote) usersList(c *cobra.Command, _ []string) error {
	us, err := list[adminapi.User](c.Context(), r, "/users")
	if err != nil {
		return err
	}
	views := make([]userView, 0, len(us))
	for _, u := range us {
		views = append(views, viewUser(userFromAPI(u)))
	}
	return r.g.print(views, func(w io.Writer) {
		fmt.Fprintln(w, "ID\tEMAIL\tNAME\tROLES\tDISABLED")
		for _, v := range views {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%v\n", v.ID, v.Email, v.Name, strings.Join(v.Roles, ","), v.Disabled)
		}
	})
}

func (r *remote) usersShow(c *cobra.Command, args []string) error {
	u, err := r.findUser(c.Context(), args[0])
	if err != nil {
		return err
	}
	v := viewUser(userFromAPI(u))
	return r.g.print(v, func(w io.Writer) {
		fmt.Fprintf(w, "id\t%s\nemail\t%s\nname\t%s\nroles\t%s\ndisabled\t%v\ncreated\t%s\n",
			v.ID, v.Email, v.Name, strings.Join(v.Roles, ","), v.Disabled, v.CreatedAt.Format(time.RFC3339))
	})
}

func (r *remote) usersSetPassword(c *cobra.Command, args []string) error {
	u, err := r.findUser(c.Context(), args[0])
	if err != nil {
		return err
	}
	pw, err := readSecretLine(r.g.stdin)
	if err != nil {
		return err
	}
	force, _ := c.Flags().GetBool("force-change")
	if err := r.do(c.Context(), http.MethodPost, "/users/"+url.PathEscape(u.ID)+"/password", adminapi.PasswordInput{Password: pw, ForceChange: force}, &u); err != nil {
		return err
	}
	return r.printUser(u, "updated user %s (%s)")
}

func (r *remote) usersSetRoles(c *cobra.Command, args []string) error {
	u, err := r.findUser(c.Context(), args[0])
	if err != nil {
		return err
	}
	roles, _ := c.Flags().GetStringSlice("role")
	in := adminapi.UserInput{Email: u.Email, Name: u.Name, Roles: roles, Disabled: u.Disabled}
	if err := r.do(c.Context(), http.MethodPut, "/users/"+url.PathEscape(u.ID), in, &u); err != nil {
		return err
	}
	return r.printUser(u, "updated user %s (%s)")
}

func usersAction(action string) func(*remote, *cobra.Command, []string) error {
	return func(r *remote, c *cobra.Command, args []string) error {
		u, err := r.findUser(c.Context(), args[0])
		if err != nil {
			return err
		}
		if err := r.do(c.Context(), http.MethodPost, "/users/"+url.PathEscape(u.ID)+"/"+action, nil, &u); err != nil {
			return err
		}
		return r.printUser(u, "updated user %s (%s)")
	}
}

func (r *remote) usersDelete(c *cobra.Command, args []string) error {
	u, err := r.findUser(c.Context(), args[0])
	if err != nil {
		return err
	}
	// The API revokes the user's tokens with the user; count them first
	// through the sessions endpoint so that the output matches.
	var n adminapi.Count
	if err := r.do(c.Context(), http.MethodDelete, "/users/"+url.PathEscape(u.ID)+"/sessions", nil, &n); err != nil {
		return err
	}
	if err := r.do(c.Context(), http.MethodDelete, "/users/"+url.PathEscape(u.ID), nil, nil); err != nil {
		return err
	}
	return r.g.print(map[string]any{"deleted": u.ID, "tokens_revoked": n.Revoked}, func(w io.Writer) {
		fmt.Fprintf(w, "deleted user %s (%s); %d token records revoked\n", u.ID, u.Email, n.Revoked)
	})
}

func (r *remote) usersConsents(c *cobra.Command, args []string) error {
	u, err := r.findUser(c.Context(), args[0])
	if err != nil {
		return err
	}
	type consent struct {
		ClientID  string    `json:"client_id"`
		Scopes    []string  `json:"scopes"`
		GrantedAt time.Time `json:"granted_at"`
	}
	var l adminapi.List[consent]
	if err := r.do(c.Context(), http.MethodGet, "/users/"+url.PathEscape(u.ID)+"/consents", nil, &l); err != nil {
		return err
	}
	return r.g.print(l.Items, func(w io.Writer) {
		fmt.Fprintln(w, "CLIENT\tSCOPES\tGRANTED")
		for _, x := range l.Items {
			fmt.Fprintf(w, "%s\t%s\t%s\n", x.ClientID, strings.Join(x.Scopes, " "), x.GrantedAt.Format(time.RFC3339))
		}
	})
}

func (r *remote) usersRevokeConsent(c *cobra.Command, args []string) error {
	u, err := r.findUser(c.Context(), args[0])
	if err != nil {
		return err
	}
	client, _ := c.Flags().GetString("client")
	var n adminapi.Count
	if err := r.do(c.Context(), http.MethodDelete, "/users/"+url.PathEscape(u.ID)+"/consents?client_id="+url.QueryEscape(client), nil, &n); err != nil {
		return err
	}
	return r.g.print(map[string]any{"consents_revoked": n.Revoked}, func(w io.Writer) { fmt.Fprintf(w, "%d consents revoked\n", n.Revoked) })
}

func clientFromAPI(c adminapi.Client) clientView {
	return clientView{ID: c.ID, Name: c.Name, Public: c.Public, GrantTypes: c.GrantTypes, Scopes: c.Scopes, Introspect: c.Introspect,
		RedirectURIs: c.RedirectURIs, Resources: c.Resources, SkipConsent: c.SkipConsent, RequirePAR: c.RequirePAR, RequireDPoP: c.DPoPBoundAccessTokens,
		PostLogoutRedirectURIs: c.PostLogoutRedirectURIs, BackchannelLogoutURI: c.BackchannelLogoutURI, SubjectType: c.SubjectType,
		ExchangeAudiences: c.ExchangeAudiences, SecretExpiresAt: c.SecretExpiresAt,
		TokenEndpointAuthMethod: c.TokenEndpointAuthMethod, JWKSURI: c.JWKSURI, JWKS: c.JWKS,
		Secrets: c.Secrets, CreatedAt: parseTime(c.CreatedAt), Secret: c.ClientSecret}
}

func (r *remote) clientsList(c *cobra.Command, _ []string) error {
	cs, err := list[adminapi.Client](c.Context(), r, "/clients")
	if err != nil {
		return err
	}
	views := make([]clientView, 0, len(cs))
	for _, c := range cs {
		views = append(views, clientFromAPI(c))
	}
	return r.g.print(views, func(w io.Writer) {
		fmt.Fprintln(w, "ID\tPUBLIC\tGRANTS\tSCOPES\tINTROSPECT")
		for _, v := range views {
			fmt.Fprintf(w, "%s\t%v\t%s\t%s\t%v\n", v.ID, v.Public, strings.Join(v.GrantTypes, ","), strings.Join(v.Scopes, ","), v.Introspect)
		}
	})
}

func (r *remote) clientsShow(c *cobra.Command, args []string) error {
	var ac adminapi.Client
	if err := r.do(c.Context(), http.MethodGet, "/clients/"+url.PathEscape(args[0]), nil, &ac); err != nil {
		if strings.HasSuffix(err.Error(), "(404)") {
			return fmt.Errorf("no client %q", args[0])
		}
		return err
	}
	v := clientFromAPI(ac)
	return r.g.print(v, func(w io.Writer) {
		fmt.Fprintf(w, "id\t%s\nname\t%s\npublic\t%v\ngrants\t%s\nscopes\t%s\nintrospect\t%v\nredirect_uris\t%s\nresources\t%s\nskip_consent\t%v\nrequire_par\t%v\nsecrets\t%d\n",
			v.ID, v.Name, v.Public, strings.Join(v.GrantTypes, ","), strings.Join(v.Scopes, ","), v.Introspect,
			strings.Join(v.RedirectURIs, " "), strings.Join(v.Resources, " "), v.SkipConsent, v.RequirePAR, v.Secrets)
	})
}

func (r *remote) clientsRotate(c *cobra.Command, args []string) error {
	if s, _ := c.Flags().GetBool("secret-stdin"); s {
		return errors.New("--secret-stdin is not available through --admin-url: the API generates the secret")
	}
	keep, _ := c.Flags().GetBool("keep-old")
	var ac adminapi.Client
	if err := r.do(c.Context(), http.MethodPost, "/clients/"+url.PathEscape(args[0])+"/secret", adminapi.SecretRotation{KeepOld: keep}, &ac); err != nil {
		return err
	}
	v := clientFromAPI(ac)
	return r.g.print(v, func(w io.Writer) {
		fmt.Fprintf(w, "rotated the secret of %s (%d valid)\n", v.ID, v.Secrets)
		fmt.Fprintf(w, "client_secret: %s\n(shown once: store it now)\n", v.Secret)
	})
}

func (r *remote) clientsDelete(c *cobra.Command, args []string) error {
	var n adminapi.Count
	if err := r.do(c.Context(), http.MethodPost, "/tokens/revoke", adminapi.TokenRevocation{ClientID: args[0]}, &n); err != nil {
		return err
	}
	if err := r.do(c.Context(), http.MethodDelete, "/clients/"+url.PathEscape(args[0]), nil, nil); err != nil {
		if strings.HasSuffix(err.Error(), "(404)") {
			return fmt.Errorf("no client %q", args[0])
		}
		return err
	}
	return r.g.print(map[string]any{"deleted": args[0], "tokens_revoked": n.Revoked}, func(w io.Writer) {
		fmt.Fprintf(w, "deleted client %s; %d token records revoked\n", args[0], n.Revoked)
	})
}

func (r *remote) tokensRevoke(c *cobra.Command, _ []string) error {
	user, _ := c.Flags().GetString("user")
	client, _ := c.Flags().GetString("client")
	if user == "" && client == "" {
		return errors.New("give --user and/or --client")
	}
	in := adminapi.TokenRevocation{ClientID: client}
	if user != "" {
		u, err := r.findUser(c.Context(), user)
		if err != nil {
			return err
		}
		in.UserID = u.ID
	}
	var n adminapi.Count
	if err := r.do(c.Context(), http.MethodPost, "/tokens/revoke", in, &n); err != nil {
		return err
	}
	return r.g.print(map[string]any{"tokens_revoked": n.Revoked}, func(w io.Writer) { fmt.Fprintf(w, "%d token records revoked\n", n.Revoked) })
}

func keysFromAPI(l adminapi.List[adminapi.Key]) []keys.KeyInfo {
	out := make([]keys.KeyInfo, 0, len(l.Items))
	for _, k := range l.Items {
		out = append(out, keys.KeyInfo{ID: k.ID, Algorithm: k.Algorithm, State: storage.KeyState(k.State), CreatedAt: parseTime(k.CreatedAt),
			ActivateAt: parseTime(k.ActivateAt), RetiredAt: parseTime(k.RetiredAt), DeleteAt: parseTime(k.DeleteAt)})
	}
	return out
}

func (r *remote) keysList(c *cobra.Command, _ []string) error {
	var l adminapi.List[adminapi.Key]
	if err := r.do(c.Context(), http.MethodGet, "/keys", nil, &l); err != nil {
		return err
	}
	return r.g.printKeys(keysFromAPI(l))
}

func (r *remote) keysRotate(c *cobra.Command, _ []string) error {
	now, _ := c.Flags().GetBool("now")
	if now {
		fmt.Fprintln(r.g.stderr, "warning: --now activates a key that resource servers may not have cached yet; tokens it signs can fail verification until their JWKS caches expire")
	}
	var l adminapi.List[adminapi.Key]
	if err := r.do(c.Context(), http.MethodPost, "/keys/rotate", adminapi.KeyRotation{Now: now}, &l); err != nil {
		return err
	}
	return r.g.printKeys(keysFromAPI(l))
}

// clientInput reads the registration flags of clients add and update that
// were given over in (the current registration on update).
func clientInput(c *cobra.Command, in adminapi.ClientInput) (adminapi.ClientInput, error) {
	fs := c.Flags()
	if fs.Changed("auth-method") {
		in.TokenEndpointAuthMethod, _ = fs.GetString("auth-method")
	}
	var k keyFlags
	k.jwksURI, _ = fs.GetString("jwks-uri")
	k.jwksFile, _ = fs.GetString("jwks-file")
	keys := storage.Client{JWKSURI: in.JWKSURI, JWKS: in.JWKS}
	if err := k.apply(&keys); err != nil {
		return in, err
	}
	in.JWKSURI, in.JWKS = keys.JWKSURI, keys.JWKS
	if fs.Changed("name") {
		in.Name, _ = fs.GetString("name")
	}
	if fs.Changed("grant") {
		in.GrantTypes, _ = fs.GetStringSlice("grant")
	}
	if fs.Changed("scope") {
		in.Scopes, _ = fs.GetStringSlice("scope")
	}
	if fs.Changed("introspect") {
		in.Introspect, _ = fs.GetBool("introspect")
	}
	if fs.Changed("redirect-uri") {
		in.RedirectURIs, _ = fs.GetStringArray("redirect-uri")
	}
	if fs.Changed("resource") {
		in.Resources, _ = fs.GetStringArray("resource")
	}
	if fs.Changed("skip-consent") {
		in.SkipConsent, _ = fs.GetBool("skip-consent")
	}
	if fs.Changed("require-par") {
		in.RequirePAR, _ = fs.GetBool("require-par")
	}
	if fs.Changed("require-dpop") {
		in.DPoPBoundAccessTokens, _ = fs.GetBool("require-dpop")
	}
	if fs.Changed("post-logout-redirect-uri") {
		in.PostLogoutRedirectURIs, _ = fs.GetStringArray("post-logout-redirect-uri")
	}
	if fs.Changed("backchannel-logout-uri") {
		in.BackchannelLogoutURI, _ = fs.GetString("backchannel-logout-uri")
	}
	if fs.Changed("subject-type") {
		in.SubjectType, _ = fs.GetString("subject-type")
	}
	if fs.Changed("exchange-audience") {
		in.ExchangeAudiences, _ = fs.GetStringArray("exchange-audience")
	}
	return in, nil
}

func (r *remote) clientsAdd(c *cobra.Command, _ []string) error {
	fs := c.Flags()
	if s, _ := fs.GetBool("secret-stdin"); s {
		return errors.New("--secret-stdin is not available through --admin-url: the API generates the secret")
	}
	if fs.Changed("secret-ttl") {
		return errors.New("--secret-ttl is not available through --admin-url yet")
	}
	in, err := clientInput(c, adminapi.ClientInput{})
	if err != nil {
		return err
	}
	in.ID, _ = fs.GetString("id")
	in.Public, _ = fs.GetBool("public")
	if gen, _ := fs.GetBool("generate-secret"); gen && in.Public {
		return errors.New("--public clients have no secret")
	}
	var ac adminapi.Client
	if err := r.do(c.Context(), http.MethodPost, "/clients", in, &ac); err != nil {
		return err
	}
	v := clientFromAPI(ac)
	return r.g.print(v, func(w io.Writer) {
		fmt.Fprintf(w, "created client %s\n", v.ID)
		if v.Secret != "" {
			fmt.Fprintf(w, "client_secret: %s\n(shown once: store it now)\n", v.Secret)
		}
	})
}

func (r *remote) clientsUpdate(c *cobra.Command, args []string) error {
	var cur adminapi.Client
	if err := r.do(c.Context(), http.MethodGet, "/clients/"+url.PathEscape(args[0]), nil, &cur); err != nil {
		if strings.HasSuffix(err.Error(), "(404)") {
			return fmt.Errorf("no client %q", args[0])
		}
		return err
	}
	in, err := clientInput(c, cur.ClientInput)
	if err != nil {
		return err
	}
	var ac adminapi.Client
	if err := r.do(c.Context(), http.MethodPut, "/clients/"+url.PathEscape(args[0]), in, &ac); err != nil {
		return err
	}
	return r.g.print(clientFromAPI(ac), func(w io.Writer) { fmt.Fprintf(w, "updated client %s\n", ac.ID) })
}
