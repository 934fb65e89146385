package authserver

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// The outbound-URL policy: the server itself connects to URLs that clients
// register (a private_key_jwt client's jwks_uri, fetched; a
// backchannel_logout_uri, POSTed to). Anyone holding an initial access
// token, or anyone at all with open registration, can register them, so
// without a policy they would make the server a proxy into its own network
// (SSRF): the cloud metadata service at 169.254.169.254, an admin listener
// on 127.0.0.1, databases on RFC 1918 addresses.
//
// By default every such connection is refused unless the address it is
// made to is public. The check runs in the dialer's Control function, on
// the IP address the connection is actually made to after DNS resolution,
// so a name that resolves (or is re-bound) to a private address is refused
// as surely as a literal one. Registration additionally refuses a literal
// non-public IP host, or localhost, with a clear invalid_client_metadata,
// instead of accepting a URL that cannot work.
//
// Config.InsecureAllowPrivateClientURLs (serve --allow-private-client-urls)
// turns the policy off, for deployments whose clients live on an internal
// network, and for tests.
//
// The policy does not cover redirect URIs, which the browser follows, not
// the server.

// errNonPublicAddress is the error of a connection the policy refuses.
var errNonPublicAddress = errors.New("outbound connection to a non-public address refused (see --allow-private-client-urls)")

// nonPublicPrefixes are the address ranges a client-registered URL may not
// reach: unspecified and "this network", loopback, private (RFC 1918, RFC
// 4193 ULA), shared address space (CGNAT, RFC 6598), link-local (which
// holds the cloud metadata address 169.254.169.254), IETF protocol
// assignments, benchmarking, documentation, multicast and reserved ranges
// (RFC 6890), local-use NAT64 (RFC 8215), Teredo (RFC 4380) and the IPv6
// discard prefix (RFC 6666). Whatever is not global unicast is refused too.
var nonPublicPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("224.0.0.0/4"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("::/96"), // unspecified, loopback, IPv4-compatible
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("100::/64"),
	netip.MustParsePrefix("2001::/32"),
	netip.MustParsePrefix("2001:2::/48"),
	netip.MustParsePrefix("2001:db8::/32"),
	netip.MustParsePrefix("fc00::/7"),
	netip.MustParsePrefix("fe80::/10"),
	netip.MustParsePrefix("fec0::/10"), // deprecated site-local
	netip.MustParsePrefix("ff00::/8"),
}

// Prefixes of IPv6 addresses that embed an IPv4 address the network may
// translate to: NAT64 (RFC 6052) and 6to4 (RFC 3056).
var (
	nat64Prefix = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour   = netip.MustParsePrefix("2002::/16")
)

// isPublicAddr reports whether a may be reached by a client-registered URL
// under the default policy.
func isPublicAddr(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	a = a.Unmap().WithZone("")
	if a.Is6() {
		b := a.As16()
		switch {
		case nat64Prefix.Contains(a):
			return isPublicAddr(netip.AddrFrom4([4]byte(b[12:16])))
		case sixToFour.Contains(a):
			return isPublicAddr(netip.AddrFrom4([4]byte(b[2:6])))
		}
	}
	if !a.IsGlobalUnicast() {
		return false
	}
	for _, p := range nonPublicPrefixes {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// publicOnlyControl is a net.Dialer Control function that refuses a
// connection to a non-public address. It sees the resolved address, once
// per connection attempt.
func publicOnlyControl(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %q", errNonPublicAddress, address)
	}
	if !isPublicAddr(ap.Addr()) {
		return fmt.Errorf("%w: %s", errNonPublicAddress, ap.Addr())
	}
	return nil
}

// newOutboundClient returns the HTTP client for client-registered URLs:
// timeout bounds each request, redirects are not followed (the registered
// URL is the one), and unless allowPrivate the policy above holds. With the
// policy on, no proxy is used: through a proxy the dialer would see only
// the proxy's address, and the destination would go unchecked.
func newOutboundClient(timeout time.Duration, allowPrivate bool) *http.Client {
	d := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   timeout,
		ExpectContinueTimeout: time.Second,
	}
	if !allowPrivate {
		d.Control = publicOnlyControl
		tr.Proxy = nil
	}
	return &http.Client{
		Timeout:       timeout,
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// checkClientURLHost applies the outbound-URL policy to a URL a client
// registers for the server to call (jwks_uri, backchannel_logout_uri) as
// far as it can be applied before any connection: a host that is a literal
// non-public IP address, or localhost, is refused. Names are checked when
// the server connects (see newOutboundClient).
func checkClientURLHost(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q is not a URL", raw)
	}
	h := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return fmt.Errorf("%q: the server does not call localhost for a client", raw)
	}
	if a, err := netip.ParseAddr(h); err == nil && !isPublicAddr(a) {
		return fmt.Errorf("%q: the server does not call loopback, private, link-local or other non-public addresses for a client", raw)
	}
	return nil
}

// withoutURL unwraps the *url.Error of an outbound request (JWKS fetch,
// back-channel logout), whose text holds the whole URL, which may carry a
// credential: the error logged is the cause alone.
func withoutURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
