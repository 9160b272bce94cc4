package metadata

import (
	"context"
	"slices"
)

// finishReassignments completes every reassignment whose target replicas
// are all in the ISR: the replicas being removed leave, and leadership
// moves to the first eligible target replica if the leader is being
// removed (or is not eligible). A partition with no eligible target
// replica waits, and so does one with a target replica that is
// unavailable (fenced, or in controlled shutdown) although still in the
// ISR — leaveISR takes it out only under a leader this controller has
// heard from (after a failover, not yet): Kafka's ISR never holds a
// fenced broker, and finishing would drop the live replicas being removed
// for one that is gone. Each step is checked against the partition epoch
// it was based on, and against the brokers as they are when it applies
// (the leader registered, unfenced and in sync, no target replica fenced:
// a fence touches no partition), so a step computed from an older state —
// by a failed-over controller, or before a broker's session ended — is
// rejected, and the next pass retries from the new one.
func (c *controller) finishReassignments(ctx context.Context, state *State, eligible, unavailable func(int32) bool) {
	state.EachTopic(func(t Topic) bool {
		for _, p := range t.Partitions {
			if !p.ReassignmentComplete() {
				continue
			}
			target := p.TargetReplicas()
			if slices.ContainsFunc(target, unavailable) {
				c.s.logger.Debug("controller: reassignment in sync but a target replica is fenced or shutting down; waiting", "topic", t.Name, "partition", p.Index, "target", target)
				continue
			}
			leader := int32(-1)
			if slices.Contains(target, p.Leader) && eligible(p.Leader) {
				leader = p.Leader
			} else {
				for _, r := range target {
					if electable(p, r, eligible) {
						leader = r
						break
					}
				}
			}
			if leader == -1 {
				c.s.logger.Debug("controller: reassignment in sync but no target replica can lead yet", "topic", t.Name, "partition", p.Index, "target", target)
				continue
			}
			next, err := c.s.finishReassignment(ctx, t.ID, p, leader)
			if err != nil {
				c.s.logger.Debug("controller: finishing reassignment not applied; retried", "topic", t.Name, "partition", p.Index, "error", err)
				continue
			}
			c.s.logger.Info("controller: partition reassignment finished", "topic", t.Name, "partition", p.Index,
				"replicas", next.Replicas, "removed", p.RemovingReplicas, "leader", next.Leader, "leader_epoch", next.LeaderEpoch)
		}
		return ctx.Err() == nil
	})
}
