package authserver

import "time"

// feedCursor follows a storage feed whose entries carry increasing sequence
// numbers: the revocation feed (introspect_cache.go) and the client change
// feed (clientfeed.go). PostgreSQL hands sequence numbers out before
// commit, so an entry can appear after entries above it: the cursor stays
// below such a gap, and the entries above it are read again, until the gap
// fills or has been waited for gapWait. At most maxGaps numbers below the
// highest one read are waited for, which bounds the memory the cursor
// needs when many numbers never appear (rows garbage-collected before a
// new instance first reads the feed).
type feedCursor struct {
	pos     int64 // every entry with Seq <= pos has been applied or given up
	seen    map[int64]struct{}
	gaps    map[int64]time.Time // missing Seq → when first missed
	gapWait time.Duration
	maxGaps int64
}

func newFeedCursor(gapWait time.Duration, maxGaps int64) feedCursor {
	return feedCursor{seen: map[int64]struct{}{}, gaps: map[int64]time.Time{}, gapWait: gapWait, maxGaps: maxGaps}
}

// add records that the entry seq was read, and reports whether it is new
// (to be applied).
func (c *feedCursor) add(seq int64) bool {
	if seq <= c.pos {
		return false
	}
	if _, ok := c.seen[seq]; ok {
		return false
	}
	c.seen[seq] = struct{}{}
	return true
}

// advance moves the cursor over the entries read, up to maxSeen (the
// highest read), and over the gaps given up at now, and reports how many
// gaps it gave up. An entry that commits after its gap was given up is
// never read: the caller must then stop trusting what such an entry could
// have changed (its cache).
func (c *feedCursor) advance(now time.Time, maxSeen int64) (gaveUp int) {
	if floor := maxSeen - c.maxGaps; c.pos < floor {
		missing := floor - c.pos
		for s := range c.seen {
			if s <= floor {
				delete(c.seen, s)
				missing--
			}
		}
		gaveUp += int(missing)
		for s := range c.gaps {
			if s <= floor {
				delete(c.gaps, s)
			}
		}
		c.pos = floor
	}
	for c.pos < maxSeen {
		next := c.pos + 1
		if _, ok := c.seen[next]; ok {
			delete(c.seen, next)
			c.pos = next
			continue
		}
		first, ok := c.gaps[next]
		if !ok {
			c.gaps[next] = now
			first = now
		}
		if now.Sub(first) < c.gapWait {
			// Remember the other gaps below maxSeen, so each is given up
			// in time.
			for s := next + 1; s < maxSeen; s++ {
				if _, ok := c.seen[s]; !ok {
					if _, ok := c.gaps[s]; !ok {
						c.gaps[s] = now
					}
				}
			}
			return gaveUp
		}
		delete(c.gaps, next)
		c.pos = next
		gaveUp++
	}
	return gaveUp
}
