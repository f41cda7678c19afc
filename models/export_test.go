package models

// TargetsGeneration is the target cache's generation (it moves on every
// invalidation).
func TargetsGeneration(s *Store) uint64 { return s.targets.gen.Load() }

// TargetsUsable reports whether the target cache is in use (on Postgres:
// its LISTEN is in effect).
func TargetsUsable(s *Store) bool { return s.targets.usable.Load() }

// SetTargetsAfterRead makes fn run between a cached lookup's database read
// and storing its answer (nil: nothing).
func SetTargetsAfterRead(s *Store, fn func()) { s.targets.afterRead = fn }
