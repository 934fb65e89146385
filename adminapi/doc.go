// Package adminapi is the administration REST API of the authorization
// server: clients, users (roles, disable/enable, password reset, consents
// and sessions), signing keys, token revocation and the recent audit events,
// as JSON under /admin/v1 on the admin listener (never the public one).
//
// Requests carry a bearer access token issued by this server to a client
// holding the admin scope (client_credentials); it is verified with the
// resource package's rules, and a revoked token is refused at once. With
// Config.ClientCertificates, a TLS client certificate verified by the
// listener against the operators' CA authenticates instead. Errors
// are RFC 9457 problem details. Lists are paginated with an opaque cursor;
// single resources carry an ETag, and a write with a stale If-Match gets 412.
// Every change is written to the audit log with who made it.
//
// The API is described by the OpenAPI 3.1 document openapi.json in this
// directory, served as is at /admin/openapi.json.
package adminapi
