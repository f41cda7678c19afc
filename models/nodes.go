package models

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/portier/portier/internal/nodewire"
)

// Node roles.
const (
	NodeRoleOrigin    = "origin"
	NodeRoleEdge      = "edge"
	NodeRoleConcierge = "concierge"
	NodeRoleCDNEdge   = "cdn-edge"
	NodeRoleHLSOrigin = "hls-origin"
)

// ValidNodeRole reports whether r is a known node role.
func ValidNodeRole(r string) bool {
	switch r {
	case NodeRoleOrigin, NodeRoleEdge, NodeRoleConcierge, NodeRoleCDNEdge, NodeRoleHLSOrigin:
		return true
	}
	return false
}

// NameTakenError refuses a registration under a name that a live node of
// another identity (role, addresses, host) holds.
type NameTakenError struct {
	Name   string
	Holder Node // the live node that holds the name
	// Now is the time of the refused registration (for the age of Holder's
	// last heartbeat).
	Now time.Time
}

func (e *NameTakenError) Error() string {
	h := e.Holder
	where := h.RTMPAddress
	if where == "" {
		where = h.HTTPAddress
	}
	if where == "" {
		where = "no address"
	}
	if h.Host != "" {
		where += " on host " + h.Host
	}
	ago := ""
	if h.LastHeartbeat != nil {
		ago = fmt.Sprintf(", last heartbeat %s ago", e.Now.Sub(*h.LastHeartbeat).Round(time.Millisecond))
	}
	return fmt.Sprintf("node name %q is taken by a live %s at %s%s: give this node its own --name "+
		"(names must be unique among live nodes), or stop the other node", e.Name, h.Role, where, ago)
}

// Is makes a NameTakenError an ErrConflict.
func (e *NameTakenError) Is(target error) bool { return target == ErrConflict }

// RegisterNode is ClaimNode with the alive window of the default heartbeat
// interval (nodewire.AliveWindow).
func (s *Store) RegisterNode(ctx context.Context, n Node, now time.Time) (*Node, error) {
	return s.ClaimNode(ctx, n, now, now.Add(-nodewire.AliveWindow(nodewire.DefaultHeartbeat)))
}

// ClaimNode registers the node named n.Name. A node is identified by its
// name: the registration succeeds when nobody holds the name, when the
// holder is the same node (same role, addresses and host: a restart, which
// updates capacity, labels and version, clears Draining and counts as a
// heartbeat), or when the holder is dead (no heartbeat at or after
// aliveSince). Otherwise it fails with a *NameTakenError. One statement
// (an upsert whose update is conditional) decides, so of two concurrent
// claims of a free name exactly one wins, on both databases.
func (s *Store) ClaimNode(ctx context.Context, n Node, now, aliveSince time.Time) (*Node, error) {
	now = now.UTC()
	n.ID = 0
	n.LastHeartbeat = &now
	n.RegisteredAt = now
	n.Draining = false
	if n.Labels == nil {
		n.Labels = Labels{}
	}
	res := s.db(ctx).Clauses(clause.OnConflict{
		Columns: []clause.Column{{Name: "name"}},
		DoUpdates: clause.AssignmentColumns([]string{
			"role", "rtmp_address", "http_address", "host", "capacity", "labels", "capabilities", "version", "last_heartbeat", "draining", "registered_at",
		}),
		Where: clause.Where{Exprs: []clause.Expression{gorm.Expr(
			"(nodes.role = excluded.role AND nodes.rtmp_address = excluded.rtmp_address AND "+
				"nodes.http_address = excluded.http_address AND nodes.host = excluded.host) OR "+
				"nodes.last_heartbeat IS NULL OR nodes.last_heartbeat < ?", aliveSince.UTC())}},
	}).Create(&n)
	if res.Error != nil {
		return nil, fmt.Errorf("register node %s: %w", n.Name, res.Error)
	}
	got, err := s.NodeByName(ctx, n.Name)
	if err != nil {
		return nil, err
	}
	if res.RowsAffected == 0 {
		return nil, &NameTakenError{Name: n.Name, Holder: *got, Now: now}
	}
	return got, nil
}

// ReleaseNode marks the node n.Name dead at once (a clean shutdown), if it
// is still the node n (same role, addresses and host): its name is free for
// another node, and the reaper clears the streams it held. It reports
// whether it released the name.
func (s *Store) ReleaseNode(ctx context.Context, n Node) (bool, error) {
	res := s.db(ctx).Model(&Node{}).
		Where("name = ? AND role = ? AND rtmp_address = ? AND http_address = ? AND host = ?", n.Name, n.Role, n.RTMPAddress, n.HTTPAddress, n.Host).
		Update("last_heartbeat", nil)
	if res.Error != nil {
		return false, fmt.Errorf("release node %s: %w", n.Name, res.Error)
	}
	return res.RowsAffected > 0, nil
}

// NodeByName loads a node.
func (s *Store) NodeByName(ctx context.Context, name string) (*Node, error) {
	var n Node
	if err := s.db(ctx).Where("name = ?", name).First(&n).Error; err != nil {
		return nil, notFound(err, "node "+name)
	}
	return &n, nil
}

// NodeHeartbeat records a heartbeat with the node's load; ErrNotFound tells
// the node to register again.
func (s *Store) NodeHeartbeat(ctx context.Context, name string, load NodeLoad, now time.Time) error {
	res := s.db(ctx).Model(&Node{}).Where("name = ?", name).
		Updates(map[string]any{"load": load, "last_heartbeat": now.UTC()})
	if res.Error != nil {
		return fmt.Errorf("heartbeat of node %s: %w", name, res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("heartbeat of node %s: %w", name, ErrNotFound)
	}
	return nil
}

// ListNodes lists nodes by name, only those of role when role is not empty.
func (s *Store) ListNodes(ctx context.Context, role string) ([]Node, error) {
	q := s.db(ctx).Model(&Node{})
	if role != "" {
		q = q.Where("role = ?", role)
	}
	var out []Node
	if err := q.Order("name").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	return out, nil
}

// DeadOriginNodes lists registered nodes that still hold stream origins but
// whose last heartbeat is older than deadline.
func (s *Store) DeadOriginNodes(ctx context.Context, deadline time.Time) ([]string, error) {
	var out []string
	err := s.db(ctx).Model(&Node{}).
		Where("(last_heartbeat IS NULL OR last_heartbeat < ?) AND name IN (SELECT node_name FROM stream_origins)", deadline.UTC()).
		Order("name").Pluck("name", &out).Error
	if err != nil {
		return nil, fmt.Errorf("dead origin nodes: %w", err)
	}
	return out, nil
}

// ResumeConcierge ends an operator's drain of a concierge: the scheduler
// places tasks there again (ErrNotFound: no such concierge).
func (s *Store) ResumeConcierge(ctx context.Context, name string, ev *AuditEvent) error {
	return s.writeTx(ctx, func(tx *Store) error {
		res := tx.db(ctx).Model(&Node{}).Where("name = ? AND role = ?", name, NodeRoleConcierge).Update("draining", false)
		if res.Error != nil {
			return fmt.Errorf("resume %s: %w", name, res.Error)
		}
		if res.RowsAffected == 0 {
			return fmt.Errorf("concierge %s: %w", name, ErrNotFound)
		}
		if ev != nil {
			return tx.Audit(ctx, ev)
		}
		return nil
	})
}

// RemoveNode forgets a node that has not heartbeated since aliveSince, with
// its stream statistics (the reaper already cleared what it held). A live
// node is refused with ErrInUse: it would register again at once.
func (s *Store) RemoveNode(ctx context.Context, name string, aliveSince time.Time, ev *AuditEvent) error {
	return s.writeTx(ctx, func(tx *Store) error {
		var n Node
		if err := tx.db(ctx).Where("name = ?", name).First(&n).Error; err != nil {
			if errors.Is(err, gorm.ErrRecordNotFound) {
				return fmt.Errorf("node %s: %w", name, ErrNotFound)
			}
			return fmt.Errorf("node %s: %w", name, err)
		}
		if n.LastHeartbeat != nil && !n.LastHeartbeat.Before(aliveSince.UTC()) {
			return fmt.Errorf("node %s still reports in: stop it first, or it registers again: %w", name, ErrInUse)
		}
		if err := tx.db(ctx).Where("node_name = ?", name).Delete(&StreamStat{}).Error; err != nil {
			return fmt.Errorf("remove statistics of %s: %w", name, err)
		}
		if err := tx.db(ctx).Delete(&n).Error; err != nil {
			return fmt.Errorf("remove node %s: %w", name, err)
		}
		if ev != nil {
			return tx.Audit(ctx, ev)
		}
		return nil
	})
}
