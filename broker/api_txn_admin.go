package broker

import (
	"regexp"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/authz"
	"github.com/strata-log/strata/broker/txn"
)

// DescribeTransactions v0 and ListTransactions v0–v2 (KIP-664, what
// kafka-transactions.sh and kadm use): the state of the transactions
// whose coordinator is here.
func init() {
	register(0, 0, handleDescribeTransactions)
	register(0, 2, handleListTransactions)
}

func handleDescribeTransactions(c *clientConn, h requestHeader, req *kmsg.DescribeTransactionsRequest) (kmsg.Response, error) {
	s := c.server
	resp := req.ResponseKind().(*kmsg.DescribeTransactionsResponse)
	resp.TransactionStates = make([]kmsg.DescribeTransactionsResponseTransactionState, 0, len(req.TransactionalIDs)) // one per request entry: no regrowth
	for _, id := range req.TransactionalIDs {
		st := kmsg.NewDescribeTransactionsResponseTransactionState()
		st.TransactionalID = id
		st.ProducerID, st.ProducerEpoch, st.StartTimestamp = -1, -1, -1
		if !c.authorized(authz.OpDescribe, authz.ResourceTransactionalID, id) {
			st.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
			resp.TransactionStates = append(resp.TransactionStates, st)
			continue
		}
		shard, kerrCode := s.txns.ShardFor(id)
		var d txn.Description
		if kerrCode == nil {
			d, kerrCode = shard.Describe(id)
		}
		if kerrCode != nil {
			st.ErrorCode = kerrCode.Code
			resp.TransactionStates = append(resp.TransactionStates, st)
			continue
		}
		st.State = d.State.String()
		st.TimeoutMillis = d.TimeoutMillis
		st.StartTimestamp = d.StartTimestamp
		st.ProducerID, st.ProducerEpoch = d.ProducerID, d.ProducerEpoch
		for _, tp := range d.Partitions {
			// As Kafka: only the partitions of topics the client may
			// DESCRIBE.
			if !c.authorized(authz.OpDescribe, authz.ResourceTopic, tp.Topic) {
				continue
			}
			if n := len(st.Topics); n == 0 || st.Topics[n-1].Topic != tp.Topic {
				t := kmsg.NewDescribeTransactionsResponseTransactionStateTopic()
				t.Topic = tp.Topic
				st.Topics = append(st.Topics, t)
			}
			last := &st.Topics[len(st.Topics)-1]
			last.Partitions = append(last.Partitions, tp.Partition)
		}
		resp.TransactionStates = append(resp.TransactionStates, st)
	}
	return resp, nil
}

func handleListTransactions(c *clientConn, h requestHeader, req *kmsg.ListTransactionsRequest) (kmsg.Response, error) {
	s := c.server
	resp := req.ResponseKind().(*kmsg.ListTransactionsResponse)
	var filter txn.ListFilter
	for _, name := range req.StateFilters {
		if state, ok := transactionStateNamed(name); ok {
			filter.States = append(filter.States, state)
		} else {
			resp.UnknownStateFilters = append(resp.UnknownStateFilters, name)
		}
	}
	if len(req.StateFilters) > 0 && len(filter.States) == 0 {
		return resp, nil // no state that exists: nothing matches
	}
	filter.ProducerIDs = req.ProducerIDFilters
	if req.Version >= 1 && req.DurationFilterMillis > 0 {
		filter.MinDuration = time.Duration(req.DurationFilterMillis) * time.Millisecond
	}
	if req.Version >= 2 && req.TransactionalIDPattern != nil && *req.TransactionalIDPattern != "" {
		pattern, err := regexp.Compile("^(?:" + *req.TransactionalIDPattern + ")$")
		if err != nil {
			resp.ErrorCode = kerr.InvalidRegularExpression.Code
			return resp, nil
		}
		filter.Pattern = pattern
	}
	shards, allLoaded := s.txns.Shards()
	if !allLoaded {
		resp.ErrorCode = kerr.CoordinatorLoadInProgress.Code
	}
	now := time.Now()
	for _, sh := range shards {
		for _, d := range sh.List(now, filter) {
			// Kafka lists the ids the client may DESCRIBE.
			if !c.authorized(authz.OpDescribe, authz.ResourceTransactionalID, d.TransactionalID) {
				continue
			}
			st := kmsg.NewListTransactionsResponseTransactionState()
			st.TransactionalID = d.TransactionalID
			st.ProducerID = d.ProducerID
			st.TransactionState = d.State.String()
			resp.TransactionStates = append(resp.TransactionStates, st)
		}
	}
	return resp, nil
}

// transactionStateNamed is the state of Kafka's exact name ("Ongoing").
func transactionStateNamed(name string) (kmsg.TransactionState, bool) {
	for s := kmsg.TransactionStateEmpty; s <= kmsg.TransactionStatePrepareEpochFence; s++ {
		if s.String() == name {
			return s, true
		}
	}
	return 0, false
}
