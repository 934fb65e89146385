// Package password hashes and verifies user passwords (argon2id in PHC string
// form, with bcrypt accepted for imported hashes) and client secrets.
//
// argon2id is golang.org/x/crypto/argon2. Each hash allocates its working
// memory (Params.Memory KiB, 19 MiB at the default parameters); callers
// bound how many hashes run at once.
//
// It is shared by the authserver package and the command line; it has no
// dependency on storage or fosite.
package password

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// ErrMismatch is returned by Verify when the password does not match.
var ErrMismatch = errors.New("password: mismatch")

// ErrMalformedHash is returned for a stored hash that cannot be parsed.
var ErrMalformedHash = errors.New("password: malformed hash")

// Params are argon2id cost parameters.
type Params struct {
	// Memory in KiB.
	Memory uint32
	// Time is the number of passes.
	Time uint32
	// Threads is the degree of parallelism.
	Threads uint8
	// SaltLen and KeyLen in bytes.
	SaltLen uint32
	KeyLen  uint32
}

// DefaultParams are OWASP's recommended argon2id parameters (m=19456 KiB, t=2,
// p=1).
var DefaultParams = Params{Memory: 19456, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}

// TestParams are cheap parameters for tests only. They MUST NOT be used for
// real passwords.
var TestParams = Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

var b64 = base64.RawStdEncoding

// Hash returns the argon2id PHC string of pw:
// $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>.
func Hash(pw string, p Params) (string, error) {
	salt := make([]byte, p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password: salt: %w", err)
	}
	key := argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// Verify checks pw against a stored hash (argon2id PHC or bcrypt). It returns
// nil on a match, ErrMismatch on a mismatch and ErrMalformedHash (wrapped) for
// an unparseable hash. needsRehash reports a match against a hash made with
// other parameters than p (or with bcrypt), so the caller can upgrade it.
func Verify(pw, hash string, p Params) (needsRehash bool, err error) {
	switch {
	case strings.HasPrefix(hash, "$argon2id$"):
		hp, salt, key, err := parseArgon2id(hash)
		if err != nil {
			return false, err
		}
		got := argon2.IDKey([]byte(pw), salt, hp.Time, hp.Memory, hp.Threads, uint32(len(key)))
		if subtle.ConstantTimeCompare(got, key) != 1 {
			return false, ErrMismatch
		}
		return hp.Memory != p.Memory || hp.Time != p.Time || hp.Threads != p.Threads ||
			uint32(len(salt)) != p.SaltLen || uint32(len(key)) != p.KeyLen, nil
	case strings.HasPrefix(hash, "$2a$"), strings.HasPrefix(hash, "$2b$"), strings.HasPrefix(hash, "$2y$"):
		// A stored hash with a huge cost would stall a login for minutes
		// (cost 20 takes about a minute): refuse it as malformed.
		if cost, err := bcrypt.Cost([]byte(hash)); err != nil || cost > MaxBcryptCost {
			return false, fmt.Errorf("%w: bcrypt cost out of range", ErrMalformedHash)
		}
		err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(pw))
		if errors.Is(err, bcrypt.ErrMismatchedHashAndPassword) {
			return false, ErrMismatch
		}
		if err != nil {
			return false, fmt.Errorf("%w: bcrypt: %w", ErrMalformedHash, err)
		}
		return true, nil
	default:
		return false, fmt.Errorf("%w: unknown scheme", ErrMalformedHash)
	}
}

// MaxBcryptCost is the highest bcrypt cost Verify accepts (cost 14 takes
// about a second).
const MaxBcryptCost = 14

// maxArgon2Memory bounds the memory a stored hash may ask for (1 GiB), so a
// hostile imported hash cannot exhaust the server.
const maxArgon2Memory = 1 << 20

// parseArgon2id parses $argon2id$v=19$m=..,t=..,p=..$salt$hash.
func parseArgon2id(s string) (Params, []byte, []byte, error) {
	var p Params
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return p, nil, nil, fmt.Errorf("%w: argon2id: wrong number of fields", ErrMalformedHash)
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return p, nil, nil, fmt.Errorf("%w: argon2id: unsupported version", ErrMalformedHash)
	}
	seen := map[string]bool{}
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || seen[k] {
			return p, nil, nil, fmt.Errorf("%w: argon2id: bad parameter %q", ErrMalformedHash, kv)
		}
		seen[k] = true
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || n == 0 {
			return p, nil, nil, fmt.Errorf("%w: argon2id: bad parameter %q", ErrMalformedHash, kv)
		}
		switch k {
		case "m":
			p.Memory = uint32(n)
		case "t":
			p.Time = uint32(n)
		case "p":
			if n > 255 {
				return p, nil, nil, fmt.Errorf("%w: argon2id: parallelism too large", ErrMalformedHash)
			}
			p.Threads = uint8(n)
		default:
			return p, nil, nil, fmt.Errorf("%w: argon2id: unknown parameter %q", ErrMalformedHash, k)
		}
	}
	if p.Memory == 0 || p.Time == 0 || p.Threads == 0 {
		return p, nil, nil, fmt.Errorf("%w: argon2id: missing parameter", ErrMalformedHash)
	}
	if p.Memory > maxArgon2Memory || p.Time > 64 || p.Memory < 8*uint32(p.Threads) {
		return p, nil, nil, fmt.Errorf("%w: argon2id: parameters out of range", ErrMalformedHash)
	}
	salt, err := b64.DecodeString(parts[4])
	if err != nil || len(salt) < 8 {
		return p, nil, nil, fmt.Errorf("%w: argon2id: bad salt", ErrMalformedHash)
	}
	key, err := b64.DecodeString(parts[5])
	if err != nil || len(key) < 16 || len(key) > 128 {
		return p, nil, nil, fmt.Errorf("%w: argon2id: bad hash", ErrMalformedHash)
	}
	p.SaltLen, p.KeyLen = uint32(len(salt)), uint32(len(key))
	return p, salt, key, nil
}

// MinSecretLength is the minimum length of a client secret.
const MinSecretLength = 32

// HashSecret hashes a client secret. Client secrets are high-entropy (at
// least MinSecretLength characters, usually generated), so one SHA-256 is
// enough and keeps client authentication cheap on hot endpoints such as
// introspection; a slow hash protects low-entropy passwords, not random keys.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return "$sha256$" + b64.EncodeToString(sum[:])
}

// VerifySecret compares a client secret with a HashSecret hash in constant
// time.
func VerifySecret(secret, hash string) bool {
	sum := sha256.Sum256([]byte(secret))
	want := "$sha256$" + b64.EncodeToString(sum[:])
	return subtle.ConstantTimeCompare([]byte(want), []byte(hash)) == 1
}

// GenerateSecret returns a random client secret of 43 URL-safe characters
// (256 bits).
func GenerateSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("password: generate secret: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
