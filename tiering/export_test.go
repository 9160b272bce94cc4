package tiering

// HoldCacheWrites makes the disk cache's writer wait before each file until
// the returned function is called (then it proceeds and waits no more).
func HoldCacheWrites(t *Tier) (release func()) {
	held := make(chan struct{})
	t.cache.beforeWrite = func() { <-held }
	return func() { close(held) }
}

// WaitCacheWrites waits until every chunk queued for the disk cache is
// written (or dropped).
func WaitCacheWrites(t *Tier) { t.cache.waitWrites() }
