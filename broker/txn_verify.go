package broker

import (
	"context"
	"net"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker/group"
	"github.com/strata-log/strata/broker/txn"
	"github.com/strata-log/strata/metadata"
)

// addPartitionsToTxnVerifyVersion is the AddPartitionsToTxn version the
// produce path verifies with: v4 is the first with the batched,
// broker-to-broker form and VerifyOnly (KIP-890 part 1).
const addPartitionsToTxnVerifyVersion = 4

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
	leader := topic.Partitions[group.Partition(transactionalID, int32(len(topic.Partitions)))].Leader
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
// are in the ongoing transaction of producerID at producerEpoch, and
// returns each partition's Kafka error code as the produce path answers
// it (0: verified). The coordinator's own codes pass through, except those
// saying the coordinator cannot answer now (not coordinator, not
// available, loading, concurrent transactions) or a failed round trip,
// which become NOT_ENOUGH_REPLICAS as in Kafka: a produce error every
// client retries.
func (v *txnVerifier) verify(ctx context.Context, state *metadata.State, transactionalID string, producerID int64, producerEpoch int16, partitions map[string][]int32) map[string]map[int32]int16 {
	codes := make(map[string]map[int32]int16, len(partitions))
	all := func(code int16) map[string]map[int32]int16 {
		for topic, indexes := range partitions {
			codes[topic] = make(map[int32]int16, len(indexes))
			for _, index := range indexes {
				codes[topic][index] = produceCodeForVerification(code)
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
	txn.TransactionalID, txn.ProducerID, txn.ProducerEpoch, txn.VerifyOnly = transactionalID, producerID, producerEpoch, true
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
						byIndex[p.Partition] = produceCodeForVerification(p.ErrorCode)
					}
				}
			}
		}
	}
	return codes
}

// produceCodeForVerification maps a coordinator's answer to the produce
// error code (see verify).
func produceCodeForVerification(code int16) int16 {
	switch code {
	case kerr.NotCoordinator.Code, kerr.CoordinatorNotAvailable.Code, kerr.CoordinatorLoadInProgress.Code, kerr.ConcurrentTransactions.Code:
		return kerr.NotEnoughReplicas.Code
	}
	return code
}
