// Package replica is replication between brokers around the partition
// replicas of broker/partition: the follower's side (Fetchers: one fetcher
// per leader broker, fetching all that broker's partitions this broker
// follows in one Fetch with this broker's replica id, each partition
// stating the epoch of its last batch with its fetch offset (Fetch v12+
// LastFetchedEpoch, KIP-595) and truncating to where its log agrees with
// the leader's when the leader answers DivergingEpoch — no
// OffsetForLeaderEpoch round trip on a new leader epoch, except from a
// leader that answers Fetch below v12 — restarting a
// log that is behind the leader's log start or inside its tiered data,
// backing a partition off after its append failed — a full disk — and
// leaving out one whose log failed until the broker restarts) and
// the leader's ISR maintenance (ISR: one goroutine owns every ISR change
// proposal, shrinks for followers past replica.lag.time.max.ms and the
// expansions the fetch path hands it).
//
// The decisions about one partition (its high watermark, who is caught
// up, what to propose) are the partition's (partition.FollowerFetched,
// FollowerFetchedAt, LaggingISR, TruncateFollowing, AppendReplicated);
// this package moves bytes and
// proposals between brokers and the controller.
package replica
