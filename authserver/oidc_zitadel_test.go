package authserver

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/zitadel/oidc/v3/pkg/client/rp"
	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"
)

// nonceKey carries the nonce the relying party expects in an ID token.
type nonceKey struct{}

// github.com/zitadel/oidc/v3's relying party signs in end to end through
// discovery (PKCE, nonce, ID token and at_hash verification, userinfo),
// refreshes (a new ID token), and signs out with RP-initiated logout.
func TestZitadelRelyingParty(t *testing.T) {
	e := newOIDCEnv(t)
	b := newBrowser(t, e.testEnv)
	ctx := t.Context()
	party, err := rp.NewRelyingPartyOIDC(ctx, e.issuer, "rp", rpSecret, rpRedirect,
		[]string{"openid", "profile", "email", "offline_access"},
		rp.WithHTTPClient(b.c), // the browser's client: end_session needs its session cookie
		rp.WithVerifierOpts(rp.WithNonce(func(ctx context.Context) string { s, _ := ctx.Value(nonceKey{}).(string); return s })),
	)
	if err != nil {
		t.Fatal(err)
	}
	verifier, challenge := pkcePair("zitadel")
	authURL := rp.AuthURL("zitadel-state-1", party, rp.WithCodeChallenge(challenge),
		rp.AuthURLOpt(rp.WithURLParam("nonce", "zitadel-nonce-1")))
	u, err := url.Parse(authURL)
	if err != nil || !strings.HasPrefix(authURL, e.issuer+"/authorize?") {
		t.Fatalf("auth URL %s", authURL)
	}
	p := b.get("/authorize?" + u.RawQuery)
	p = b.signIn(p, "alice@example.com", alicePW)
	p = b.decide(p, "allow")
	q := e.callback(t, p, rpRedirect)
	if q.Get("state") != "zitadel-state-1" {
		t.Fatalf("state %v", q)
	}

	tokens, err := rp.CodeExchange[*zoidc.IDTokenClaims](context.WithValue(ctx, nonceKey{}, "zitadel-nonce-1"), q.Get("code"), party, rp.WithCodeVerifier(verifier))
	if err != nil {
		t.Fatalf("zitadel CodeExchange: %v", err)
	}
	if tokens.IDTokenClaims.Subject != e.alice.ID || tokens.RefreshToken == "" || tokens.IDTokenClaims.AuthTime == 0 {
		t.Fatalf("tokens: sub %q refresh %t auth_time %v", tokens.IDTokenClaims.Subject, tokens.RefreshToken != "", tokens.IDTokenClaims.AuthTime)
	}
	info, err := rp.Userinfo[*zoidc.UserInfo](ctx, tokens.AccessToken, tokens.TokenType, tokens.IDTokenClaims.Subject, party)
	if err != nil || info.Email != "alice@example.com" || info.Name != "Alice" {
		t.Fatalf("zitadel Userinfo: %+v, %v", info, err)
	}

	refreshed, err := rp.RefreshTokens[*zoidc.IDTokenClaims](ctx, party, tokens.RefreshToken, "", "")
	if err != nil {
		t.Fatalf("zitadel RefreshTokens: %v", err)
	}
	if refreshed.IDToken == "" || refreshed.IDTokenClaims.Subject != e.alice.ID || refreshed.AccessToken == tokens.AccessToken {
		t.Fatalf("refresh did not return a new ID token for alice: %+v", refreshed.IDTokenClaims)
	}

	to, err := rp.EndSession(ctx, party, refreshed.IDToken, rpBye, "zitadel-bye", "", nil)
	if err != nil {
		t.Fatalf("zitadel EndSession: %v", err)
	}
	if to == nil || to.String() != rpBye+"?state=zitadel-bye" {
		t.Fatalf("EndSession redirect %v", to)
	}
	// The browser session is over.
	p = b.get(authorizeQuery("rp", rpRedirect, "state-123", mustChallenge(), "scope", "openid", "prompt", "none"))
	wantRedirectError(t, e, p, errLoginRequired)
}
