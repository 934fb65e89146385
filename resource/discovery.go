package resource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// serverMetadata is the part of RFC 8414 authorization server metadata this
// package reads.
type serverMetadata struct {
	Issuer                string `json:"issuer"`
	JWKSURI               string `json:"jwks_uri"`
	IntrospectionEndpoint string `json:"introspection_endpoint"`
}

// discover fetches the issuer's RFC 8414 metadata. It tries the RFC 8414
// §3.1 location (the well-known segment inserted before the issuer's path)
// and, for an issuer with a path, the {issuer}/.well-known/... form that
// OpenID Connect uses. The metadata's issuer must equal issuer exactly
// (RFC 8414 §3.3).
func discover(ctx context.Context, client *http.Client, issuer string, maxSize int64) (*serverMetadata, error) {
	const wellKnown = "/.well-known/oauth-authorization-server"
	u, err := url.Parse(issuer)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("resource: issuer %q is not an absolute URL", issuer)
	}
	path := strings.TrimSuffix(u.Path, "/")
	locations := []string{u.Scheme + "://" + u.Host + wellKnown + path}
	if path != "" {
		locations = append(locations, strings.TrimSuffix(issuer, "/")+wellKnown)
	}
	var errs []error
	for _, loc := range locations {
		md, err := fetchMetadata(ctx, client, loc, maxSize)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if md.Issuer != issuer {
			return nil, fmt.Errorf("resource: metadata at %s names issuer %q, not %q", loc, md.Issuer, issuer)
		}
		return md, nil
	}
	return nil, fmt.Errorf("resource: discovering %s: %w", issuer, errors.Join(errs...))
}

func fetchMetadata(ctx context.Context, client *http.Client, loc string, maxSize int64) (*serverMetadata, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, loc, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: unexpected status %s", loc, resp.Status)
	}
	body, err := readLimited(resp.Body, maxSize)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", loc, err)
	}
	md := new(serverMetadata)
	if err := json.Unmarshal(body, md); err != nil {
		return nil, fmt.Errorf("GET %s: decoding metadata: %w", loc, err)
	}
	return md, nil
}
