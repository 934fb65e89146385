package password

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// DefaultMinLength is the minimum length of a new user's password (NIST SP
// 800-63B asks for at least 8; we default to 12).
const DefaultMinLength = 12

// MaxLength bounds a password, so hashing cost stays bounded.
const MaxLength = 1024

// ErrPolicy is wrapped by every CheckPolicy failure.
var ErrPolicy = errors.New("password does not meet the policy")

// common is a small blocklist of passwords seen most often in breaches.
var common = map[string]bool{}

func init() {
	for _, p := range strings.Fields(`123456 123456789 12345678 password qwerty123 qwerty1 111111 12345 1234567890
		1234567 123123 password1 password123 password12 password1234 iloveyou 000000 qwertyuiop 123321 654321
		abc123 abcd1234 1q2w3e4r 1q2w3e4r5t 1qaz2wsx qwerty12345 letmein welcome welcome1 welcome123 monkey
		dragon football baseball sunshine princess admin admin123 administrator passw0rd p@ssw0rd p@ssword
		changeme changeme123 trustno1 superman batman master 987654321 asdfghjkl zaq12wsx 123qwe 123abc
		qwerty123456 123456789012 1234567890123 passwordpassword correcthorsebatterystaple`) {
		common[p] = true
	}
}

// CheckPolicy reports whether pw may be set as a user's password: at least
// minLen characters (Unicode code points), at most MaxLength bytes, and not
// on the blocklist of common passwords.
func CheckPolicy(pw string, minLen int) error {
	if n := utf8.RuneCountInString(pw); n < minLen {
		return fmt.Errorf("%w: it must be at least %d characters long", ErrPolicy, minLen)
	}
	if len(pw) > MaxLength {
		return fmt.Errorf("%w: it must be at most %d bytes long", ErrPolicy, MaxLength)
	}
	if common[strings.ToLower(pw)] {
		return fmt.Errorf("%w: it is one of the most common passwords", ErrPolicy)
	}
	return nil
}
