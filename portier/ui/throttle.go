package ui

import (
	"math"
	"net/netip"
	"sort"
	"sync"
	"time"
)

// Login throttling: password guessing is slowed per account and per client
// address, with delays that double after a number of free failures.
//
// Design, and why:
//   - Per address (addrFree = 10 free failures, then 1 s doubling up to
//     addrMaxDelay = 15 min): one machine guessing at any accounts is
//     slowed to a handful of tries an hour. IPv6 clients are keyed by their
//     /64, which one host usually owns whole.
//   - Per account (acctFree = 5 free failures, then 1 s doubling up to
//     acctMaxDelay = 5 min): a distributed attack on one account from many
//     addresses gets at most one guess per 5 minutes, whatever it spends on
//     addresses. The cap is low on purpose: this is the limit an attacker
//     can impose on the real user, so it must never be a long lockout.
//   - Known addresses: an address this account signed in from successfully
//     (within knownFor = 30 days) is exempt from the account's delay, only
//     its own address limit applies. So the real user on their usual
//     network is not locked out by someone else's guessing at all, and on a
//     new network waits at most acctMaxDelay.
//   - A throttled attempt is refused before the password is checked (no
//     bcrypt work, and no information) and is not counted as a failure, so
//     waiting out the delay is all it takes. A success resets the account's
//     and the address's failures. State of a key is dropped after
//     forgetAfter = 1 h without failures.
//   - When a key starts being throttled (its free failures are used up),
//     the caller writes one audit event (ui.login.throttled).
//
// The state is in memory, per control-plane replica: with N replicas behind
// a load balancer an attacker gets up to N times the budget. Memory is
// bounded: at most maxThrottleKeys accounts and as many addresses; when a
// table is full, expired entries go first, then those with the fewest
// failures (never the most attacked ones).
//
// Concurrency: one mutex guards all state; it is never held across I/O.
type loginThrottle struct {
	now func() time.Time

	mu    sync.Mutex
	accts map[string]*throttleEntry
	addrs map[netip.Prefix]*throttleEntry
}

type throttleEntry struct {
	failures int
	lastFail time.Time
	known    map[netip.Prefix]time.Time // accounts: addresses of successful sign-ins
}

const (
	acctFree        = 5
	addrFree        = 10
	acctMaxDelay    = 5 * time.Minute
	addrMaxDelay    = 15 * time.Minute
	forgetAfter     = time.Hour
	knownFor        = 30 * 24 * time.Hour
	maxKnownAddrs   = 16
	maxThrottleKeys = 10000
)

func newLoginThrottle(now func() time.Time) *loginThrottle {
	if now == nil {
		now = time.Now
	}
	return &loginThrottle{now: now, accts: map[string]*throttleEntry{}, addrs: map[netip.Prefix]*throttleEntry{}}
}

// addrKey is the throttling key of a client address: the address itself,
// or its /64 for IPv6. An unparsable address shares one key.
func addrKey(addr string) netip.Prefix {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return netip.Prefix{}
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p
	}
	return netip.PrefixFrom(a, 32)
}

func acctKey(username string) string {
	if len(username) > 64 {
		return username[:64]
	}
	return username
}

// delay is how long after the last failure the next attempt must wait.
func delay(failures, free int, maxDelay time.Duration) time.Duration {
	if failures < free {
		return 0
	}
	n := failures - free
	if n >= 30 {
		return maxDelay
	}
	d := time.Second * time.Duration(math.Pow(2, float64(n)))
	return min(d, maxDelay)
}

func (e *throttleEntry) wait(now time.Time, free int, maxDelay time.Duration) time.Duration {
	if e == nil {
		return 0
	}
	return max(0, e.lastFail.Add(delay(e.failures, free, maxDelay)).Sub(now))
}

// Wait is how long a sign-in attempt for username from addr must wait (0:
// it may go ahead).
func (t *loginThrottle) Wait(username, addr string) time.Duration {
	now := t.now()
	ak := addrKey(addr)
	t.mu.Lock()
	defer t.mu.Unlock()
	w := t.addrs[ak].wait(now, addrFree, addrMaxDelay)
	if e := t.accts[acctKey(username)]; e != nil {
		if seen, ok := e.known[ak]; !ok || now.Sub(seen) > knownFor {
			w = max(w, e.wait(now, acctFree, acctMaxDelay))
		}
	}
	return w
}

// Throttled says which keys started being throttled with a failure.
type Throttled struct{ Account, Addr bool }

// Fail records a failed attempt and reports which keys it started
// throttling (for the audit log).
func (t *loginThrottle) Fail(username, addr string) Throttled {
	now := t.now()
	ak, uk := addrKey(addr), acctKey(username)
	t.mu.Lock()
	defer t.mu.Unlock()
	var out Throttled
	a := t.addrs[ak]
	if a == nil {
		a = &throttleEntry{}
		t.addrs[ak] = insertBounded(t.addrs, ak, a, now)
	}
	a.failures, a.lastFail = a.failures+1, now
	out.Addr = a.failures == addrFree
	u := t.accts[uk]
	if u == nil {
		u = &throttleEntry{}
		t.accts[uk] = insertBounded(t.accts, uk, u, now)
	}
	u.failures, u.lastFail = u.failures+1, now
	out.Account = u.failures == acctFree
	return out
}

// Succeed records a successful sign-in: it clears the failures of the
// account and the address, and remembers the address as known for the
// account.
func (t *loginThrottle) Succeed(username, addr string) {
	now := t.now()
	ak, uk := addrKey(addr), acctKey(username)
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.addrs, ak)
	u := t.accts[uk]
	if u == nil {
		u = &throttleEntry{}
		t.accts[uk] = insertBounded(t.accts, uk, u, now)
	}
	u.failures, u.lastFail = 0, time.Time{}
	if u.known == nil {
		u.known = map[netip.Prefix]time.Time{}
	}
	if _, ok := u.known[ak]; !ok && len(u.known) >= maxKnownAddrs {
		var oldest netip.Prefix
		var at time.Time
		for k, v := range u.known {
			if at.IsZero() || v.Before(at) {
				oldest, at = k, v
			}
		}
		delete(u.known, oldest)
	}
	u.known[ak] = now
}

// expired reports whether e holds nothing worth keeping.
func (e *throttleEntry) expired(now time.Time) bool {
	if e.failures > 0 && now.Sub(e.lastFail) < forgetAfter {
		return false
	}
	for _, seen := range e.known {
		if now.Sub(seen) < knownFor {
			return false
		}
	}
	return true
}

// insertBounded makes room in m for one more entry (see loginThrottle) and
// returns e. Called with the mutex held. A full table is cut to nine
// tenths in one pass (expired entries first, then the fewest failures), so
// a spray of new names costs one sort per thousand inserts, not a scan of
// the whole table under the mutex for each of them.
func insertBounded[K comparable](m map[K]*throttleEntry, k K, e *throttleEntry, now time.Time) *throttleEntry {
	if len(m) < maxThrottleKeys {
		return e
	}
	for key, v := range m {
		if v.expired(now) {
			delete(m, key)
		}
	}
	const keep = maxThrottleKeys * 9 / 10
	if len(m) <= keep {
		return e
	}
	type entry struct {
		key      K
		failures int
	}
	all := make([]entry, 0, len(m))
	for key, v := range m {
		all = append(all, entry{key, v.failures})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].failures < all[j].failures })
	for _, v := range all[:len(all)-keep] {
		delete(m, v.key)
	}
	return e
}

// size is the number of tracked accounts and addresses (tests).
func (t *loginThrottle) size() (int, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.accts), len(t.addrs)
}
