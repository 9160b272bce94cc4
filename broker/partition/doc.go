// Package partition is one partition replica on this broker: its local log
// (broker/segment), idempotent-producer state, leader-epoch cache, high
// watermark, what the leader knows of each follower, and the waiters of
// long polls and acks=all produces. Every other package reaches it only
// through the methods of Partition.
//
// # Replication, the partition's side
//
// (broker/replica is the follower's loop and the ISR owner.)
//
//   - The metadata state assigns each partition its replicas, leader,
//     leader epoch and ISR; the broker's partition manager hands every
//     change to ApplyAssignment, which reports whether a new leadership
//     term began.
//   - The leader appends produced batches (Append) stamped with its leader
//     epoch, records each follower's log end offset from the follower's
//     fetches (FollowerFetched), and advances the high watermark to the
//     smallest log end offset in the maximal ISR: the applied ISR plus the
//     members of ISR changes it proposed whose outcome it has not applied
//     yet (as Kafka's AlterPartition flow does), so a replica the
//     controller puts in the ISR holds everything below the high
//     watermark. The high watermark never goes back. A follower whose
//     broker registered again (ObserveRegistrations: a new incarnation)
//     counts only with what its new incarnation's fetches report. Consumers read below the high
//     watermark; acks=all produces wait for it (CommitStatus, WaitAll),
//     and need min.insync.replicas in the ISR. A follower that has not
//     caught up with the leader's end for replica.lag.time.max.ms leaves
//     the ISR (LaggingISR); one that catches up with the high watermark
//     joins it again (FollowerFetched): both return the ISR to propose,
//     and one proposal at a time is in flight until ISRChangeDone.
//   - Durable mode (flush.messages=1, sync.go): the leader's own log end
//     counts toward the high watermark only once fsynced, acks=1 waits for
//     the leader's fsync (Pending.LeaderOnly), and a follower fsyncs what it
//     appended before it fetches again, reporting only its fsynced end
//     (WaitSynced, ReplicaFetchOffset). fsyncs run outside appendMu, one
//     per partition at a time covering every earlier append, at most
//     SyncPool's size at once per broker.
//   - A follower fetches from its FetchPosition (fetch offset and the
//     epoch of its last batch, KIP-595's LastFetchedEpoch); the leader
//     checks it (FollowerFetchedAt, DivergingEpoch) and answers a
//     divergent log with the epoch where the logs part, and the follower
//     truncates to where they agree (TruncateFollowing); it appends the
//     leader's batches as they are (AppendReplicated: same offsets,
//     epochs and CRCs) and takes the leader's high watermark. A response
//     to a fetch issued under an earlier leader epoch is discarded
//     (ErrStaleLeaderEpoch); a follower without epochs truncates to its
//     high watermark. A follower
//     behind the leader's log start restarts its log there (RestartAt).
//
// # Locking contract
//
// appendMu serializes everything that decides: the leadership check,
// producer-sequence check, transaction-verification check, append and
// producer-state update of Append; transaction markers (AppendMarker:
// check, append, producer state, aborted-transaction index) and
// verifications (StartTxnVerification); the
// assignment and follower progress (ApplyAssignment, FollowerFetched,
// LaggingISR); replicated appends, truncation and restarts; the epoch
// cache and producer snapshots. A marker and an Append of the same
// producer therefore never interleave: a verification started before a
// marker is cleared by it, whichever the produce path's append comes
// after. So a demotion (ApplyAssignment) never
// interleaves with an append: an append either completes as the leader's,
// or is refused with NOT_LEADER_OR_FOLLOWER. Readers do not take it: the
// log end, high watermark, leadership and leader epoch are atomics, and
// Read goes to the segment files up to a published offset. waitersMu
// guards only the waiter set; it may be taken with appendMu held, never
// the other way round. checkpointMu serializes the high-watermark
// checkpoint's writes; it may be taken with appendMu held, never the other
// way round. retentionMu
// serializes config changes with retention-limit updates; cleanMu the log
// cleaner's bookkeeping. Lock order: retentionMu, then the segment log's
// own locks; appendMu, then the segment log's; never appendMu inside
// waitersMu.
//
// # Files in the partition directory
//
// Besides the segment files and partition.metadata (broker/segment):
//
//	leader-epoch-checkpoint   the leader-epoch cache in Kafka's text format:
//	                          "0" (version), then the entry count, then one
//	                          "<epoch> <start offset>" line per entry, epochs
//	                          and offsets increasing. Written atomically and
//	                          durably on every change (a replicated batch's
//	                          epoch before the batch is appended, so that a
//	                          crash leaves entries past the log end, never
//	                          batches without theirs); missing or unreadable,
//	                          it is rebuilt from the batch headers, and cut
//	                          to the log end at open.
//	replication-offset-checkpoint
//	                          the high watermark, in the text format of
//	                          Kafka's per-data-dir file with one entry (see
//	                          highWatermarkCheckpoint); Open starts the high
//	                          watermark there, within the recovered log.
//	<offset, 20 digits>.snapshot
//	                          producer state of every producer for the log
//	                          below that offset, open transactions included
//	                          (broker/producer's snapshot format: magic,
//	                          version, CRC-32C). Recovery loads the newest
//	                          one at or below the log end and replays the
//	                          batch headers (and transaction markers) after
//	                          it; one above the recovered log end is deleted.
//	<base offset>.txnindex    the segment's aborted transactions (Kafka's
//	                          format, broker/segment's txnindex.go): an entry
//	                          per ABORT marker, written by AppendMarker and
//	                          AppendReplicated; recovery drops the entries
//	                          above the snapshot it starts from and writes
//	                          them again while replaying.
//
// # Transactions (txn.go)
//
// A transactional batch that would open a transaction (none open for its
// producer here) is accepted only after StartTxnVerification for its
// producer and before any marker for it (else INVALID_TXN_STATE); a
// non-transactional batch of a producer with an open transaction is
// INVALID_TXN_STATE. LastStableOffset is min(high watermark, first offset
// of the earliest open transaction). Followers build the same state from
// the replicated batches, so a new leader has the open transactions and
// the aborted index.
package partition
