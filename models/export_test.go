package models

import "context"

// TargetsGeneration is the target cache's generation (it moves on every
// invalidation).
func TargetsGeneration(s *Store) uint64 { return s.targets.gen.Load() }

// TargetsUsable reports whether the target cache is in use (on Postgres:
// its LISTEN is in effect).
func TargetsUsable(s *Store) bool { return s.targets.usable.Load() }

// SetTargetsAfterRead makes fn run between a cached lookup's database read
// and storing its answer (nil: nothing).
func SetTargetsAfterRead(s *Store, fn func()) { s.targets.afterRead = fn }

// MigrateDownTo rolls s's schema back to version v.
func MigrateDownTo(s *Store, v int64) error {
	_, err := s.provider.DownTo(context.Background(), v)
	return err
}

// MigrateUp applies every pending migration to s's schema.
func MigrateUp(s *Store) error {
	_, err := s.provider.Up(context.Background())
	return err
}

// MigrateUpTo applies the pending migrations up to version v.
func MigrateUpTo(s *Store, v int64) error {
	_, err := s.provider.UpTo(context.Background(), v)
	return err
}
