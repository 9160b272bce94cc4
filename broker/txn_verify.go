package broker

import (
	"context"
	"net"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker/coordinator"
	"github.com/strata-log/strata/broker/txn"
	"github.com/strata-log/strata/metadata"
)

// The AddPartitionsToTxn versions the produce path sends: v4 is the first
// with the batched, broker-to-broker form and VerifyOnly (KIP-890 part 1),
// never downgraded (an older version would be a client's, adding the
// partitions); v5 lets the coordinator answer TRANSACTION_ABORTABLE.
const (
	addPartitionsToTxnVerifyVersion    = 4
	addPartitionsToTxnMaxBrokerVersion = 5
)

// produceAddsPartitions is the first Produce version whose transactional
// batches add their partition to the transaction (Transactions V2,
// KIP-890 part 2: Kafka's addPartition operation); older ones only verify
// it (KIP-890 part 1). Produce v11 is the first whose producer knows
// TRANSACTION_ABORTABLE (Kafka's genericErrorSupported).
const (
	produceAddsPartitions       = 12
	produceTransactionAbortable = 11
)

// txnVerifier asks transaction coordinators, over the inter-broker
// listener, whether partitions are in a producer's ongoing transaction
// before the produce path lets a transactional batch open a transaction
// on them (KIP-890 part 1), through the broker's clients to its peers
// (brokerClients, shared with the coordinators' markers).
type txnVerifier struct {
	peers    *brokerClients
	listener string // the inter-broker listener's name
}

func newTxnVerifier(peers *brokerClients, listener string) *txnVerifier {
	return &txnVerifier{peers: peers, listener: listener}
}

// coordinatorAddress is the inter-broker address of transactionalID's
// coordinator in state, or a Kafka error code (COORDINATOR_NOT_AVAILABLE:
// no __transaction_state topic yet, or its partition has no live leader).
func (v *txnVerifier) coordinatorAddress(state *metadata.State, transactionalID string) (string, int16) {
	// A transactional id's coordinator is the leader of its partition
	// (group.Partition of the id, as Kafka's abs(hashCode) % partitions).
	topic, ok := state.Topic(txn.TopicName)
	if !ok || len(topic.Partitions) == 0 {
		return "", kerr.CoordinatorNotAvailable.Code
	}
	leader := topic.Partitions[coordinator.Partition(transactionalID, int32(len(topic.Partitions)))].Leader
	b, ok := state.Broker(leader)
	if leader < 0 || !ok || b.Fenced {
		return "", kerr.CoordinatorNotAvailable.Code
	}
	endpoint, ok := b.Endpoint(v.listener)
	if !ok {
		return "", kerr.CoordinatorNotAvailable.Code
	}
	return net.JoinHostPort(endpoint.Host, strconv.Itoa(int(endpoint.Port))), 0
}

// verify asks transactionalID's coordinator whether partitions (by topic)
// are in the ongoing transaction of producerID at producerEpoch (or, for
// a Produce v12+, to add them: Transactions V2), and returns each
// partition's Kafka error code as a Produce of produceVersion answers it
// (0: verified, or added). The coordinator's own codes pass through,
// except those saying the coordinator cannot answer now (not coordinator,
// not available, loading, concurrent transactions) or a failed round
// trip, which become NOT_ENOUGH_REPLICAS as in Kafka: a produce error
// every client retries.
//
// before runs before each attempt (see askRetrying).
func (v *txnVerifier) verify(ctx context.Context, state *metadata.State, transactionalID string, producerID int64, producerEpoch int16, partitions map[string][]int32, produceVersion int16, before func()) map[string]map[int32]int16 {
	codes := v.askRetrying(ctx, state, transactionalID, producerID, producerEpoch, partitions, produceVersion >= produceAddsPartitions, before)
	for _, byIndex := range codes {
		for index, code := range byIndex {
			byIndex[index] = produceCodeForVerification(code, produceVersion)
		}
	}
	return codes
}

// A coordinator answering CONCURRENT_TRANSACTIONS (the producer's
// previous transaction is writing its markers: in Transactions V2 the next
// one starts right after EndTxn) is asked again, after a backoff that
// starts at addPartitionsRetryFirst and doubles up to
// addPartitionsRetryBackoff (Kafka's add.partitions.to.txn.retry.backoff.ms,
// which Kafka uses from the first retry: markers on a healthy cluster take
// a few milliseconds, so a fixed 20 ms wait cost most of a small
// transaction's time), for at most addPartitionsRetryMax, before the
// producer is told to retry (which a client does only after its own,
// longer, backoff).
const (
	addPartitionsRetryFirst   = 2 * time.Millisecond
	addPartitionsRetryBackoff = 20 * time.Millisecond
	addPartitionsRetryMax     = 100 * time.Millisecond
)

// askRetrying is ask, asked again while the coordinator answers
// CONCURRENT_TRANSACTIONS for any partition, within addPartitionsRetryMax.
// before (nil: nothing) runs before each attempt: the produce path starts
// its partitions' verification there, as a marker landing meanwhile
// clears it.
func (v *txnVerifier) askRetrying(ctx context.Context, state *metadata.State, transactionalID string, producerID int64, producerEpoch int16, partitions map[string][]int32, add bool, before func()) map[string]map[int32]int16 {
	deadline := time.Now().Add(addPartitionsRetryMax)
	backoff := addPartitionsRetryFirst
	for {
		if before != nil {
			before()
		}
		codes := v.ask(ctx, state, transactionalID, producerID, producerEpoch, partitions, add)
		concurrent := false
		for _, byIndex := range codes {
			for _, code := range byIndex {
				concurrent = concurrent || code == kerr.ConcurrentTransactions.Code
			}
		}
		if !concurrent || time.Now().Add(backoff).After(deadline) {
			return codes
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return codes
		}
		backoff = min(2*backoff, addPartitionsRetryBackoff)
	}
}

// ask sends transactionalID's coordinator an AddPartitionsToTxn (broker
// form) for partitions: verifying them (KIP-890 part 1) or, with add,
// adding them (Transactions V2), and returns the coordinator's code per
// partition; COORDINATOR_NOT_AVAILABLE when it cannot be reached.
func (v *txnVerifier) ask(ctx context.Context, state *metadata.State, transactionalID string, producerID int64, producerEpoch int16, partitions map[string][]int32, add bool) map[string]map[int32]int16 {
	codes := make(map[string]map[int32]int16, len(partitions))
	all := func(code int16) map[string]map[int32]int16 {
		for topic, indexes := range partitions {
			codes[topic] = make(map[int32]int16, len(indexes))
			for _, index := range indexes {
				codes[topic][index] = code
			}
		}
		return codes
	}
	address, code := v.coordinatorAddress(state, transactionalID)
	if code != 0 {
		return all(code)
	}
	coordinator, err := v.peers.broker(address)
	if err != nil {
		return all(kerr.CoordinatorNotAvailable.Code)
	}
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	txn := kmsg.NewAddPartitionsToTxnRequestTransaction()
	txn.TransactionalID, txn.ProducerID, txn.ProducerEpoch, txn.VerifyOnly = transactionalID, producerID, producerEpoch, !add
	for topic, indexes := range partitions {
		t := kmsg.NewAddPartitionsToTxnRequestTransactionTopic()
		t.Topic, t.Partitions = topic, indexes
		txn.Topics = append(txn.Topics, t)
	}
	req.Transactions = append(req.Transactions, txn)
	resp, err := req.RequestWith(ctx, coordinator)
	if err != nil {
		return all(kerr.CoordinatorNotAvailable.Code)
	}
	if resp.ErrorCode != 0 {
		return all(resp.ErrorCode)
	}
	all(kerr.UnknownServerError.Code) // partitions the response leaves out
	for _, rt := range resp.Transactions {
		if rt.TransactionalID != transactionalID {
			continue
		}
		for _, topic := range rt.Topics {
			for _, p := range topic.Partitions {
				if byIndex := codes[topic.Topic]; byIndex != nil {
					if _, asked := byIndex[p.Partition]; asked {
						byIndex[p.Partition] = p.ErrorCode
					}
				}
			}
		}
	}
	return codes
}

// produceCodeForVerification maps a coordinator's answer to the produce
// error code of a Produce of produceVersion (see verify): PRODUCER_FENCED
// is INVALID_PRODUCER_EPOCH to a producer (the same meaning, the code
// every version knows), TRANSACTION_ABORTABLE is INVALID_TXN_STATE before
// Produce v11, as in Kafka.
func produceCodeForVerification(code, produceVersion int16) int16 {
	switch code {
	case kerr.NotCoordinator.Code, kerr.CoordinatorNotAvailable.Code, kerr.CoordinatorLoadInProgress.Code, kerr.ConcurrentTransactions.Code:
		return kerr.NotEnoughReplicas.Code
	case kerr.ProducerFenced.Code:
		return kerr.InvalidProducerEpoch.Code
	case kerr.TransactionAbortable.Code:
		if produceVersion < produceTransactionAbortable {
			return kerr.InvalidTxnState.Code
		}
	}
	return code
}
