package models

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/portier/portier/portier/compile"
)

// DefaultApp is the application streams belong to when none is named.
const DefaultApp = "live"

// NameRule says what a stream, application, task config or rendition name
// may look like (compile.NameRule: the compiler's rule is the only one).
const NameRule = compile.NameRule

// ValidName reports whether n follows NameRule.
func ValidName(n string) bool { return compile.ValidName(n) }

// NameError is the refusal of a name in field that breaks NameRule.
func NameError(field string) error {
	return &SpecError{Field: field, Message: "must be " + NameRule, Rule: NameRule}
}

// NewStreamKey returns a random URL-safe publish key.
func NewStreamKey() string { return RandomSecret(24) }

// ListApplications lists applications by name.
func (s *Store) ListApplications(ctx context.Context) ([]Application, error) {
	var out []Application
	if err := s.db(ctx).Order("name").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("list applications: %w", err)
	}
	return out, nil
}

// CreateApplication adds an application.
func (s *Store) CreateApplication(ctx context.Context, name string) (*Application, error) {
	if !ValidName(name) {
		return nil, fmt.Errorf("invalid application name %q: %w", name, NameError("app"))
	}
	a := &Application{Name: name}
	if err := s.db(ctx).Create(a).Error; err != nil {
		return nil, conflict(err, "create application "+name)
	}
	return a, nil
}

// ApplicationByName loads an application.
func (s *Store) ApplicationByName(ctx context.Context, name string) (*Application, error) {
	var a Application
	if err := s.db(ctx).Where("name = ?", name).First(&a).Error; err != nil {
		return nil, notFound(err, "application "+name)
	}
	return &a, nil
}

// EnsureApplication returns the named application, creating it if needed.
func (s *Store) EnsureApplication(ctx context.Context, name string) (*Application, error) {
	a, err := s.ApplicationByName(ctx, name)
	if err == nil || !errors.Is(err, ErrNotFound) {
		return a, err
	}
	a, err = s.CreateApplication(ctx, name)
	if errors.Is(err, ErrConflict) {
		return s.ApplicationByName(ctx, name)
	}
	return a, err
}

// DeleteApplication removes an application that has no streams (ErrInUse otherwise).
func (s *Store) DeleteApplication(ctx context.Context, id int64) (*Application, error) {
	var a Application
	if err := s.db(ctx).First(&a, id).Error; err != nil {
		return nil, notFound(err, "application")
	}
	var n int64
	if err := s.db(ctx).Model(&Stream{}).Where("application_id = ?", id).Count(&n).Error; err != nil {
		return nil, fmt.Errorf("count streams: %w", err)
	}
	if n > 0 {
		return nil, fmt.Errorf("application %s has %d streams: %w", a.Name, n, ErrInUse)
	}
	if err := s.db(ctx).Delete(&a).Error; err != nil {
		if errors.Is(err, gorm.ErrForeignKeyViolated) {
			return nil, fmt.Errorf("application %s: %w", a.Name, ErrInUse)
		}
		return nil, fmt.Errorf("delete application: %w", err)
	}
	return &a, nil
}

// CreateStream adds a stream under app (created if missing) with a new key.
func (s *Store) CreateStream(ctx context.Context, app, name string, ownerID int64) (*Stream, error) {
	if !ValidName(name) {
		return nil, fmt.Errorf("invalid stream name %q: %w", name, NameError("name"))
	}
	var st *Stream
	err := s.Tx(ctx, func(tx *Store) error {
		a, err := tx.EnsureApplication(ctx, app)
		if err != nil {
			return err
		}
		st = &Stream{ApplicationID: a.ID, Name: name, OwnerID: ownerID, PublishKey: NewStreamKey(), Enabled: true}
		if err := tx.db(ctx).Omit("Application", "Owner").Create(st).Error; err != nil {
			return conflict(err, fmt.Sprintf("create stream %s/%s", app, name))
		}
		st.Application = *a
		return nil
	})
	if err != nil {
		return nil, err
	}
	return st, nil
}

func (s *Store) streamQuery(ctx context.Context) *gorm.DB {
	return s.db(ctx).Model(&Stream{}).Preload("Application").Preload("Owner")
}

// StreamByID loads a stream with its application and owner.
func (s *Store) StreamByID(ctx context.Context, id int64) (*Stream, error) {
	var st Stream
	if err := s.streamQuery(ctx).First(&st, id).Error; err != nil {
		return nil, notFound(err, "stream")
	}
	return &st, nil
}

// StreamByName loads app/name.
func (s *Store) StreamByName(ctx context.Context, app, name string) (*Stream, error) {
	var st Stream
	err := s.streamQuery(ctx).
		Where("name = ? AND application_id = (SELECT id FROM applications WHERE name = ?)", name, app).
		First(&st).Error
	if err != nil {
		return nil, notFound(err, "stream "+app+"/"+name)
	}
	return &st, nil
}

// StreamByKey loads the stream whose publish key is key (OBS users paste the
// key as the stream name).
func (s *Store) StreamByKey(ctx context.Context, key string) (*Stream, error) {
	var st Stream
	if key == "" {
		return nil, fmt.Errorf("stream by key: %w", ErrNotFound)
	}
	if err := s.streamQuery(ctx).Where("publish_key = ?", key).First(&st).Error; err != nil {
		return nil, notFound(err, "stream by key")
	}
	return &st, nil
}

// StreamFilter selects streams for ListStreams. Zero values select everything.
type StreamFilter struct {
	OwnerID int64  // 0: any owner
	Live    *bool  // nil: live or not
	App     string // "": any application
	Limit   int
	Offset  int
}

// ListStreams lists streams by id with the total matching count.
func (s *Store) ListStreams(ctx context.Context, f StreamFilter) ([]Stream, int64, error) {
	q := s.db(ctx).Model(&Stream{})
	if f.OwnerID != 0 {
		q = q.Where("owner_id = ?", f.OwnerID)
	}
	if f.Live != nil {
		q = q.Where("live = ?", *f.Live)
	}
	if f.App != "" {
		q = q.Where("application_id = (SELECT id FROM applications WHERE name = ?)", f.App)
	}
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, fmt.Errorf("count streams: %w", err)
	}
	var out []Stream
	if err := q.Preload("Application").Preload("Owner").Order("id").Limit(lim(f.Limit)).Offset(f.Offset).Find(&out).Error; err != nil {
		return nil, 0, fmt.Errorf("list streams: %w", err)
	}
	return out, total, nil
}

// StreamUpdate holds the fields of a stream to change; nil means unchanged.
type StreamUpdate struct {
	Name          *string
	Enabled       *bool
	AllowTakeover *bool
	HLSPublic     *bool
}

// UpdateStream changes a stream's name or flags.
func (s *Store) UpdateStream(ctx context.Context, id int64, up StreamUpdate) (*Stream, error) {
	cols := map[string]any{"updated_at": time.Now().UTC()}
	if up.Name != nil {
		if !ValidName(*up.Name) {
			return nil, fmt.Errorf("invalid stream name %q: %w", *up.Name, NameError("name"))
		}
		cols["name"] = *up.Name
	}
	if up.Enabled != nil {
		cols["enabled"] = *up.Enabled
	}
	if up.AllowTakeover != nil {
		cols["allow_takeover"] = *up.AllowTakeover
	}
	if up.HLSPublic != nil {
		cols["hls_public"] = *up.HLSPublic
	}
	res := s.db(ctx).Model(&Stream{}).Where("id = ?", id).Updates(cols)
	if res.Error != nil {
		return nil, conflict(res.Error, "update stream")
	}
	if res.RowsAffected == 0 {
		return nil, fmt.Errorf("update stream: %w", ErrNotFound)
	}
	return s.StreamByID(ctx, id)
}

// RotateStreamKey gives a stream a new publish key and returns the stream.
func (s *Store) RotateStreamKey(ctx context.Context, id int64) (*Stream, error) {
	res := s.db(ctx).Model(&Stream{}).Where("id = ?", id).
		Updates(map[string]any{"publish_key": NewStreamKey(), "updated_at": time.Now().UTC()})
	if res.Error != nil {
		return nil, fmt.Errorf("rotate key: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return nil, fmt.Errorf("rotate key: %w", ErrNotFound)
	}
	return s.StreamByID(ctx, id)
}

// DeleteStream removes a stream with its origins, task configs and tasks.
func (s *Store) DeleteStream(ctx context.Context, id int64) error {
	res := s.db(ctx).Delete(&Stream{}, id)
	if res.Error != nil {
		return fmt.Errorf("delete stream: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("delete stream: %w", ErrNotFound)
	}
	return nil
}

// CountLiveStreams counts streams that are live now.
func (s *Store) CountLiveStreams(ctx context.Context) (int64, error) {
	var n int64
	if err := s.db(ctx).Model(&Stream{}).Where("live = ?", true).Count(&n).Error; err != nil {
		return 0, fmt.Errorf("count live streams: %w", err)
	}
	return n, nil
}

// StreamOrigins lists the origins holding a stream's publish, newest first.
func (s *Store) StreamOrigins(ctx context.Context, streamID int64) ([]StreamOrigin, error) {
	var out []StreamOrigin
	if err := s.db(ctx).Where("stream_id = ?", streamID).Order("since DESC").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("stream origins: %w", err)
	}
	return out, nil
}
