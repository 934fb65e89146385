package resource

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// WellKnownPath is the well-known URI suffix of RFC 9728 protected resource
// metadata.
const WellKnownPath = "/.well-known/oauth-protected-resource"

// ProtectedResourceMetadata is the RFC 9728 §2 metadata document of a
// protected resource. Fields this package does not use are left out.
type ProtectedResourceMetadata struct {
	// Resource is the resource identifier: an https URL without fragment,
	// normally the audience of its tokens. Required.
	Resource string `json:"resource"`
	// AuthorizationServers lists the issuer identifiers of the
	// authorization servers that issue tokens for this resource.
	AuthorizationServers []string `json:"authorization_servers,omitempty"`
	// ScopesSupported lists the scopes the resource checks.
	ScopesSupported []string `json:"scopes_supported,omitempty"`
	// BearerMethodsSupported lists how tokens may be sent: "header",
	// "body", "query" (RFC 9728 §2).
	BearerMethodsSupported []string `json:"bearer_methods_supported,omitempty"`
	// ResourceName is a human-readable name of the resource.
	ResourceName string `json:"resource_name,omitempty"`
	// ResourceDocumentation is the URL of documentation for developers.
	ResourceDocumentation string `json:"resource_documentation,omitempty"`
	// DPoPSigningAlgValuesSupported are the DPoP proof algorithms accepted
	// (RFC 9728 §2, RFC 9449).
	DPoPSigningAlgValuesSupported []string `json:"dpop_signing_alg_values_supported,omitempty"`
}

// Metadata returns the protected resource metadata this Authenticator
// implies: the audience as resource, the issuer as authorization server and
// the bearer methods it accepts. Add ScopesSupported and names before
// serving it with MetadataHandler.
func (a *Authenticator) Metadata() ProtectedResourceMetadata {
	methods := []string{"header"}
	if a.allowForm {
		methods = append(methods, "body")
	}
	return ProtectedResourceMetadata{
		Resource:                      a.audience,
		AuthorizationServers:          []string{a.issuer},
		BearerMethodsSupported:        methods,
		DPoPSigningAlgValuesSupported: strings.Fields(a.dpop.algList),
	}
}

// MetadataHandler serves m as JSON (RFC 9728 §3.2) to GET and HEAD
// requests. Mount it at the path of MetadataURL(m.Resource).
func MetadataHandler(m ProtectedResourceMetadata) http.Handler {
	body, err := json.Marshal(m)
	if err != nil {
		panic("resource: marshaling metadata: " + err.Error()) // plain strings cannot fail
	}
	body = append(body, '\n')
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		_, _ = w.Write(body)
	})
}

// MetadataURL returns where RFC 9728 §3.1 places the metadata of resource:
// the well-known suffix inserted between the host and the path, so that
// https://api.example.com/v1 yields
// https://api.example.com/.well-known/oauth-protected-resource/v1.
func MetadataURL(resource string) (string, error) {
	u, err := url.Parse(resource)
	if err != nil {
		return "", fmt.Errorf("resource: parsing resource identifier: %w", err)
	}
	if u.Scheme == "" || u.Host == "" || u.Fragment != "" {
		return "", fmt.Errorf("resource: resource identifier %q must be an absolute URL without fragment", resource)
	}
	u.Path = WellKnownPath + strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	return u.String(), nil
}
