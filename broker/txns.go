package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/strata-log/strata/broker/group"
	"github.com/strata-log/strata/broker/partition"
	"github.com/strata-log/strata/broker/txn"
	"github.com/strata-log/strata/metadata"
)

// The transaction coordinators (broker/txn) keep their records in
// __transaction_state (internaltopic.go creates it): this file follows
// its partitions' leadership, gives each shard its partition's log (the
// group coordinators' adapter, offsetsLog), and writes the coordinators'
// markers to partition leaders with WriteTxnMarkers.

// txnsFollow makes the transaction manager follow the __transaction_state
// partitions' leadership, as groupsFollow does for __consumer_offsets: a
// partition this broker now leads gets a fresh shard whose coordinator
// epoch is the partition's leader epoch.
type txnsFollow struct {
	s *Server

	mu   sync.Mutex // guards logs
	logs map[*partition.Partition]*offsetsLog
}

// The group coordinators' partition adapter serves the transaction
// coordinators too.
var _ txn.Log = (*offsetsLog)(nil)

func (f *txnsFollow) logOf(p *partition.Partition) *offsetsLog {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.logs[p]
	if l == nil {
		l = &offsetsLog{p: p, log: f.s.log.With("subsystem", "transactions")}
		f.logs[p] = l
	}
	return l
}

// leadership is (part of) the partition manager's onLeadership.
func (f *txnsFollow) leadership(p *partition.Partition) {
	if p.Topic() != txn.TopicName {
		return
	}
	if !p.Leading() {
		f.s.txns.Resign(p.Index(), f.logOf(p))
		return
	}
	if err := f.s.txns.Lead(p.Index(), p.LeaderEpoch(), f.logOf(p)); err != nil {
		f.s.log.Error("cannot start transaction coordinator", "partition", p.Index(), "err", err)
	}
}

// closing is (part of) the partition manager's onClose.
func (f *txnsFollow) closing(p *partition.Partition) {
	if p.Topic() != txn.TopicName {
		return
	}
	f.s.txns.Resign(p.Index(), f.logOf(p))
	f.mu.Lock()
	delete(f.logs, p)
	f.mu.Unlock()
}

// writeTxnMarkersVersion is the newest WriteTxnMarkers version sent to
// partition leaders: 2 carries each marker's transaction version
// (KIP-1228); a leader serving only v1 gets v1 (the client negotiates).
const writeTxnMarkersVersion = 2

// errMarkerNotWritten: a partition's leader did not take its marker this
// time (no leader, leader unreachable, NOT_LEADER...): retried.
var errMarkerNotWritten = errors.New("broker: transaction marker not written")

// markerWriter implements txn.MarkerWriter: the partitions of one marker
// are grouped by leader, all leaders at once. As Kafka's marker channel
// manager does, markers of many transactions bound for one leader share a
// request: each leader has a queue, and while one WriteTxnMarkers v1 is in
// flight to it the markers that arrive wait and then go together (a
// partition leader handles a connection's requests one at a time, each
// waiting for its markers to be replicated, so one request per
// transaction would queue them up behind each other).
type markerWriter struct {
	// resolve finds a partition's leader and its inter-broker address, or
	// txn.ErrPartitionGone when the partition no longer exists.
	resolve func(tp group.TopicPartition) (leader int32, address string, err error)
	// send sends one request to a broker.
	send func(ctx context.Context, leader int32, address string, req *kmsg.WriteTxnMarkersRequest) (*kmsg.WriteTxnMarkersResponse, error)
	// ctx ends the requests in flight (the server's); nil: never.
	ctx context.Context
	log *slog.Logger

	senders sync.WaitGroup // one goroutine per leader with queued markers

	mu     sync.Mutex // guards queues
	queues map[markerLeader]*markerQueue
}

// markerLeader is a partition leader markers are sent to.
type markerLeader struct {
	id      int32
	address string
}

// markerQueue holds the markers waiting for a leader.
type markerQueue struct {
	calls   []*markerCall
	sending bool // a sender goroutine drains the queue
}

// markerCall is one transaction's marker waiting for its leader's answer.
type markerCall struct {
	marker kmsg.WriteTxnMarkersRequestMarker
	done   chan markerAnswer // buffered: the sender never waits for the caller
}

type markerAnswer struct {
	marker *kmsg.WriteTxnMarkersResponseMarker // nil: the leader did not answer for it
	err    error
}

var _ txn.MarkerWriter = (*markerWriter)(nil)

// WriteMarkers implements txn.MarkerWriter.
func (w *markerWriter) WriteMarkers(ctx context.Context, m txn.Marker) map[group.TopicPartition]error {
	out := make(map[group.TopicPartition]error, len(m.Partitions))
	byLeader := map[markerLeader][]group.TopicPartition{}
	for _, tp := range m.Partitions {
		leader, address, err := w.resolve(tp)
		if err != nil {
			out[tp] = err
			continue
		}
		k := markerLeader{leader, address}
		byLeader[k] = append(byLeader[k], tp)
	}
	var mu sync.Mutex // guards out while the requests run
	var wg sync.WaitGroup
	for k, tps := range byLeader {
		wg.Go(func() {
			results := w.writeTo(ctx, k.id, k.address, m, tps)
			mu.Lock()
			defer mu.Unlock()
			for tp, err := range results {
				out[tp] = err
			}
		})
	}
	wg.Wait()
	return out
}

// writeTo sends m's markers for tps to one leader and classifies each
// partition's answer.
func (w *markerWriter) writeTo(ctx context.Context, leader int32, address string, m txn.Marker, tps []group.TopicPartition) map[group.TopicPartition]error {
	marker := kmsg.NewWriteTxnMarkersRequestMarker()
	marker.ProducerID, marker.ProducerEpoch, marker.Committed, marker.CoordinatorEpoch = m.ProducerID, m.ProducerEpoch, m.Commit, m.CoordinatorEpoch
	marker.TransactionVersion = int8(m.Version)
	for _, tp := range tps {
		if n := len(marker.Topics); n == 0 || marker.Topics[n-1].Topic != tp.Topic {
			t := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
			t.Topic = tp.Topic
			marker.Topics = append(marker.Topics, t)
		}
		last := &marker.Topics[len(marker.Topics)-1]
		last.Partitions = append(last.Partitions, tp.Partition)
	}
	out := make(map[group.TopicPartition]error, len(tps))
	rm, err := w.exchange(ctx, markerLeader{leader, address}, marker)
	if err != nil {
		for _, tp := range tps {
			out[tp] = fmt.Errorf("%w: leader %d at %s: %v", errMarkerNotWritten, leader, address, err)
		}
		return out
	}
	if rm != nil {
		for _, rt := range rm.Topics {
			for _, rp := range rt.Partitions {
				tp := group.TopicPartition{Topic: rt.Topic, Partition: rp.Partition}
				out[tp] = w.classify(tp, leader, rp.ErrorCode)
			}
		}
	}
	for _, tp := range tps {
		if _, ok := out[tp]; !ok {
			out[tp] = fmt.Errorf("%w: leader %d did not answer for %s-%d", errMarkerNotWritten, leader, tp.Topic, tp.Partition)
		}
	}
	return out
}

// exchange queues marker for leader and returns the leader's answer for
// it, or gives up when ctx ends.
func (w *markerWriter) exchange(ctx context.Context, leader markerLeader, marker kmsg.WriteTxnMarkersRequestMarker) (*kmsg.WriteTxnMarkersResponseMarker, error) {
	call := &markerCall{marker: marker, done: make(chan markerAnswer, 1)}
	w.mu.Lock()
	if w.queues == nil {
		w.queues = map[markerLeader]*markerQueue{}
	}
	q := w.queues[leader]
	if q == nil {
		q = &markerQueue{}
		w.queues[leader] = q
	}
	q.calls = append(q.calls, call)
	if !q.sending {
		q.sending = true
		w.senders.Add(1)
		go w.drain(leader, q)
	}
	w.mu.Unlock()
	select {
	case a := <-call.done:
		return a.marker, a.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// drain sends leader's queued markers, as many as are queued in each
// request (one per producer id: the answer is keyed by it), until the
// queue is empty.
func (w *markerWriter) drain(leader markerLeader, q *markerQueue) {
	defer w.senders.Done()
	ctx := w.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	for {
		w.mu.Lock()
		if len(q.calls) == 0 {
			q.sending = false
			delete(w.queues, leader)
			w.mu.Unlock()
			return
		}
		var batch, rest []*markerCall
		producers := map[int64]bool{}
		for _, c := range q.calls {
			if producers[c.marker.ProducerID] {
				rest = append(rest, c)
				continue
			}
			producers[c.marker.ProducerID] = true
			batch = append(batch, c)
		}
		q.calls = rest
		w.mu.Unlock()
		req := kmsg.NewPtrWriteTxnMarkersRequest()
		req.Version = writeTxnMarkersVersion
		for _, c := range batch {
			req.Markers = append(req.Markers, c.marker)
		}
		resp, err := w.send(ctx, leader.id, leader.address, req)
		answers := map[int64]*kmsg.WriteTxnMarkersResponseMarker{}
		if err == nil {
			for i := range resp.Markers {
				answers[resp.Markers[i].ProducerID] = &resp.Markers[i]
			}
		}
		for _, c := range batch {
			c.done <- markerAnswer{marker: answers[c.marker.ProducerID], err: err}
		}
	}
}

// wait waits for the senders, once every caller is gone (the
// coordinators closed) and ctx has ended.
func (w *markerWriter) wait() { w.senders.Wait() }

// classify turns a leader's answer for one partition into what the
// coordinator does (Kafka's TransactionMarkerRequestCompletionHandler).
func (w *markerWriter) classify(tp group.TopicPartition, leader int32, code int16) error {
	switch code {
	case 0:
		return nil
	case kerr.InvalidProducerEpoch.Code, kerr.TransactionCoordinatorFenced.Code:
		return fmt.Errorf("%w: leader %d of %s-%d: %v", txn.ErrCoordinatorFenced, leader, tp.Topic, tp.Partition, kerr.ErrorForCode(code))
	case kerr.UnknownTopicOrPartition.Code:
		// Deleted (nothing to write), or not known there yet (retry).
		if _, _, err := w.resolve(tp); errors.Is(err, txn.ErrPartitionGone) {
			return err
		}
	}
	return fmt.Errorf("%w: leader %d of %s-%d: %v", errMarkerNotWritten, leader, tp.Topic, tp.Partition, kerr.ErrorForCode(code))
}

// resolveLeader finds a partition's leader in the metadata state and its
// address on the inter-broker listener.
func resolveLeader(store *metadata.Store, listener string) func(tp group.TopicPartition) (int32, string, error) {
	return func(tp group.TopicPartition) (int32, string, error) {
		state := store.State()
		t, ok := state.Topic(tp.Topic)
		if !ok || !t.HasPartition(tp.Partition) {
			return -1, "", fmt.Errorf("%w: %s-%d", txn.ErrPartitionGone, tp.Topic, tp.Partition)
		}
		leader := t.Partitions[tp.Partition].Leader
		if leader < 0 {
			return -1, "", fmt.Errorf("%w: %s-%d has no leader", errMarkerNotWritten, tp.Topic, tp.Partition)
		}
		b, ok := state.Broker(leader)
		if !ok || b.Fenced {
			return -1, "", fmt.Errorf("%w: leader %d of %s-%d is not registered and unfenced", errMarkerNotWritten, leader, tp.Topic, tp.Partition)
		}
		endpoint, ok := b.Endpoint(listener)
		if !ok {
			return -1, "", fmt.Errorf("%w: leader %d of %s-%d has no %s listener", errMarkerNotWritten, leader, tp.Topic, tp.Partition, listener)
		}
		return leader, net.JoinHostPort(endpoint.Host, strconv.Itoa(int(endpoint.Port))), nil
	}
}

// brokerClients keeps one client per broker address for the
// transaction requests brokers send each other (built as the replica
// fetchers build theirs): the coordinators' WriteTxnMarkers (v1) and the
// produce path's KIP-890 verification (AddPartitionsToTxn v4 with
// VerifyOnly, never downgraded: an older version would add the partitions
// instead of checking them). A client reconnects by itself; clients of
// addresses no longer used stay until close (a handful per cluster).
type brokerClients struct {
	nodeID int32
	opts   []kgo.Opt // how to connect to the inter-broker listener (its TLS dialer)

	mu      sync.Mutex // guards clients and closed
	clients map[string]*kgo.Client
	closed  bool
}

func newBrokerClients(nodeID int32, opts []kgo.Opt) *brokerClients {
	return &brokerClients{nodeID: nodeID, opts: opts, clients: map[string]*kgo.Client{}}
}

// broker is the connection to the broker at address.
func (c *brokerClients) broker(address string) (*kgo.Broker, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errors.New("broker: shutting down")
	}
	client := c.clients[address]
	if client == nil {
		minVersions := new(kversion.Versions)
		minVersions.SetMaxKeyVersion(kmsg.AddPartitionsToTxn.Int16(), addPartitionsToTxnVerifyVersion)
		maxVersions := kversion.Stable()
		maxVersions.SetMaxKeyVersion(kmsg.AddPartitionsToTxn.Int16(), addPartitionsToTxnMaxBrokerVersion)
		maxVersions.SetMaxKeyVersion(kmsg.WriteTxnMarkers.Int16(), writeTxnMarkersVersion)
		var err error
		opts := append([]kgo.Opt{kgo.SeedBrokers(address), kgo.ClientID(fmt.Sprintf("strata-txn-%d", c.nodeID)),
			kgo.MinVersions(minVersions), kgo.MaxVersions(maxVersions), kgo.RequestTimeoutOverhead(5 * time.Second)}, c.opts...)
		client, err = kgo.NewClient(opts...)
		if err != nil {
			return nil, err
		}
		c.clients[address] = client
	}
	seeds := client.SeedBrokers()
	if len(seeds) == 0 {
		return nil, fmt.Errorf("no connection to %s", address)
	}
	return seeds[0], nil
}

// send sends WriteTxnMarkers to the broker at address (markerWriter.send).
func (c *brokerClients) send(ctx context.Context, _ int32, address string, req *kmsg.WriteTxnMarkersRequest) (*kmsg.WriteTxnMarkersResponse, error) {
	b, err := c.broker(address)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := b.Request(ctx, req)
	if err != nil {
		return nil, err
	}
	return resp.(*kmsg.WriteTxnMarkersResponse), nil
}

// close closes every client; later requests fail.
func (c *brokerClients) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for address, client := range c.clients {
		client.Close()
		delete(c.clients, address)
	}
}

// txnEvents counts the coordinators' transactions (txn.Events).
type txnEvents struct{ m *metrics }

func (e txnEvents) Started() { e.m.transactions.WithLabelValues("started").Inc() }
func (e txnEvents) Ended(commit bool) {
	if commit {
		e.m.transactions.WithLabelValues("committed").Inc()
	} else {
		e.m.transactions.WithLabelValues("aborted").Inc()
	}
}
func (e txnEvents) TimedOut() { e.m.transactions.WithLabelValues("timed_out").Inc() }
