// Package ui renders the authorization server's browser pages: sign-in,
// consent, sign-out and error pages, with html/template from embedded files.
//
// The pages need no JavaScript. Every response carries a Content-Security-Policy
// that allows no script at all, only the server's own stylesheet, and no
// framing. An operator can brand the pages with a directory (serve --ui-dir)
// holding templates/*.html and static/* files that replace the embedded ones
// of the same name, the way Dex themes work.
//
// The package also makes and checks the CSRF tokens of the pages' forms. It
// knows nothing about OAuth, fosite or storage: the authserver package owns
// the flows and passes plain values in.
package ui
