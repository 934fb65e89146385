package authserver

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

// metadata is the RFC 8414 authorization server metadata document.
type metadata struct {
	Issuer                                    string   `json:"issuer"`
	AuthorizationEndpoint                     string   `json:"authorization_endpoint"`
	TokenEndpoint                             string   `json:"token_endpoint"`
	JWKSURI                                   string   `json:"jwks_uri"`
	IntrospectionEndpoint                     string   `json:"introspection_endpoint"`
	RevocationEndpoint                        string   `json:"revocation_endpoint"`
	RegistrationEndpoint                      string   `json:"registration_endpoint"`
	ScopesSupported                           []string `json:"scopes_supported,omitempty"`
	ResponseTypesSupported                    []string `json:"response_types_supported"`
	ResponseModesSupported                    []string `json:"response_modes_supported"`
	CodeChallengeMethodsSupported             []string `json:"code_challenge_methods_supported"`
	DPoPSigningAlgValuesSupported             []string `json:"dpop_signing_alg_values_supported"`
	PushedAuthorizationRequestEndpoint        string   `json:"pushed_authorization_request_endpoint"`
	DeviceAuthorizationEndpoint               string   `json:"device_authorization_endpoint"`
	RequirePushedAuthorizationRequests        bool     `json:"require_pushed_authorization_requests"`
	AuthorizationResponseIssParameter         bool     `json:"authorization_response_iss_parameter_supported"`
	GrantTypesSupported                       []string `json:"grant_types_supported"`
	TokenEndpointAuthMethodsSupported         []string `json:"token_endpoint_auth_methods_supported"`
	IntrospectionEndpointAuthMethodsSupported []string `json:"introspection_endpoint_auth_methods_supported"`
	RevocationEndpointAuthMethodsSupported    []string `json:"revocation_endpoint_auth_methods_supported"`
	IntrospectionSigningAlgValuesSupported    []string `json:"introspection_signing_alg_values_supported"`
	// RFC 8414 §2: the algorithms of client assertions (RFC 7523) at each
	// endpoint that authenticates clients.
	TokenEndpointAuthSigningAlgValuesSupported         []string `json:"token_endpoint_auth_signing_alg_values_supported"`
	IntrospectionEndpointAuthSigningAlgValuesSupported []string `json:"introspection_endpoint_auth_signing_alg_values_supported"`
	RevocationEndpointAuthSigningAlgValuesSupported    []string `json:"revocation_endpoint_auth_signing_alg_values_supported"`
	AccessTokenSigningAlgValuesSupported               []string `json:"access_token_signing_alg_values_supported"`
	ServiceDocumentation                               string   `json:"service_documentation,omitempty"`

	// OpenID Connect Discovery 1.0 §3; the same document is served at
	// /.well-known/openid-configuration, so the two agree field for field.
	UserinfoEndpoint                  string   `json:"userinfo_endpoint"`
	EndSessionEndpoint                string   `json:"end_session_endpoint"`
	SubjectTypesSupported             []string `json:"subject_types_supported"`
	IDTokenSigningAlgValuesSupported  []string `json:"id_token_signing_alg_values_supported"`
	ClaimsSupported                   []string `json:"claims_supported"`
	ClaimTypesSupported               []string `json:"claim_types_supported"`
	PromptValuesSupported             []string `json:"prompt_values_supported"`
	DisplayValuesSupported            []string `json:"display_values_supported"`
	UILocalesSupported                []string `json:"ui_locales_supported"`
	ClaimsParameterSupported          bool     `json:"claims_parameter_supported"`
	RequestParameterSupported         bool     `json:"request_parameter_supported"`
	RequestURIParameterSupported      bool     `json:"request_uri_parameter_supported"`
	BackchannelLogoutSupported        bool     `json:"backchannel_logout_supported"`
	BackchannelLogoutSessionSupported bool     `json:"backchannel_logout_session_supported"`
	FrontchannelLogoutSupported       bool     `json:"frontchannel_logout_supported"`

	// StatusListAggregationEndpoint lists the URIs of the Token Status
	// Lists (draft-ietf-oauth-status-list §9, statuslist.go).
	StatusListAggregationEndpoint string `json:"status_list_aggregation_endpoint"`
}

// accessTokenAlgs are the algorithms of the published keys, without the
// RS256 of the ID token keys when access tokens use another algorithm.
func (s *Server) accessTokenAlgs() []string {
	algs := s.keys.Algorithms()
	cur, err := s.keys.Current()
	if _, rsErr := s.keys.CurrentFor(idTokenAlg); err == nil && rsErr == nil && cur.Algorithm != idTokenAlg {
		algs = slices.DeleteFunc(algs, func(a string) bool { return a == idTokenAlg })
	}
	return algs
}

// withOIDCScopes adds the OpenID Connect scopes to scopes_supported,
// sorted, without duplicates.
func withOIDCScopes(scopes []string) []string {
	out := append(slices.Clone(scopes), oidcScopes...)
	slices.Sort(out)
	return slices.Compact(out)
}

// metadataMaxAge is the Cache-Control max-age of the metadata document.
const metadataMaxAge = 300

// handleMetadata serves RFC 8414 metadata. The signing algorithms follow the
// published keys.
func (s *Server) handleMetadata(w http.ResponseWriter, r *http.Request) {
	algs := s.accessTokenAlgs()
	scopes := s.cfg.Scopes
	if len(scopes) == 0 {
		scopes = s.scopes.get(r.Context(), s)
	}
	scopes = withOIDCScopes(scopes)
	m := metadata{
		Issuer:                                             s.cfg.Issuer,
		AuthorizationEndpoint:                              s.cfg.Issuer + "/authorize",
		TokenEndpoint:                                      s.cfg.Issuer + "/token",
		JWKSURI:                                            s.cfg.Issuer + "/.well-known/jwks.json",
		IntrospectionEndpoint:                              s.cfg.Issuer + "/introspect",
		RevocationEndpoint:                                 s.cfg.Issuer + "/revoke",
		RegistrationEndpoint:                               s.cfg.Issuer + "/register",
		ScopesSupported:                                    scopes,
		ResponseTypesSupported:                             []string{responseTypeCode},
		ResponseModesSupported:                             []string{"query"},
		CodeChallengeMethodsSupported:                      []string{pkceS256},
		DPoPSigningAlgValuesSupported:                      dpopAlgNames(),
		PushedAuthorizationRequestEndpoint:                 s.cfg.Issuer + "/par",
		DeviceAuthorizationEndpoint:                        s.cfg.Issuer + "/device_authorization",
		AuthorizationResponseIssParameter:                  true,
		GrantTypesSupported:                                SupportedGrantTypes,
		TokenEndpointAuthMethodsSupported:                  authMethodsSupported,
		IntrospectionEndpointAuthMethodsSupported:          []string{AuthMethodSecretBasic, AuthMethodSecretPost, AuthMethodSecretJWT, AuthMethodPrivateKey},
		RevocationEndpointAuthMethodsSupported:             authMethodsSupported,
		TokenEndpointAuthSigningAlgValuesSupported:         assertionAlgNames,
		IntrospectionEndpointAuthSigningAlgValuesSupported: assertionAlgNames,
		RevocationEndpointAuthSigningAlgValuesSupported:    assertionAlgNames,
		IntrospectionSigningAlgValuesSupported:             algs,
		AccessTokenSigningAlgValuesSupported:               algs,

		StatusListAggregationEndpoint: s.cfg.Issuer + statusAggregationPath,

		UserinfoEndpoint:                  s.cfg.Issuer + "/userinfo",
		EndSessionEndpoint:                s.cfg.Issuer + "/end_session",
		SubjectTypesSupported:             []string{"public", SubjectPairwise},
		IDTokenSigningAlgValuesSupported:  s.idTokenSigningAlgs(),
		ClaimsSupported:                   supportedClaims(),
		ClaimTypesSupported:               []string{"normal"},
		PromptValuesSupported:             []string{promptNone, promptLogin, promptConsent, "select_account"},
		DisplayValuesSupported:            []string{"page", "popup", "touch", "wap"},
		UILocalesSupported:                []string{"en"},
		ClaimsParameterSupported:          true,
		RequestParameterSupported:         false,
		RequestURIParameterSupported:      false, // only request_uri values of our PAR endpoint
		BackchannelLogoutSupported:        true,
		BackchannelLogoutSessionSupported: true,
		FrontchannelLogoutSupported:       false,
	}
	w.Header().Set("Cache-Control", "public, max-age="+strconv.Itoa(metadataMaxAge))
	writeJSON(w, http.StatusOK, m)
}

// scopesCacheTTL is how long the scopes of the registered clients are
// remembered for the metadata document.
const scopesCacheTTL = 10 * time.Second

// scopeCache remembers the scopes registered clients may request, so that
// metadata requests do not list every client each time.
type scopeCache struct {
	mu      sync.Mutex
	scopes  []string
	expires time.Time
}

// get returns the sorted union of the scopes of every registered client
// (RFC 8414 §2 scopes_supported). When listing the clients fails, the last
// known list is served (or none), and the failure is logged.
func (c *scopeCache) get(ctx context.Context, s *Server) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := s.cfg.Now()
	if now.Before(c.expires) {
		return c.scopes
	}
	clients, err := s.store.ListClients(ctx)
	if err != nil {
		s.log.WarnContext(ctx, "metadata: listing clients for scopes_supported", "err", err)
		return c.scopes
	}
	var scopes []string
	for _, cl := range clients {
		scopes = append(scopes, cl.Scopes...)
	}
	slices.Sort(scopes)
	c.scopes, c.expires = slices.Compact(scopes), now.Add(scopesCacheTTL)
	return c.scopes
}
