// Package replica is replication between brokers around the partition
// replicas of broker/partition: the follower's side (Fetchers: one fetcher
// per leader broker, fetching all that broker's partitions this broker
// follows in one Fetch with this broker's replica id, truncating each
// partition to where it agrees with a new leader epoch first, restarting a
// log that is behind the leader's log start or inside its tiered data,
// backing a partition off after its append failed — a full disk — and
// leaving out one whose log failed until the broker restarts) and
// the leader's ISR maintenance (ISR: one goroutine owns every ISR change
// proposal, shrinks for followers past replica.lag.time.max.ms and the
// expansions the fetch path hands it).
//
// The decisions about one partition (its high watermark, who is caught
// up, what to propose) are the partition's (partition.FollowerFetched,
// LaggingISR, TruncateTo, AppendReplicated); this package moves bytes and
// proposals between brokers and the controller.
package replica
