// Package browser holds the end-to-end tests of the sign-in and consent
// pages in a real browser: headless Chromium, driven with chromedp, against
// the authserver binary on a temporary SQLite database with --demo, and
// cmd/democlient as the app that signs in.
//
// The tests skip when no Chromium is installed, unless
// AUTHSERVER_TEST_BROWSER=required (as in .ci/run), when they fail instead.
// With AUTHSERVER_UPDATE_SCREENSHOTS=1 they also write the screenshots of the
// pages to docs/screenshots/, which the README shows.
package browser
