//go:build !unix

package argon2

// minorFaults is not available on this platform.
func minorFaults() (int64, bool) { return 0, false }
