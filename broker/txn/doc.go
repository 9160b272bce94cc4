// Package txn is the transaction coordinator (Kafka's
// TransactionCoordinator, Transactions V1 with KIP-890 part 1, and
// Transactions V2, KIP-890 part 2): the state
// of each transactional id, persisted to the internal __transaction_state
// topic in Kafka's own record schemas, and the writing of transaction
// markers to the partitions of a transaction once its outcome is decided.
// It knows nothing of the wire: the broker decodes requests (InitProducerId
// with a transactional id, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn,
// DescribeTransactions, ListTransactions) into calls on a Shard, and
// plugs in a MarkerWriter that sends WriteTxnMarkers to partition leaders.
//
// It is built like the group coordinator (broker/group): a Shard per
// __transaction_state partition (coordinator.Partition maps a
// transactional id to its partition, as Kafka does), persisting to the partition through
// the group shards' Log contract less its transactional append (acks=all
// appends, replay, AwaitCommitted before serving; the broker's one adapter
// serves both), and a Manager holding the shards of the partitions this broker
// leads (Lead, Resign, ShardFor, CoordinatorOf; both managers hold their
// shards in a broker/coordinator Set, each shard's life is a
// coordinator.Lifecycle). The coordinator epoch of a shard is its
// partition's leader epoch; it goes into every marker.
//
// # States
//
//	        InitProducerId (epoch bumped)
//	   +-------+   AddPartitions   +---------+  EndTxn(commit)  +---------------+  markers   +----------------+
//	-->| Empty | ----------------> | Ongoing | ---------------> | PrepareCommit | ---------> | CompleteCommit |
//	   +-------+                   +---------+                  +---------------+  written   +----------------+
//	       ^                        |    |  EndTxn(abort)       +---------------+            +----------------+
//	       |                        |    +--------------------> | PrepareAbort  | ---------> | CompleteAbort  |
//	       |   timeout, or          +-------------------------> +---------------+            +----------------+
//	       |   InitProducerId while open:                                                        |  |
//	       |   abort with the epoch bumped (Kafka's PrepareEpochFence)                           |  |
//	       +---------------------- InitProducerId / AddPartitions (next transaction) -----------+--+
//
// Complete* and Empty are "no open transaction": AddPartitions starts the
// next one, InitProducerId bumps the epoch. Each transition is written to
// the log (acks=all) before it is applied or answered; while one is in
// flight the transactional id is pending, and requests that would change
// it get CONCURRENT_TRANSACTIONS, as they do while markers are being
// written (Prepare*). EndTxn is answered once Prepare* is written; the
// markers follow in the background (a goroutine per transaction, retrying
// each partition until its leader has the marker or the partition is
// gone), then Complete* is written. A transactional id unused for
// Config.IDExpiration with no open transaction is removed with a
// tombstone. Dead and PrepareEpochFence are never written (Kafka writes
// neither); a fence is written as PrepareAbort with the bumped epoch.
//
// Producer epochs: InitProducerId without the producer's current id and
// epoch bumps the epoch (fencing older instances of the transactional id);
// with them (KIP-360) it bumps only if they are current, answers a retry
// with the epoch it already gave, and fences anything else
// (PRODUCER_FENCED). An epoch at 32766 is exhausted: the producer gets a
// new producer id with epoch 0. A transaction aborted by the coordinator
// (timeout, fence) bumps the epoch, so its producer is fenced.
//
// # Transactions V2 (KIP-890 part 2)
//
// A request's version says which protocol it speaks (Version: V1 or V2;
// the broker advertises the transaction.version feature clients choose
// by). In V2 partitions are added by the partition leaders and group
// coordinators on the producer's behalf (AddPartitions with V2, for
// Produce v12 and TxnOffsetCommit v5), which makes the transaction V2
// (ClientTransactionVersion 2 in its records). EndTxn with V2 writes the
// Prepare record with the producer epoch bumped, answers the producer id
// and epoch to use next, and the markers carry the bumped epoch, so a
// partition fences the old epoch's late batches; an abort with no
// transaction open is allowed (an epoch bump, no markers). At an exhausted
// epoch the Prepare record has epoch 32767 (for the markers) and
// NextProducerId; the Complete record makes it the producer id, epoch 0
// (PreviousProducerId the old one), and a request with it gets
// CONCURRENT_TRANSACTIONS until then. A retried EndTxn (the epoch before
// the bump, or the previous producer id after a rotation) gets the first
// answer, also from a coordinator that loaded the state (which does not
// know the epoch before the bump: the one just below is taken), but never
// for an epoch the coordinator fenced (a timeout, another instance's
// InitProducerId) while it knows.
//
// # Failover
//
// A new leader of a __transaction_state partition replays it, waits until
// everything replayed is committed (the high watermark), then resumes: the
// markers of every Prepare* transaction are written again (a marker is
// idempotent at the partition), and Ongoing transactions past their
// timeout are aborted. Until loaded, requests get
// COORDINATOR_LOAD_IN_PROGRESS; once the leadership moves, NOT_COORDINATOR.
//
// # Record format (part of the format: Kafka's TransactionLogKey and
// TransactionLogValue; testdata/ holds golden encodings)
//
// Key, version 0 (the only one):
//
//	+---------------+------------------------------------------+
//	| version int16 | transactional_id: int16 length + UTF-8   |
//	|   = 0         |                                          |
//	+---------------+------------------------------------------+
//
// Value, version 0 (read; written before Transactions V2; not flexible),
// big-endian:
//
//	version               int16  = 0
//	producer_id           int64
//	producer_epoch        int16
//	transaction_timeout   int32  milliseconds
//	transaction_status    int8   0 Empty, 1 Ongoing, 2 PrepareCommit,
//	                             3 PrepareAbort, 4 CompleteCommit,
//	                             5 CompleteAbort, 6 Dead, 7 PrepareEpochFence
//	transaction_partitions       int32 count, -1 = null (written for Empty);
//	                             each: topic (int16 length + UTF-8),
//	                             partitions (int32 count + int32 each)
//	last_update_timestamp int64  Unix milliseconds
//	start_timestamp       int64  Unix milliseconds, -1 = none
//
// Value, version 1 (written, as Kafka 4 writes it from transaction.version
// 1 on): the same fields in flexible encoding (compact strings and arrays,
// a tagged-field section per partition entry and at the end) with the
// tagged fields PreviousProducerId (tag 0, int64: the producer id before
// the last rotation), NextProducerId (1, int64: a V2 transaction ending at
// an exhausted epoch), ClientTransactionVersion (2, int16: 2 for a V2
// transaction) and NextProducerEpoch (3, KIP-939: never written); a tag is
// written only when it is not its default (-1, -1, 0, -1). A null value is
// a tombstone: the transactional id expired.
//
// # Concurrency
//
// Shards and the Manager are safe for concurrent use. A shard's mutex
// guards its transactional ids and is never held across a log append or
// a marker write; a transaction being written is marked pending instead.
// A write that returns after the shard closed is neither installed nor
// answered as done (NOT_COORDINATOR): the next shard may have replayed the
// log before it landed.
// The Manager owns every goroutine its shards start (loading, markers):
// Close stops and waits for them.
package txn
