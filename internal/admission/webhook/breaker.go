package webhook

import (
	"sync"
	"time"
)

// breaker tracks a webhook's consecutive failures. After threshold of
// them it opens for the back-off period: calls are not attempted. When
// the period ends the next call goes through; its success closes the
// breaker, its failure opens it again.
type breaker struct {
	mu        sync.Mutex
	failures  int
	openUntil time.Time
	lastErr   error
}

func (d *Dispatcher) breaker(key string) *breaker {
	d.mu.Lock()
	defer d.mu.Unlock()
	b, ok := d.breakers[key]
	if !ok {
		b = &breaker{}
		d.breakers[key] = b
	}
	return b
}

func (b *breaker) open(now time.Time) (until time.Time, last error, open bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.openUntil, b.lastErr, now.Before(b.openUntil)
}

func (b *breaker) failuresNow() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.failures
}

func (b *breaker) failed(now time.Time, err error, threshold int, backoff time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failures++
	b.lastErr = err
	if backoff > 0 && b.failures >= threshold {
		b.openUntil = now.Add(backoff)
	}
}

func (b *breaker) succeeded() {
	b.mu.Lock()
	b.failures, b.lastErr, b.openUntil = 0, nil, time.Time{}
	b.mu.Unlock()
}
