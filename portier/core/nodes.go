package core

import (
	"context"

	"github.com/portier/portier/models"
)

// DrainNode drains a concierge for an operator: the scheduler places
// nothing more there and its tasks are handed back to run elsewhere (its
// next poll tells it to stop them). It returns the handed-back tasks.
func (c *Core) DrainNode(ctx context.Context, by Actor, name string) ([]int64, error) {
	ids, err := c.store.DrainConcierge(ctx, name, c.now(), c.event(by, "node.drain", models.NodeObject(name), nil))
	if err != nil {
		return nil, err
	}
	c.live.Kick()
	return ids, nil
}

// ResumeNode ends a drain: the concierge takes tasks again.
func (c *Core) ResumeNode(ctx context.Context, by Actor, name string) error {
	if err := c.store.ResumeConcierge(ctx, name, c.event(by, "node.resume", models.NodeObject(name), nil)); err != nil {
		return err
	}
	c.live.Kick()
	return nil
}

// RemoveNode forgets a node that no longer reports in (models.ErrInUse
// while it does).
func (c *Core) RemoveNode(ctx context.Context, by Actor, name string) error {
	return c.store.RemoveNode(ctx, name, c.live.AliveSince(), c.event(by, "node.remove", models.NodeObject(name), nil))
}
