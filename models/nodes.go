package models

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm/clause"
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

// RegisterNode inserts or updates the node named n.Name (registration is
// idempotent: a re-register updates role, addresses, capacity, labels and
// version, clears Draining and counts as a heartbeat).
func (s *Store) RegisterNode(ctx context.Context, n Node, now time.Time) (*Node, error) {
	now = now.UTC()
	n.ID = 0
	n.LastHeartbeat = &now
	n.RegisteredAt = now
	n.Draining = false
	if n.Labels == nil {
		n.Labels = Labels{}
	}
	err := s.db(ctx).Clauses(clause.OnConflict{
		Columns: []clause.Column{{Name: "name"}},
		DoUpdates: clause.AssignmentColumns([]string{
			"role", "rtmp_address", "http_address", "capacity", "labels", "version", "last_heartbeat", "draining",
		}),
	}).Create(&n).Error
	if err != nil {
		return nil, fmt.Errorf("register node %s: %w", n.Name, err)
	}
	return s.NodeByName(ctx, n.Name)
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
