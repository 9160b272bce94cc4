package cli

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kadm"
)

// The transactions subcommands are Kafka's kafka-transactions.sh on the
// Kafka admin APIs: ListTransactions, DescribeTransactions, and, to abort a
// hanging transaction (KIP-664), DescribeProducers + WriteTxnMarkers sent
// to the partition leader.

const transactionsUsage = `Usage: strata transactions <command> [flags]

Commands (Kafka admin APIs, against --bootstrap-server):
  list [--state S ...] [--producer-id N ...]
                          transactional ids with their producer id and state
                          (filters: Empty, Ongoing, PrepareCommit, PrepareAbort,
                          CompleteCommit, CompleteAbort, Dead, PrepareEpochFence)
  describe --transactional-id ID
                          state, producer id and epoch, timeout, start time and
                          the partitions of its transaction
  abort --topic T --partition P --start-offset O
                          abort the open transaction that starts at offset O of
                          the partition (as kafka-transactions.sh abort): its
                          producer is found with DescribeProducers, then an ABORT
                          marker is written to the partition. For a hanging
                          transaction that its coordinator no longer finishes.
  abort --topic T --partition P --producer-id N --producer-epoch E [--coordinator-epoch C]
                          the same for a producer named directly

Flags:
`

// TransactionInfo is one transaction of `strata transactions list`.
type TransactionInfo struct {
	TransactionalID string `json:"transactional_id"`
	ProducerID      int64  `json:"producer_id"`
	State           string `json:"state"`
	Coordinator     int32  `json:"coordinator"`
}

// TransactionDescription is `strata transactions describe`.
type TransactionDescription struct {
	TransactionalID string `json:"transactional_id"`
	Coordinator     int32  `json:"coordinator"`
	State           string `json:"state"`
	ProducerID      int64  `json:"producer_id"`
	ProducerEpoch   int16  `json:"producer_epoch"`
	TimeoutMs       int32  `json:"timeout_ms"`
	// StartTime is when the ongoing transaction started (RFC 3339, UTC);
	// empty when none is ongoing (Kafka answers -1).
	StartTime  string           `json:"start_time,omitempty"`
	Partitions []TopicPartition `json:"partitions"`
}

// TopicPartition names one partition.
type TopicPartition struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
}

// AbortedTransaction is what `strata transactions abort` did.
type AbortedTransaction struct {
	Topic            string `json:"topic"`
	Partition        int32  `json:"partition"`
	ProducerID       int64  `json:"producer_id"`
	ProducerEpoch    int16  `json:"producer_epoch"`
	CoordinatorEpoch int32  `json:"coordinator_epoch"`
	// StartOffset is the first offset of the aborted transaction, -1 when
	// the producer was named directly.
	StartOffset int64 `json:"start_offset"`
}

// abortFlags are the flags of `strata transactions abort`; -1 is unset.
type abortFlags struct {
	topic            string
	partition        int32
	startOffset      int64
	producerID       int64
	producerEpoch    int32
	coordinatorEpoch int32
}

// validate checks that exactly one way to name the transaction is given.
func (f abortFlags) validate() error {
	if f.topic == "" || f.partition < 0 {
		return usageErrorf("--topic and --partition are required")
	}
	byOffset := f.startOffset >= 0
	byProducer := f.producerID >= 0 || f.producerEpoch >= 0 || f.coordinatorEpoch >= 0
	switch {
	case byOffset && byProducer:
		return usageErrorf("give either --start-offset or --producer-id and --producer-epoch, not both")
	case !byOffset && !byProducer:
		return usageErrorf("give --start-offset O (the first offset of the open transaction), or --producer-id and --producer-epoch")
	case byProducer && (f.producerID < 0 || f.producerEpoch < 0):
		return usageErrorf("--producer-id and --producer-epoch go together")
	case f.producerEpoch > 32767:
		return usageErrorf("--producer-epoch %d: at most 32767", f.producerEpoch)
	}
	return nil
}

func runTransactions(args []string, stdout, stderr io.Writer) error {
	var (
		states      *[]string
		producerIDs *[]int64
		txnID       *string
		abort       abortFlags
	)
	sub, k, err := parseKafkaCommand("transactions", transactionsUsage, "list, describe, abort", args, stderr, func(fs *pflag.FlagSet) {
		states = fs.StringArray("state", nil, "only transactions in this state (list; repeatable)")
		producerIDs = fs.Int64Slice("producer-id", nil, "only this producer id (list; repeatable); the producer whose transaction to abort (abort)")
		txnID = fs.String("transactional-id", "", "the transactional id (describe)")
		fs.StringVar(&abort.topic, "topic", "", "partition's topic (abort)")
		fs.Int32Var(&abort.partition, "partition", -1, "the partition (abort)")
		fs.Int64Var(&abort.startOffset, "start-offset", -1, "first offset of the open transaction to abort (abort)")
		fs.Int32Var(&abort.producerEpoch, "producer-epoch", -1, "epoch of the producer whose transaction to abort (abort)")
		fs.Int32Var(&abort.coordinatorEpoch, "coordinator-epoch", -1, "coordinator epoch written in the marker (abort; default: the one the partition reports, else 0)")
	})
	if err != nil {
		return err
	}
	defer k.client.Close()
	ctx, cancel := k.context()
	defer cancel()
	switch sub {
	case "list":
		return listTransactions(ctx, k, stdout, *states, *producerIDs)
	case "describe":
		if *txnID == "" {
			return usageErrorf("--transactional-id is required")
		}
		return describeTransaction(ctx, k, stdout, *txnID)
	case "abort":
		abort.producerID = -1
		switch len(*producerIDs) {
		case 0:
		case 1:
			abort.producerID = (*producerIDs)[0]
		default:
			return usageErrorf("abort takes one --producer-id")
		}
		if err := abort.validate(); err != nil {
			return err
		}
		return abortTransaction(ctx, k, stdout, abort)
	}
	return usageErrorf("unknown subcommand %q (list, describe, abort)", sub)
}

func listTransactions(ctx context.Context, k kafkaCommand, stdout io.Writer, states []string, producerIDs []int64) error {
	listed, err := k.adm.ListTransactions(ctx, producerIDs, states)
	if err != nil {
		return fmt.Errorf("list transactions: %w", err)
	}
	out := []TransactionInfo{}
	for _, t := range listed.Sorted() {
		out = append(out, TransactionInfo{TransactionalID: t.TxnID, ProducerID: t.ProducerID, State: t.State, Coordinator: t.Coordinator})
	}
	return k.emit(stdout, out, func(tw *tabwriter.Writer) {
		fmt.Fprintln(tw, "TRANSACTIONAL ID\tPRODUCER ID\tSTATE\tCOORDINATOR")
		for _, t := range out {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%d\n", t.TransactionalID, t.ProducerID, t.State, t.Coordinator)
		}
	})
}

func describeTransaction(ctx context.Context, k kafkaCommand, stdout io.Writer, txnID string) error {
	described, err := k.adm.DescribeTransactions(ctx, txnID)
	if err != nil {
		return fmt.Errorf("describe transaction %s: %w", txnID, err)
	}
	t, err := described.On(txnID, nil)
	if err == nil {
		err = t.Err
	}
	if err != nil {
		return fmt.Errorf("describe transaction %s: %w", txnID, err)
	}
	d := TransactionDescription{TransactionalID: t.TxnID, Coordinator: t.Coordinator, State: t.State, ProducerID: t.ProducerID,
		ProducerEpoch: t.ProducerEpoch, TimeoutMs: t.TimeoutMillis, Partitions: []TopicPartition{}}
	if t.StartTimestamp >= 0 {
		d.StartTime = time.UnixMilli(t.StartTimestamp).UTC().Format(time.RFC3339Nano)
	}
	for _, tp := range t.Topics.Sorted() {
		for _, p := range tp.Partitions {
			d.Partitions = append(d.Partitions, TopicPartition{tp.Topic, p})
		}
	}
	sort.Slice(d.Partitions, func(i, j int) bool {
		a, b := d.Partitions[i], d.Partitions[j]
		return a.Topic < b.Topic || a.Topic == b.Topic && a.Partition < b.Partition
	})
	return k.emit(stdout, d, func(tw *tabwriter.Writer) {
		fmt.Fprintf(tw, "transactional id\t%s\n", d.TransactionalID)
		fmt.Fprintf(tw, "coordinator\t%d\n", d.Coordinator)
		fmt.Fprintf(tw, "state\t%s\n", d.State)
		fmt.Fprintf(tw, "producer id\t%d\n", d.ProducerID)
		fmt.Fprintf(tw, "producer epoch\t%d\n", d.ProducerEpoch)
		fmt.Fprintf(tw, "timeout ms\t%d\n", d.TimeoutMs)
		fmt.Fprintf(tw, "start time\t%s\n", cmp.Or(d.StartTime, "-"))
		parts := make([]string, len(d.Partitions))
		for i, p := range d.Partitions {
			parts[i] = fmt.Sprintf("%s-%d", p.Topic, p.Partition)
		}
		fmt.Fprintf(tw, "partitions\t%s\n", cmp.Or(strings.Join(parts, " "), "-"))
	})
}

// abortTransaction writes an ABORT marker for one producer's open
// transaction on one partition (KIP-664). Given a start offset, the
// producer is the one DescribeProducers reports with that
// CurrentTxnStartOffset, with its epoch and coordinator epoch, as
// kafka-transactions.sh does.
func abortTransaction(ctx context.Context, k kafkaCommand, stdout io.Writer, f abortFlags) error {
	done := AbortedTransaction{Topic: f.topic, Partition: f.partition, ProducerID: f.producerID, ProducerEpoch: int16(f.producerEpoch),
		CoordinatorEpoch: f.coordinatorEpoch, StartOffset: -1}
	if f.startOffset >= 0 {
		producer, err := openTransactionAt(ctx, k, f.topic, f.partition, f.startOffset)
		if err != nil {
			return err
		}
		done.ProducerID, done.ProducerEpoch, done.StartOffset = producer.ProducerID, producer.ProducerEpoch, producer.CurrentTxnStartOffset
		if done.CoordinatorEpoch < 0 {
			done.CoordinatorEpoch = producer.CoordinatorEpoch
		}
	}
	if done.CoordinatorEpoch < 0 {
		// Unknown to the partition (no marker from a coordinator yet):
		// Kafka's admin client sends 0 then.
		done.CoordinatorEpoch = 0
	}
	marker := kadm.TxnMarkers{ProducerID: done.ProducerID, ProducerEpoch: done.ProducerEpoch, CoordinatorEpoch: done.CoordinatorEpoch,
		Topics: kadm.TopicsSet{}}
	marker.Topics.Add(f.topic, f.partition)
	resps, err := k.adm.WriteTxnMarkers(ctx, marker)
	if err != nil {
		return fmt.Errorf("write the ABORT marker to %s-%d: %w", f.topic, f.partition, err)
	}
	written := false
	var markerErr error
	resps.EachPartition(func(p kadm.TxnMarkersPartitionResponse) {
		if p.Topic == f.topic && p.Partition == f.partition {
			written, markerErr = p.Err == nil, p.Err
		}
	})
	if markerErr != nil {
		return fmt.Errorf("write the ABORT marker for producer %d (epoch %d) to %s-%d: %w", done.ProducerID, done.ProducerEpoch, f.topic, f.partition, markerErr)
	}
	if !written {
		return fmt.Errorf("write the ABORT marker to %s-%d: the partition leader did not answer for the partition", f.topic, f.partition)
	}
	return k.emit(stdout, done, func(tw *tabwriter.Writer) {
		from := ""
		if done.StartOffset >= 0 {
			from = fmt.Sprintf(" starting at offset %d", done.StartOffset)
		}
		fmt.Fprintf(tw, "aborted the transaction of producer %d (epoch %d) on %s-%d%s\n", done.ProducerID, done.ProducerEpoch, f.topic, f.partition, from)
	})
}

// openTransactionAt finds the producer whose open transaction on the
// partition starts at offset.
func openTransactionAt(ctx context.Context, k kafkaCommand, topic string, partition int32, offset int64) (kadm.DescribedProducer, error) {
	set := kadm.TopicsSet{}
	set.Add(topic, partition)
	described, err := k.adm.DescribeProducers(ctx, set)
	if err != nil {
		return kadm.DescribedProducer{}, fmt.Errorf("describe the producers of %s-%d: %w", topic, partition, err)
	}
	p, ok := described[topic].Partitions[partition]
	if !ok {
		return kadm.DescribedProducer{}, fmt.Errorf("describe the producers of %s-%d: no answer for the partition", topic, partition)
	}
	if p.Err != nil {
		return kadm.DescribedProducer{}, fmt.Errorf("describe the producers of %s-%d: %w", topic, partition, p.Err)
	}
	var open []string
	for _, producer := range p.ActiveProducers.Sorted() {
		if producer.CurrentTxnStartOffset == offset {
			return producer, nil
		}
		if producer.CurrentTxnStartOffset >= 0 {
			open = append(open, fmt.Sprintf("producer %d from offset %d", producer.ProducerID, producer.CurrentTxnStartOffset))
		}
	}
	if len(open) == 0 {
		return kadm.DescribedProducer{}, fmt.Errorf("no open transaction on %s-%d starts at offset %d: the partition has no open transaction", topic, partition, offset)
	}
	return kadm.DescribedProducer{}, fmt.Errorf("no open transaction on %s-%d starts at offset %d; open there: %s", topic, partition, offset, strings.Join(open, ", "))
}
