package ng

import (
	"sync"
	"time"
)

// cache holds the replies sent, by cookie, so that a retransmitted request
// gets the same reply and is not run twice (rtpengine's cookie_cache.c):
// two generations, swapped when the current one is ttl old, so a reply
// lives between ttl and 2×ttl. A generation that grows past maxBytes is
// swapped early, so the cache never holds more than about 2×maxBytes.
type cache struct {
	ttl      time.Duration
	maxBytes int

	mu        sync.Mutex
	cond      *sync.Cond
	current   map[string][]byte
	old       map[string][]byte
	bytes     int
	swapped   time.Time
	inFlight  map[string]bool
	swapCount uint64
}

func newCache(ttl time.Duration, maxBytes int, now time.Time) *cache {
	c := &cache{
		ttl:      ttl,
		maxBytes: maxBytes,
		current:  map[string][]byte{},
		old:      map[string][]byte{},
		inFlight: map[string]bool{},
		swapped:  now,
	}
	c.cond = sync.NewCond(&c.mu)
	return c
}

// begin looks cookie up. With a cached reply it returns it; otherwise it
// marks the cookie in flight (a duplicate arriving meanwhile waits for
// the reply) and the caller must call end.
func (c *cache) begin(cookie string, now time.Time) (reply []byte, cached bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.swapIfDueLocked(now)
	for {
		if r, ok := c.current[cookie]; ok {
			return r, true
		}
		if r, ok := c.old[cookie]; ok {
			return r, true
		}
		if !c.inFlight[cookie] {
			c.inFlight[cookie] = true
			return nil, false
		}
		c.cond.Wait()
	}
}

// end stores the reply to cookie and wakes its duplicates.
func (c *cache) end(cookie string, reply []byte, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.inFlight, cookie)
	c.swapIfDueLocked(now)
	if c.bytes+len(cookie)+len(reply) > c.maxBytes {
		c.swapLocked(now)
	}
	c.current[cookie] = reply
	c.bytes += len(cookie) + len(reply)
	c.cond.Broadcast()
}

func (c *cache) swapIfDueLocked(now time.Time) {
	switch age := now.Sub(c.swapped); {
	case age >= 2*c.ttl:
		// Both generations are too old (no request came for a while).
		c.swapLocked(now)
		c.swapLocked(now)
	case age >= c.ttl:
		c.swapLocked(now)
	}
}

func (c *cache) swapLocked(now time.Time) {
	c.old, c.current = c.current, make(map[string][]byte, len(c.current))
	c.bytes = 0
	c.swapped = now
	c.swapCount++
}

// len returns how many replies are cached.
func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.current) + len(c.old)
}
