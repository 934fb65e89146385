package authserver

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"

	"github.com/oauthkit/authserver/internal/password"
)

// unusableHash returns an argon2id PHC string with p's parameters and a
// random salt and key: checking a password against it costs one argon2id hash,
// as for a real user, and never matches. Building it costs no hash, so a
// server that never sees a password grant never allocates argon2id's working
// memory (19 MiB at the default parameters), which start-up used to do.
func unusableHash(p password.Params) (string, error) {
	salt, key := make([]byte, p.SaltLen), make([]byte, p.KeyLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("authserver: dummy hash: %w", err)
	}
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("authserver: dummy hash: %w", err)
	}
	b64 := base64.RawStdEncoding
	// Version 19 (0x13) is argon2id's current version, the one Hash writes.
	return fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s",
		p.Memory, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}
