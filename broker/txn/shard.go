package txn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker/coordinator"
	"github.com/strata-log/strata/broker/group"
	"github.com/strata-log/strata/broker/recordbatch"
)

// Log is the __transaction_state partition a Shard keeps its records in:
// a group coordinator shard's log contract (group.Log) without its
// transactional append, so the broker gives both coordinators one
// partition adapter.
type Log interface {
	// Append writes records as one batch and returns once every in-sync
	// replica has it (acks=all), with the batch's base offset. A failure
	// is the Kafka error the client is to see: NOT_COORDINATOR when this
	// broker no longer leads the partition, COORDINATOR_NOT_AVAILABLE
	// otherwise.
	Append(records []recordbatch.Record) (offset int64, err error)
	// Replay calls fn with each record batch from the log's start to its
	// end as it is when Replay starts, in offset order, and returns that
	// end.
	Replay(fn func(batch []byte) error) (end int64, err error)
	// AwaitCommitted returns nil once every record below end is committed
	// (below the high watermark), NOT_COORDINATOR when this broker stops
	// leading the partition first, or when stop is closed.
	AwaitCommitted(end int64, stop <-chan struct{}) error
	// Leading reports whether this broker still leads the partition.
	Leading() bool
}

// ProducerIDs allocates a cluster-unique producer id.
type ProducerIDs func(ctx context.Context) (int64, error)

// Events receives what the coordinator does, for metrics. Its methods must
// not block.
type Events interface {
	// Started: a transaction began (its first partition was added).
	Started()
	// Ended: a transaction's outcome is written (CompleteCommit or
	// CompleteAbort).
	Ended(commit bool)
	// TimedOut: the coordinator aborted a transaction older than its
	// timeout.
	TimedOut()
}

type noEvents struct{}

func (noEvents) Started()   {}
func (noEvents) Ended(bool) {}
func (noEvents) TimedOut()  {}

// ShardConfig configures a Shard. Log, ProducerIDs and Markers are
// required; the other zero values mean defaults.
type ShardConfig struct {
	// Partition is the shard's __transaction_state partition.
	Partition int32
	// CoordinatorEpoch is the partition's leader epoch in this leadership
	// term: carried in every marker, so a partition refuses markers of a
	// deposed coordinator (TRANSACTION_COORDINATOR_FENCED).
	CoordinatorEpoch int32
	Log              Log
	ProducerIDs      ProducerIDs
	Markers          MarkerWriter
	Config           Config
	Events           Events
	Logger           *slog.Logger

	// workers, when set (by the Manager), counts the shard's marker
	// goroutines so the Manager can wait for them.
	workers *sync.WaitGroup
	// pendingMarkers counts transactions whose markers are being written.
	pendingMarkers *atomic.Int64
}

// Shard is the transaction coordinator of one __transaction_state
// partition: the state of each of its transactional ids, persisted to and
// replayed from the partition's log, and the marker writing of the
// transactions it completes.
//
// Every method may be called from any goroutine. Load must run once before
// the shard serves (Loaded is closed then). A Shard starts a goroutine per
// transaction whose markers it writes; Close stops them (they end on their
// own, the Manager waits for them).
type Shard struct {
	partition        int32
	coordinatorEpoch int32
	log              Log
	cfg              Config
	producerIDs      ProducerIDs
	markers          MarkerWriter
	events           Events
	logger           *slog.Logger
	workers          *sync.WaitGroup
	pendingMarkers   *atomic.Int64

	life   *coordinator.Lifecycle // loaded, serving, closed (guarded by mu)
	ctx    context.Context        // canceled by Close: marker writes give up
	cancel context.CancelFunc     //

	// mu guards txns and life's closed flag. It is never held during a log
	// append or a marker write: a transaction being written is marked
	// pending instead, so transactions of one shard do not wait for each
	// other.
	mu   sync.Mutex
	txns map[string]*transaction

	// appending counts the log appends in flight (append): Close waits
	// for them. Added to under mu while the shard is open only.
	appending sync.WaitGroup
}

// NewShard makes a shard; it serves once Load has run.
func NewShard(cfg ShardConfig) (*Shard, error) {
	if cfg.Log == nil || cfg.ProducerIDs == nil || cfg.Markers == nil {
		return nil, fmt.Errorf("%w: a shard needs a Log, ProducerIDs and a MarkerWriter", ErrInvalidConfig)
	}
	if cfg.Events == nil {
		cfg.Events = noEvents{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.workers == nil {
		cfg.workers = &sync.WaitGroup{}
	}
	if cfg.pendingMarkers == nil {
		cfg.pendingMarkers = &atomic.Int64{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	sh := &Shard{
		partition:        cfg.Partition,
		coordinatorEpoch: cfg.CoordinatorEpoch,
		log:              cfg.Log,
		cfg:              cfg.Config.withDefaults(),
		producerIDs:      cfg.ProducerIDs,
		markers:          cfg.Markers,
		events:           cfg.Events,
		logger:           cfg.Logger,
		workers:          cfg.workers,
		pendingMarkers:   cfg.pendingMarkers,
		ctx:              ctx,
		cancel:           cancel,
		txns:             map[string]*transaction{},
	}
	sh.life = coordinator.NewLifecycle(&sh.mu, cfg.Log)
	return sh, nil
}

// Partition is the shard's __transaction_state partition.
func (sh *Shard) Partition() int32 { return sh.partition }

// CoordinatorEpoch is the leader epoch the shard coordinates in.
func (sh *Shard) CoordinatorEpoch() int32 { return sh.coordinatorEpoch }

// Loaded is closed once the shard has replayed its log.
func (sh *Shard) Loaded() <-chan struct{} { return sh.life.Loaded() }

// Serving reports whether the shard is loaded, open and its partition
// still led here.
func (sh *Shard) Serving() bool { return sh.life.Serving() }

// Close stops the shard: requests get NOT_COORDINATOR, marker writing
// stops (the next leader of the partition resumes it). It returns once
// the shard's log appends in flight have ended, so that a shard of this
// broker's next leadership term, loaded after Close, replays every record
// this one wrote (as Kafka's coordinator appends under the state lock a
// new term's load takes): a record landing after that replay would be
// newer in the log than the new shard's own writes, and the term after
// would take its stale state as current.
func (sh *Shard) Close() {
	sh.life.Close()
	sh.cancel()
	sh.appending.Wait()
}

// Load replays the log from its start (the latest record of each
// transactional id wins, a tombstone removes it), waits until everything
// replayed is committed (as group shards do: a record only this replica
// holds may vanish with a leadership change), then finishes what the
// previous coordinator left: markers of PrepareCommit and PrepareAbort
// transactions are written again (markers are idempotent), and Ongoing
// transactions past their timeout are aborted.
func (sh *Shard) Load() {
	defer sh.life.SetLoaded()
	start := time.Now()
	records := 0
	// mu is taken batch by batch (coordinator.ErrClosedWhileLoading).
	end, err := sh.log.Replay(func(batch []byte) error {
		sh.mu.Lock()
		defer sh.mu.Unlock()
		if sh.life.ClosedLocked() {
			return coordinator.ErrClosedWhileLoading
		}
		h, err := recordbatch.ParseHeader(batch)
		if err == nil && h.IsControl() {
			return nil // a marker of a transaction written to this partition: not ours
		}
		recs, err := recordbatch.Records(batch)
		if err != nil {
			sh.logger.Error("undecodable batch in the transaction state partition; skipped", "offset", h.BaseOffset, "err", err)
			return nil
		}
		for _, r := range recs {
			records++
			id, t, err := decodeRecord(r.Key, r.Value)
			if err != nil {
				sh.logger.Error("unreadable transaction state record; skipped", "offset", h.BaseOffset, "err", err)
				continue
			}
			if t == nil {
				delete(sh.txns, id)
				continue
			}
			sh.txns[id] = t
		}
		return nil
	})
	if errors.Is(err, coordinator.ErrClosedWhileLoading) {
		sh.logger.Info("the transaction state partition's shard closed while loading; not serving")
		return
	}
	if err != nil {
		sh.logger.Error("reading the transaction state partition failed; its transactions are incomplete", "err", err)
	}
	if err := sh.log.AwaitCommitted(end, sh.life.Done()); err != nil {
		sh.logger.Info("the transaction state partition's leadership moved before its replayed records were committed; not serving", "end", end, "err", err)
		sh.Close()
		return
	}
	sh.mu.Lock()
	var resume []*transaction
	for _, t := range sh.txns {
		switch {
		case preparing(t.state):
			resume = append(resume, t.clone())
		case t.state == kmsg.TransactionStatePrepareEpochFence:
			// Never written by Kafka nor by us; a fence in flight became a
			// PrepareAbort record. Treat as an abort to finish.
			next := t.clone()
			next.state = kmsg.TransactionStatePrepareAbort
			*t = *next
			resume = append(resume, next)
		}
	}
	n := len(sh.txns)
	sh.mu.Unlock()
	sort.Slice(resume, func(i, j int) bool { return resume[i].id < resume[j].id })
	for _, t := range resume {
		sh.startMarkers(t)
	}
	aborted := sh.AbortTimedOut(sh.cfg.Now())
	if records > 0 || len(resume) > 0 {
		sh.logger.Info("loaded transaction coordinator shard", "records", records, "transactional_ids", n,
			"completing", len(resume), "timed_out_aborted", aborted, "coordinator_epoch", sh.coordinatorEpoch,
			"took", time.Since(start).Round(time.Millisecond))
	}
}

// write appends next as its transactional id's state (acks=all) and, once
// written, installs it in t. The caller marked t pending under mu; write
// is called without mu and clears pending. A fresh t (never written) is
// removed when the write fails.
func (sh *Shard) write(t, next *transaction) error {
	err := sh.append([]recordbatch.Record{{Key: encodeKey(next.id), Value: encodeValue(next)}})
	sh.mu.Lock()
	defer sh.mu.Unlock()
	t.pending = false
	if err == nil && sh.life.ClosedLocked() {
		// Closed while the record was being written (the partition's
		// leadership moved, or a new leadership term of this broker
		// started a new shard, whose load waited for this write: Close):
		// this shard no longer coordinates. Neither install it nor answer
		// it as done (Kafka answers NOT_COORDINATOR when the coordinator
		// epoch changed during the append); the client retries with the
		// coordinator in charge.
		err = kerr.NotCoordinator
	}
	if err != nil {
		if t.fresh && sh.txns[t.id] == t {
			delete(sh.txns, t.id)
		}
		return err
	}
	*t = *next
	t.fresh = false
	return nil
}

// append writes records to the log, stamped now.
func (sh *Shard) append(records []recordbatch.Record) error {
	sh.mu.Lock()
	if sh.life.ClosedLocked() {
		sh.mu.Unlock()
		return kerr.NotCoordinator
	}
	sh.appending.Add(1)
	sh.mu.Unlock()
	defer sh.appending.Done()
	now := sh.cfg.Now().UnixMilli()
	for i := range records {
		records[i].Timestamp = now
	}
	_, err := sh.log.Append(records)
	return err
}

// asKafkaError is err as the Kafka error a client is to see.
func asKafkaError(err error) *kerr.Error {
	if err == nil {
		return nil
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke
	}
	return kerr.CoordinatorNotAvailable
}

// InitProducerID is a transactional InitProducerId (Kafka's
// TransactionCoordinator.handleInitProducerId): a new transactional id
// gets a new producer id with epoch 0; a known one keeps its producer id
// with the epoch bumped, which fences every older producer instance of the
// id. A transaction the previous instance left open is aborted first (the
// caller gets CONCURRENT_TRANSACTIONS and retries). An exhausted epoch
// gets a new producer id. With the producer's current id and epoch
// (KIP-360, currentProducerID >= 0) a producer recovering from an error
// bumps its own epoch; a stale one is PRODUCER_FENCED.
func (sh *Shard) InitProducerID(ctx context.Context, transactionalID string, timeoutMillis int32, currentProducerID int64, currentEpoch int16) (int64, int16, *kerr.Error) {
	if transactionalID == "" {
		return -1, -1, kerr.InvalidRequest
	}
	if timeoutMillis <= 0 || time.Duration(timeoutMillis)*time.Millisecond > sh.cfg.MaxTimeout {
		return -1, -1, kerr.InvalidTransactionTimeout
	}
	expected := currentProducerID >= 0
	now := sh.cfg.Now().UnixMilli()
	sh.mu.Lock()
	if sh.life.ClosedLocked() {
		sh.mu.Unlock()
		return -1, -1, kerr.NotCoordinator
	}
	t := sh.txns[transactionalID]
	if t == nil {
		sh.mu.Unlock()
		pid, err := sh.producerIDs(ctx)
		if err != nil {
			sh.logger.Error("allocating a producer id failed", "err", err)
			return -1, -1, kerr.CoordinatorNotAvailable
		}
		sh.mu.Lock()
		if sh.life.ClosedLocked() {
			sh.mu.Unlock()
			return -1, -1, kerr.NotCoordinator
		}
		if t = sh.txns[transactionalID]; t == nil {
			t = &transaction{id: transactionalID, producerID: pid, producerEpoch: noProducerEpoch,
				lastProducerID: noProducerID, lastProducerEpoch: noProducerEpoch, nextProducerID: noProducerID, timeoutMillis: timeoutMillis,
				state: kmsg.TransactionStateEmpty, partitions: map[group.TopicPartition]struct{}{}, start: -1, lastUpdate: now, fresh: true}
			sh.txns[transactionalID] = t
		}
	}
	if t.pending {
		sh.mu.Unlock()
		return -1, -1, kerr.ConcurrentTransactions
	}
	if expected && !(t.producerEpoch == noProducerEpoch || currentProducerID == t.producerID ||
		(currentProducerID == t.lastProducerID && epochExhausted(currentEpoch))) {
		sh.mu.Unlock()
		return -1, -1, kerr.ProducerFenced
	}
	switch {
	case t.state == kmsg.TransactionStateOngoing && expected && currentEpoch != t.producerEpoch:
		// A stale instance (KIP-360 with an old epoch) is fenced; it does
		// not get to abort the current instance's transaction.
		sh.mu.Unlock()
		return -1, -1, kerr.ProducerFenced
	case t.state == kmsg.TransactionStateOngoing:
		// Abort the open transaction with a bumped epoch (Kafka's
		// PrepareEpochFence): its producer is fenced, its partitions get
		// abort markers. The caller retries once that is done, and then
		// bumps the epoch again.
		next := t.clone()
		next.producerEpoch = fencedEpoch(t)
		next.lastProducerEpoch = epochFenced
		next.state = kmsg.TransactionStatePrepareAbort
		next.lastUpdate = now
		t.pending = true
		sh.mu.Unlock()
		if err := sh.write(t, next); err != nil {
			return -1, -1, asKafkaError(err)
		}
		sh.logger.Info("aborting the open transaction of a transactional id being initialized again", "transactional_id", transactionalID,
			"producer_id", next.producerID, "producer_epoch", next.producerEpoch)
		sh.startMarkers(next)
		return -1, -1, kerr.ConcurrentTransactions
	case !completed(t.state):
		sh.mu.Unlock()
		return -1, -1, kerr.ConcurrentTransactions
	}
	next := t.clone()
	next.timeoutMillis = timeoutMillis
	next.state = kmsg.TransactionStateEmpty
	next.partitions = map[group.TopicPartition]struct{}{}
	next.start = -1
	next.lastUpdate = now
	if epochExhausted(t.producerEpoch) && (!expected || currentEpoch == t.producerEpoch) {
		t.pending = true
		sh.mu.Unlock()
		pid, err := sh.producerIDs(ctx)
		if err != nil {
			sh.mu.Lock()
			t.pending = false
			sh.mu.Unlock()
			sh.logger.Error("allocating a producer id failed", "err", err)
			return -1, -1, kerr.CoordinatorNotAvailable
		}
		next.lastProducerID = t.producerID
		next.lastProducerEpoch = noProducerEpoch
		if expected {
			next.lastProducerEpoch = t.producerEpoch
		}
		next.producerID, next.producerEpoch = pid, 0
	} else {
		switch {
		case !expected:
			next.producerEpoch, next.lastProducerEpoch = t.producerEpoch+1, epochFenced // older instances
		case t.producerEpoch == noProducerEpoch || currentEpoch == t.producerEpoch:
			next.producerEpoch, next.lastProducerEpoch = t.producerEpoch+1, t.producerEpoch
		case currentEpoch == t.lastProducerEpoch:
			// A retry of an InitProducerId that was answered: the same
			// epoch again.
		default:
			sh.mu.Unlock()
			return -1, -1, kerr.ProducerFenced
		}
		t.pending = true
		sh.mu.Unlock()
	}
	if err := sh.write(t, next); err != nil {
		return -1, -1, asKafkaError(err)
	}
	return next.producerID, next.producerEpoch, nil
}

// checkProducerLocked checks a request's producer id and epoch against t
// (nil: unknown transactional id). A V2 producer that already got the next
// producer id of an exhausted epoch (EndTxn's answer) waits while its last
// transaction's markers are written.
func checkProducerLocked(t *transaction, producerID int64, epoch int16) *kerr.Error {
	switch {
	case t != nil && t.nextProducerID >= 0 && producerID == t.nextProducerID && epoch == 0:
		return kerr.ConcurrentTransactions
	case t == nil || t.producerID != producerID:
		return kerr.InvalidProducerIDMapping
	case t.producerEpoch != epoch:
		return kerr.ProducerFenced
	}
	return nil
}

// AddPartitions adds partitions to the producer's transaction, starting
// one if none is open (AddPartitionsToTxn, and AddOffsetsToTxn with the
// group's __consumer_offsets partition; in V2, a partition leader adding
// the partition of a Produce v12, or a group coordinator that of a
// TxnOffsetCommit v5). The transaction's timeout runs from its first
// partition. v is the protocol of the request: a V2 one makes the
// transaction V2.
func (sh *Shard) AddPartitions(transactionalID string, producerID int64, epoch int16, partitions []group.TopicPartition, v Version) *kerr.Error {
	if transactionalID == "" {
		return kerr.InvalidRequest
	}
	now := sh.cfg.Now().UnixMilli()
	sh.mu.Lock()
	if sh.life.ClosedLocked() {
		sh.mu.Unlock()
		return kerr.NotCoordinator
	}
	t := sh.txns[transactionalID]
	if err := checkProducerLocked(t, producerID, epoch); err != nil {
		sh.mu.Unlock()
		return err
	}
	switch {
	case t.pending, preparing(t.state):
		sh.mu.Unlock()
		return kerr.ConcurrentTransactions
	case t.state == kmsg.TransactionStateOngoing:
		added := v <= t.version
		for _, tp := range partitions {
			if _, ok := t.partitions[tp]; !ok {
				added = false
				break
			}
		}
		if added {
			sh.mu.Unlock()
			return nil
		}
	case !completed(t.state):
		sh.mu.Unlock()
		return kerr.InvalidTxnState
	}
	starting := t.state != kmsg.TransactionStateOngoing
	next := t.clone()
	for _, tp := range partitions {
		next.partitions[tp] = struct{}{}
	}
	if starting {
		next.start = now
		next.version = v
	}
	next.version = max(next.version, v)
	next.state = kmsg.TransactionStateOngoing
	next.lastUpdate = now
	t.pending = true
	sh.mu.Unlock()
	if err := sh.write(t, next); err != nil {
		return asKafkaError(err)
	}
	if starting {
		sh.events.Started()
	}
	return nil
}

// VerifyPartitions answers a partition leader verifying a producer's first
// transactional batch (AddPartitionsToTxn v4+ with VerifyOnly, KIP-890
// part 1): nil for each partition in the producer's open transaction,
// INVALID_TXN_STATE for one that is not. An error for the whole
// transaction (unknown id or producer, fenced epoch, markers in flight) is
// returned alone.
func (sh *Shard) VerifyPartitions(transactionalID string, producerID int64, epoch int16, partitions []group.TopicPartition) (map[group.TopicPartition]*kerr.Error, *kerr.Error) {
	if transactionalID == "" {
		return nil, kerr.InvalidRequest
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.life.ClosedLocked() {
		return nil, kerr.NotCoordinator
	}
	t := sh.txns[transactionalID]
	if err := checkProducerLocked(t, producerID, epoch); err != nil {
		return nil, err
	}
	if preparing(t.state) {
		return nil, kerr.ConcurrentTransactions
	}
	out := make(map[group.TopicPartition]*kerr.Error, len(partitions))
	for _, tp := range partitions {
		if _, ok := t.partitions[tp]; ok && t.state == kmsg.TransactionStateOngoing {
			out[tp] = nil
		} else {
			out[tp] = kerr.InvalidTxnState
		}
	}
	return out, nil
}

// EndTxn ends the producer's open transaction: the decision
// (PrepareCommit or PrepareAbort) is written with acks=all before it
// returns, then markers go to every partition of the transaction in the
// background, and the transaction completes once they are all written. A
// retry of an EndTxn already done succeeds; one whose markers are still
// being written gets CONCURRENT_TRANSACTIONS.
//
// In V2 (EndTxn v5, KIP-890 part 2) the decision bumps the producer epoch
// and the markers carry the bumped epoch, so a partition refuses the old
// epoch's late batches; at an exhausted epoch the producer gets a new
// producer id (epoch 0) instead, which the Complete record installs. An
// abort with no transaction open is allowed (it bumps the epoch; a V2
// producer aborts when none of its produces succeeded, as a partition may
// have been added anyway). A retry (the epoch before the bump) is
// answered like the first call. It returns the producer id and epoch the
// producer uses next: in V1 the ones it sent.
func (sh *Shard) EndTxn(transactionalID string, producerID int64, epoch int16, commit bool, v Version) (int64, int16, *kerr.Error) {
	if transactionalID == "" {
		return -1, -1, kerr.InvalidRequest
	}
	now := sh.cfg.Now().UnixMilli()
	sh.mu.Lock()
	if sh.life.ClosedLocked() {
		sh.mu.Unlock()
		return -1, -1, kerr.NotCoordinator
	}
	t := sh.txns[transactionalID]
	if v >= V2 && t != nil && t.endTxnRetry(producerID, epoch) {
		// A retry of the EndTxn that bumped the epoch.
		var answer *kerr.Error
		switch {
		case t.state == kmsg.TransactionStateOngoing || t.state == kmsg.TransactionStateEmpty:
			// No EndTxn leaves these: the bump was another instance's
			// InitProducerId (whose transaction may be open now), which
			// a loaded coordinator cannot tell from lastProducerEpoch.
			// Kafka takes Ongoing and Empty at the current epoch only.
			answer = kerr.ProducerFenced
		case t.pending:
			answer = kerr.ConcurrentTransactions
		case t.state == kmsg.TransactionStateCompleteCommit:
			answer = outcome(commit, nil)
		case t.state == kmsg.TransactionStateCompleteAbort:
			answer = outcome(!commit, nil)
		case t.state == kmsg.TransactionStatePrepareCommit:
			answer = outcome(commit, kerr.ConcurrentTransactions)
		case t.state == kmsg.TransactionStatePrepareAbort:
			answer = outcome(!commit, kerr.ConcurrentTransactions)
		default:
			answer = kerr.InvalidTxnState
		}
		pid, pepoch := t.producerID, t.producerEpoch
		if t.nextProducerID >= 0 {
			pid, pepoch = t.nextProducerID, 0
		}
		sh.mu.Unlock()
		if answer != nil {
			return -1, -1, answer
		}
		return pid, pepoch, nil
	}
	if err := checkProducerLocked(t, producerID, epoch); err != nil {
		sh.mu.Unlock()
		return -1, -1, err
	}
	if t.pending {
		sh.mu.Unlock()
		return -1, -1, kerr.ConcurrentTransactions
	}
	var answer *kerr.Error
	switch t.state {
	case kmsg.TransactionStateOngoing:
		return sh.prepareEndLocked(t, commit, v, now)
	case kmsg.TransactionStateEmpty, kmsg.TransactionStateCompleteCommit, kmsg.TransactionStateCompleteAbort:
		if v >= V2 {
			if commit {
				answer = kerr.InvalidTxnState
				break
			}
			return sh.prepareEndLocked(t, commit, v, now)
		}
		switch t.state {
		case kmsg.TransactionStateCompleteCommit:
			answer = outcome(commit, nil)
		case kmsg.TransactionStateCompleteAbort:
			answer = outcome(!commit, nil)
		default:
			answer = kerr.InvalidTxnState
		}
	case kmsg.TransactionStatePrepareCommit:
		answer = outcome(commit, kerr.ConcurrentTransactions)
	case kmsg.TransactionStatePrepareAbort:
		answer = outcome(!commit, kerr.ConcurrentTransactions)
	default:
		answer = kerr.InvalidTxnState
	}
	sh.mu.Unlock()
	if answer != nil {
		return -1, -1, answer
	}
	return producerID, epoch, nil
}

// prepareEndLocked writes t's PrepareCommit or PrepareAbort (in V2 with the
// epoch bumped, and a next producer id when the epoch is exhausted) and
// starts its markers. Called with mu held and t not pending; returns with
// mu released.
func (sh *Shard) prepareEndLocked(t *transaction, commit bool, v Version, now int64) (int64, int16, *kerr.Error) {
	next := t.clone()
	next.state = kmsg.TransactionStatePrepareAbort
	if commit {
		next.state = kmsg.TransactionStatePrepareCommit
	}
	next.lastUpdate = now
	t.pending = true
	// The EndTxn's protocol decides, as in Kafka (a client may speak
	// Produce v12 yet end with EndTxn v4): the markers say which.
	next.version = v
	if v >= V2 {
		next.lastProducerEpoch = t.producerEpoch
		next.producerEpoch = t.producerEpoch + 1
		if next.start < 0 || len(next.partitions) == 0 {
			next.start = now // an abort with no partition: Kafka's start time is the abort's
		}
		if epochExhausted(t.producerEpoch) {
			sh.mu.Unlock()
			pid, err := sh.producerIDs(sh.ctx)
			if err != nil {
				sh.mu.Lock()
				t.pending = false
				sh.mu.Unlock()
				sh.logger.Error("allocating a producer id failed", "err", err)
				return -1, -1, kerr.CoordinatorNotAvailable
			}
			next.nextProducerID = pid
			sh.mu.Lock()
		}
	}
	sh.mu.Unlock()
	if err := sh.write(t, next); err != nil {
		return -1, -1, asKafkaError(err)
	}
	sh.startMarkers(next)
	if next.nextProducerID >= 0 {
		return next.nextProducerID, 0, nil
	}
	return next.producerID, next.producerEpoch, nil
}

// outcome is ifSame when a retried EndTxn asks for the outcome already
// decided, else INVALID_TXN_STATE.
func outcome(same bool, ifSame *kerr.Error) *kerr.Error {
	if same {
		return ifSame
	}
	return kerr.InvalidTxnState
}

// AbortTimedOut aborts, with a bumped producer epoch (fencing the producer,
// whose next request gets PRODUCER_FENCED), every Ongoing transaction
// older than its timeout, and returns how many it aborted.
func (sh *Shard) AbortTimedOut(now time.Time) int {
	sh.mu.Lock()
	if sh.life.ClosedLocked() {
		sh.mu.Unlock()
		return 0
	}
	var expired []*transaction
	for _, t := range sh.txns {
		if !t.pending && t.timedOut(now) && t.producerEpoch < maxEpoch {
			t.pending = true
			expired = append(expired, t)
		}
	}
	sh.mu.Unlock()
	sort.Slice(expired, func(i, j int) bool { return expired[i].id < expired[j].id })
	aborted := 0
	for _, t := range expired {
		sh.mu.Lock()
		next := t.clone()
		sh.mu.Unlock()
		next.producerEpoch = fencedEpoch(next)
		next.lastProducerEpoch = epochFenced
		next.state = kmsg.TransactionStatePrepareAbort
		next.lastUpdate = now.UnixMilli()
		if err := sh.write(t, next); err != nil {
			sh.logger.Warn("aborting a timed-out transaction failed; retried next pass", "transactional_id", t.id, "err", err)
			continue
		}
		sh.logger.Info("aborted a transaction past its timeout", "transactional_id", next.id, "producer_id", next.producerID,
			"producer_epoch", next.producerEpoch, "timeout_ms", next.timeoutMillis)
		sh.events.TimedOut()
		sh.startMarkers(next)
		aborted++
	}
	return aborted
}

// maxEpoch is the largest producer epoch.
const maxEpoch = 1<<15 - 1

// fencedEpoch is the epoch a coordinator fence of t's open transaction (its
// timeout, another instance's InitProducerId) writes: one above, and for a
// Transactions V2 transaction two above, as Kafka's TV2 fence bumps once
// for PrepareEpochFence and again as every V2 transaction end does. A
// coordinator that loaded the state takes a V2 EndTxn at the epoch just
// below the current one for a retry of the EndTxn that bumped it
// (lastProducerEpoch, which says "fenced", is not in the record): the
// fenced producer's epoch must not be that one. Near the largest epoch a
// single bump (the next InitProducerId gives a new producer id).
func fencedEpoch(t *transaction) int16 {
	if t.version >= V2 && t.producerEpoch < maxEpoch-1 {
		return t.producerEpoch + 2
	}
	return t.producerEpoch + 1
}

// ExpireTransactionalIDs removes every transactional id with no open
// transaction that has not been used for Config.IDExpiration
// (transactional.id.expiration.ms): a tombstone is written for each, and a
// producer using it later starts afresh with a new producer id. It returns
// how many it removed.
func (sh *Shard) ExpireTransactionalIDs(now time.Time) (int, error) {
	limit := now.Add(-sh.cfg.IDExpiration).UnixMilli()
	sh.mu.Lock()
	if sh.life.ClosedLocked() {
		sh.mu.Unlock()
		return 0, nil
	}
	var expired []*transaction
	for _, t := range sh.txns {
		if !t.pending && completed(t.state) && t.lastUpdate <= limit {
			t.pending = true
			expired = append(expired, t)
		}
	}
	sh.mu.Unlock()
	if len(expired) == 0 {
		return 0, nil
	}
	sort.Slice(expired, func(i, j int) bool { return expired[i].id < expired[j].id })
	records := make([]recordbatch.Record, 0, len(expired))
	for _, t := range expired {
		records = append(records, recordbatch.Record{Key: encodeKey(t.id)})
	}
	err := sh.append(records)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for _, t := range expired {
		t.pending = false
		if err == nil && sh.txns[t.id] == t {
			delete(sh.txns, t.id)
		}
	}
	if err != nil {
		return 0, err
	}
	return len(expired), nil
}

// Description is a transactional id's state (DescribeTransactions).
type Description struct {
	TransactionalID string
	State           kmsg.TransactionState
	ProducerID      int64
	ProducerEpoch   int16
	TimeoutMillis   int32
	// StartTimestamp is when the open transaction began, Unix ms; -1: none.
	StartTimestamp int64
	Partitions     []group.TopicPartition
}

// Describe returns a transactional id's state, or
// TRANSACTIONAL_ID_NOT_FOUND.
func (sh *Shard) Describe(transactionalID string) (Description, *kerr.Error) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.life.ClosedLocked() {
		return Description{}, kerr.NotCoordinator
	}
	t := sh.txns[transactionalID]
	if t == nil || t.fresh {
		return Description{}, kerr.TransactionalIDNotFound
	}
	return describeLocked(t), nil
}

func describeLocked(t *transaction) Description {
	return Description{TransactionalID: t.id, State: t.state, ProducerID: t.producerID, ProducerEpoch: t.producerEpoch,
		TimeoutMillis: t.timeoutMillis, StartTimestamp: t.start, Partitions: t.sortedPartitions()}
}

// ListFilter selects transactions (ListTransactions); zero values select
// everything.
type ListFilter struct {
	States      []kmsg.TransactionState
	ProducerIDs []int64
	// MinDuration: only transactions running for longer (v1
	// DurationFilter); 0 or less: no filter.
	MinDuration time.Duration
	// Pattern: only transactional ids it matches (v2); nil: all.
	Pattern *regexp.Regexp
}

// List returns the transactions the filter selects, by transactional id.
func (sh *Shard) List(now time.Time, f ListFilter) []Description {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	var out []Description
	for _, t := range sh.txns {
		if t.fresh || t.state == kmsg.TransactionStateDead {
			continue
		}
		if len(f.States) > 0 && !contains(f.States, t.state) {
			continue
		}
		if len(f.ProducerIDs) > 0 && !contains(f.ProducerIDs, t.producerID) {
			continue
		}
		if f.MinDuration > 0 && now.UnixMilli()-t.start <= f.MinDuration.Milliseconds() {
			continue
		}
		if f.Pattern != nil && !f.Pattern.MatchString(t.id) {
			continue
		}
		out = append(out, describeLocked(t))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].TransactionalID < out[j].TransactionalID })
	return out
}

func contains[T comparable](xs []T, x T) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}
