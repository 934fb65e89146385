package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/oauthkit/authserver/storage"
	sqlstore "github.com/oauthkit/authserver/storage/sql"
)

// newSeedCmd fills a database with token records, for the scale scenario:
// throughput with a million stored records must stay close to the empty
// database's.
func newSeedCmd(g *globals) *cobra.Command {
	var db string
	var n, batch int
	cmd := &cobra.Command{
		Use:   "seed",
		Short: "Insert N token records (half access, half rotated refresh tokens; a tenth expired) into a database",
		Long: "seed writes token records straight into the server's database (stop the server first on SQLite, or\n" +
			"run it against PostgreSQL), in transactions of --batch records, so that the scenarios can be measured\n" +
			"on a large table. The records belong to no real client and are never valid tokens.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return seedTokens(cmd.Context(), g, db, n, batch)
		},
	}
	cmd.Flags().StringVar(&db, "db", "", "database (SQLite path or postgres:// URL)")
	cmd.Flags().IntVar(&n, "tokens", 1_000_000, "records to insert")
	cmd.Flags().IntVar(&batch, "batch", 10_000, "records per transaction")
	_ = cmd.MarkFlagRequired("db")
	return cmd
}

func seedTokens(ctx context.Context, g *globals, db string, n, batch int) error {
	st, err := sqlstore.Open(ctx, db)
	if err != nil {
		return err
	}
	defer st.Close()
	payload := make([]byte, 480) // about the size of a real grant's payload
	for i := range payload {
		payload[i] = 'x'
	}
	rnd := func() string {
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	now := time.Now().UTC()
	start := time.Now()
	for done := 0; done < n; {
		tx, err := st.BeginTx(ctx)
		if err != nil {
			return err
		}
		for i := 0; i < batch && done < n; i, done = i+1, done+1 {
			kind, active := storage.AccessToken, true
			if done%2 == 1 {
				kind, active = storage.RefreshToken, false
			}
			exp := now.Add(24 * time.Hour)
			if done%10 == 0 {
				exp = now.Add(-time.Hour)
			}
			t := storage.Token{Kind: kind, Signature: rnd(), RequestID: fmt.Sprint("seed-", done/20), ClientID: "seed-client",
				Subject: fmt.Sprint("seed-user-", done%5000), Active: active, RequestedAt: now, ExpiresAt: exp, Payload: payload}
			if err := st.CreateToken(tx, t); err != nil {
				_ = st.RollbackTx(tx)
				return err
			}
		}
		if err := st.CommitTx(tx); err != nil {
			return err
		}
		g.log.Info("seeded", "tokens", done, "elapsed", time.Since(start).Round(time.Second))
	}
	return nil
}
