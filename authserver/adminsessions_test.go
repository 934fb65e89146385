package authserver

import (
	"errors"
	"testing"
	"time"

	"github.com/oauthkit/authserver/storage"
)

// Ending every browser session of a user (admin API, users disable) also
// drops the records of the clients to notify of each session's end, as
// ending one session does.
func TestEndBrowserSessionsDropsLogoutTargets(t *testing.T) {
	st := openMemory(t)
	ctx := t.Context()
	now := time.Now()
	for _, tok := range []storage.Token{
		{Kind: storage.BrowserSession, Signature: "s1", RequestID: "sid-1", Subject: "u1", Active: true, RequestedAt: now, ExpiresAt: now.Add(time.Hour)},
		{Kind: logoutTargetKind, Signature: "t1", RequestID: "sid-1", ClientID: "rp", Active: true, RequestedAt: now, ExpiresAt: now.Add(time.Hour)},
	} {
		if err := st.CreateToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := EndBrowserSessions(ctx, st, "u1"); err != nil || n != 1 {
		t.Fatalf("EndBrowserSessions: %d %v", n, err)
	}
	if _, err := st.GetToken(ctx, logoutTargetKind, "t1"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the session's logout target is still stored: %v", err)
	}
}
