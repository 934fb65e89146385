package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// prepareStatusList issues one client_credentials token, reads the URI of
// its Token Status List and returns ops that GET the list as a caching
// relying party does: nine requests in ten conditional (If-None-Match with
// the list's ETag, answered 304), one in ten unconditional.
func prepareStatusList(ctx context.Context, e *target, _ int) (opFactory, error) {
	pool, err := e.issuePool(ctx, 1, 1, func(int) url.Values { return clientCredentialsForm })
	if err != nil {
		return nil, err
	}
	uri, err := statusListURI(pool.tokens[0])
	if err != nil {
		return nil, err
	}
	etag, err := statusListETag(ctx, e, uri)
	if err != nil {
		return nil, err
	}
	return func(context.Context, int) (op, error) {
		n := 0
		return func(ctx context.Context) (int, error) {
			n++
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
			if err != nil {
				return 0, err
			}
			req.Header.Set("Accept", "application/statuslist+jwt")
			if n%10 != 0 {
				req.Header.Set("If-None-Match", etag)
			}
			resp, err := e.client.Do(req)
			if err != nil {
				return 0, err
			}
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.StatusCode, err
		}, nil
	}, nil
}

// statusListURI reads status.status_list.uri from an access token.
func statusListURI(at string) (string, error) {
	parts := strings.Split(at, ".")
	if len(parts) != 3 {
		return "", errors.New("statuslist: the access token is not a JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", fmt.Errorf("statuslist: %w", err)
	}
	var c struct {
		Status struct {
			StatusList struct {
				URI string `json:"uri"`
			} `json:"status_list"`
		} `json:"status"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return "", fmt.Errorf("statuslist: %w", err)
	}
	if c.Status.StatusList.URI == "" {
		return "", errors.New("statuslist: the access token has no status claim")
	}
	return c.Status.StatusList.URI, nil
}

func statusListETag(ctx context.Context, e *target, uri string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return "", err
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("statuslist: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("ETag") == "" {
		return "", fmt.Errorf("statuslist: GET %s: %d without ETag", uri, resp.StatusCode)
	}
	return resp.Header.Get("ETag"), nil
}
