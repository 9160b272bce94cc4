// Package producer keeps the idempotent-producer state of one partition, as
// Kafka 3.x does: for every producer id, its current epoch, the metadata of
// its last five appended batches and the timestamp of its last batch. With
// it the partition leader refuses batches from a fenced (older) epoch,
// refuses sequence gaps, and answers a retried batch with the offsets it
// already has instead of appending it twice.
//
// # Concurrency
//
// A State is not safe for concurrent use. The partition's append lock
// guards it: Check, the append itself and Update must happen under that one
// lock, or two retries of one batch could both pass Check.
//
// # Rules (Check)
//
// Batches without a producer id (ProducerID < 0) are not checked. For the
// others, in this order:
//
//   - Unknown producer: accepted with any sequence. Brokers before Kafka 2.5
//     answered UNKNOWN_PRODUCER_ID (59) when they held no state for a
//     producer and its first sequence was not 0 — typically because
//     retention had deleted every batch the producer wrote, and the state
//     with them, while the producer lived on. Clients then had to reset, and
//     could lose ordering. KIP-360 (Kafka 2.5) made the broker accept the
//     sequence instead, since nothing is left to compare it with. Clients
//     still understand the code, for older brokers (and the transaction
//     coordinator still uses it); this package never returns it.
//   - Epoch older than the producer's current epoch: ErrInvalidProducerEpoch
//     (INVALID_PRODUCER_EPOCH, 47). A newer producer instance has fenced this
//     one.
//   - Same epoch, same first and last sequence as one of the cached batches:
//     a duplicate (a retry after a lost response). Check returns the
//     original batch's metadata and no error; the caller answers with the
//     original offsets and appends nothing. Kafka caches five batches
//     because a client allows at most five in-flight requests per
//     connection (max.in.flight.requests.per.connection <= 5 with
//     idempotence), so any retry it can send is among them.
//   - Newer epoch: the first sequence must be 0 (a producer that bumped its
//     epoch restarts its sequences), else ErrOutOfOrderSequence
//     (OUT_OF_ORDER_SEQUENCE_NUMBER, 45).
//   - Same epoch: the first sequence must follow the last one:
//     lastSeq+1, or 0 after math.MaxInt32 (sequences wrap). Anything else —
//     a gap, or a duplicate older than the five cached batches — is
//     ErrOutOfOrderSequence. A producer at an epoch a transaction marker
//     started (no batch cached) must start at sequence 0.
//
// # Transactions
//
// A transactional batch from a producer without an open transaction here
// opens one at its first offset (Update); a marker (CompleteTxn, after
// CheckMarker: not from an older producer epoch, INVALID_PRODUCER_EPOCH —
// for a Transactions V2 marker not at the open transaction's epoch either,
// KIP-1228 — nor an older coordinator epoch, TRANSACTION_COORDINATOR_FENCED) closes
// it and reports the transaction's first offset, for the aborted-
// transaction index. While one is open, a non-transactional batch from the
// producer is ErrInvalidTxnState (INVALID_TXN_STATE). FirstUnstableOffset
// (the earliest open transaction's first offset) bounds the last stable
// offset. Producers with an open transaction are never expired.
//
// After the batch is appended, Update records it; log recovery replays
// Update over the batch headers after the last snapshot. ExpireBefore drops
// producers idle for longer than producer.id.expiration.ms.
//
// # Snapshot
//
// WriteSnapshot and ReadSnapshot persist a State, like Kafka's
// <offset>.snapshot files (the caller names the file after the log offset it
// covers and writes it to a temporary file, fsyncs and renames). Integers
// are big endian; the CRC is CRC-32C (Castagnoli) over every byte before it.
//
//	+------------+---------+----------------+-----------------------+--------+
//	| magic      | version | producer count | producers ...         | crc    |
//	| "STRATAPS" | 2 bytes | 4 bytes        | sorted by producer id | 4 bytes|
//	+------------+---------+----------------+-----------------------+--------+
//
// Producer entry, version 2 (31 bytes + 33 per batch, batches oldest
// first, at most 5):
//
//	+-------------+-------+----------------+-------------------+------------------+-------------+-------------+
//	| producer id | epoch | last timestamp | coordinator epoch | txn first offset | batch count | batches ... |
//	| int64       | int16 | int64          | int32 (-1: none)  | int64 (-1: none) | uint8       | 33 bytes    |
//	+-------------+-------+----------------+-------------------+------------------+-------------+-------------+
//
// Batch, version 2:
//
//	+-----------+----------+--------------+-------------+---------------+-------------------------+
//	| first seq | last seq | first offset | last offset | max timestamp | flags (bit 0:           |
//	| int32     | int32    | int64        | int64       | int64         | transactional) uint8    |
//	+-----------+----------+--------------+-------------+---------------+-------------------------+
//
// Version 1 (still read; written before transactions) has neither the
// coordinator epoch nor the txn first offset (18-byte entry header), nor
// the flags byte (32-byte batches): its producers have no transaction
// open.
//
// Unlike Kafka's snapshot, which keeps only each producer's last batch, all
// five cached batches are kept, so a retry is still recognised after a
// restart. A reader refuses, as ErrCorruptSnapshot (test with
// IsCorruptSnapshot): a wrong magic, an unknown version, a CRC mismatch, a
// truncated file, bytes after the CRC, more than five batches, producer ids
// out of order or negative. The caller then rebuilds the state from the log.
package producer
