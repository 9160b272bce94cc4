package broker_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/strata-log/strata/broker/brokertest"
	"github.com/strata-log/strata/broker/partition"
	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/metadata"
)

// fakeCoordinator is a transaction coordinator that serves ApiVersions and
// AddPartitionsToTxn only, answering verifications with answer.
type fakeCoordinator struct {
	ln net.Listener

	mu       sync.Mutex // guards answer, requests and conns
	answer   func(*kmsg.AddPartitionsToTxnRequest) int16
	requests []*kmsg.AddPartitionsToTxnRequest
	conns    []net.Conn
}

func startFakeCoordinator(t *testing.T) *fakeCoordinator {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeCoordinator{ln: ln}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		f.mu.Lock()
		for _, conn := range f.conns {
			conn.Close()
		}
		f.mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns = append(f.conns, conn)
			f.mu.Unlock()
			wg.Go(func() { f.serve(t, conn) })
		}
	})
	return f
}

func (f *fakeCoordinator) port() int32 { return int32(f.ln.Addr().(*net.TCPAddr).Port) }

func (f *fakeCoordinator) setAnswer(answer func(*kmsg.AddPartitionsToTxnRequest) int16) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answer = answer
}

func (f *fakeCoordinator) received() []*kmsg.AddPartitionsToTxnRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*kmsg.AddPartitionsToTxnRequest(nil), f.requests...)
}

func (f *fakeCoordinator) serve(t *testing.T, conn net.Conn) {
	defer conn.Close()
	in := bufio.NewReader(conn)
	for {
		var size int32
		if err := binary.Read(in, binary.BigEndian, &size); err != nil {
			return
		}
		frame := make([]byte, size)
		if _, err := io.ReadFull(in, frame); err != nil {
			return
		}
		key, version := int16(binary.BigEndian.Uint16(frame)), int16(binary.BigEndian.Uint16(frame[2:]))
		correlation := binary.BigEndian.Uint32(frame[4:])
		body := frame[8:]
		clientID := int16(binary.BigEndian.Uint16(body))
		body = body[2+max(clientID, 0):]
		req := kmsg.RequestForKey(key)
		if req == nil {
			return
		}
		req.SetVersion(version)
		if req.IsFlexible() {
			body = body[1:] // no header tags from franz-go
		}
		if err := req.ReadFrom(body); err != nil {
			t.Errorf("fake coordinator: decode %s v%d: %v", kmsg.NameForKey(key), version, err)
			return
		}
		var resp kmsg.Response
		switch r := req.(type) {
		case *kmsg.ApiVersionsRequest:
			out := r.ResponseKind().(*kmsg.ApiVersionsResponse)
			for k, max := range map[int16]int16{18: 4, 24: 5} {
				ak := kmsg.NewApiVersionsResponseApiKey()
				ak.ApiKey, ak.MaxVersion = k, max
				out.ApiKeys = append(out.ApiKeys, ak)
			}
			resp = out
		case *kmsg.AddPartitionsToTxnRequest:
			f.mu.Lock()
			f.requests = append(f.requests, r)
			answer := f.answer
			f.mu.Unlock()
			code := answer(r)
			out := r.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
			for _, txn := range r.Transactions {
				ot := kmsg.NewAddPartitionsToTxnResponseTransaction()
				ot.TransactionalID = txn.TransactionalID
				for _, topic := range txn.Topics {
					tt := kmsg.NewAddPartitionsToTxnResponseTransactionTopic()
					tt.Topic = topic.Topic
					for _, p := range topic.Partitions {
						tp := kmsg.NewAddPartitionsToTxnResponseTransactionTopicPartition()
						tp.Partition, tp.ErrorCode = p, code
						tt.Partitions = append(tt.Partitions, tp)
					}
					ot.Topics = append(ot.Topics, tt)
				}
				out.Transactions = append(out.Transactions, ot)
			}
			resp = out
		default:
			t.Errorf("fake coordinator: unexpected %s", kmsg.NameForKey(key))
			return
		}
		out := binary.BigEndian.AppendUint32(make([]byte, 4), correlation)
		if resp.IsFlexible() && key != 18 {
			out = append(out, 0)
		}
		out = resp.AppendTo(out)
		binary.BigEndian.PutUint32(out, uint32(len(out)-4))
		if _, err := conn.Write(out); err != nil {
			return
		}
	}
}

// TestProduceVerifiesTransactions (KIP-890 part 1): a transactional batch
// that opens a transaction on a partition is appended only after the
// transactional id's coordinator (the leader of its __transaction_state
// partition, reached on the inter-broker listener) confirmed it with
// AddPartitionsToTxn v4 VerifyOnly; its errors reach the producer as Kafka
// maps them; a marker landing while the verification is in flight voids it.
func TestProduceVerifiesTransactions(t *testing.T) {
	n := brokertest.Start(t)
	coordinator := startFakeCoordinator(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	epoch, err := n.Store.RegisterBroker(ctx, metadata.BrokerRegistration{ID: 2, IncarnationID: uuid.New(),
		Endpoints: []metadata.BrokerEndpoint{{Listener: "CLIENT", Host: "127.0.0.1", Port: coordinator.port(), SecurityProtocol: "PLAINTEXT"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Store.SetBrokerFenced(ctx, 2, epoch, false); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Store.CreateTopic(ctx, metadata.TopicSpec{Name: "__transaction_state", Assignments: [][]int32{{2}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Store.CreateTopic(ctx, metadata.TopicSpec{Name: "t", Assignments: [][]int32{{1}}}); err != nil {
		t.Fatal(err)
	}
	p := leading(t, n)
	for {
		if topic, ok := n.Store.State().Topic("__transaction_state"); ok && topic.Partitions[0].Leader == 2 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("__transaction_state has no leader")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A client speaking Produce up to version: v3-v11 verify (KIP-890
	// part 1), v12 adds (Transactions V2).
	brokerAt := func(version int16) *kgo.Broker {
		max := kversion.Stable()
		max.SetMaxKeyVersion(kmsg.Produce.Int16(), version)
		cl := n.Client(kgo.MaxVersions(max))
		if err := cl.Ping(ctx); err != nil {
			t.Fatal(err)
		}
		return cl.SeedBrokers()[0]
	}
	broker := brokerAt(11)
	produce := func(producerID int64, sequence int32) int16 {
		t.Helper()
		b, err := recordbatch.Build(recordbatch.BuildOptions{Transactional: true, Idempotent: true, ProducerID: producerID, BaseSequence: sequence},
			[]recordbatch.Record{{Value: []byte("v"), Timestamp: time.Now().UnixMilli()}})
		if err != nil {
			t.Fatal(err)
		}
		req := kmsg.NewPtrProduceRequest()
		req.TransactionID, req.Acks, req.TimeoutMillis = kmsg.StringPtr("app"), -1, 5000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = "t"
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = b
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		return request[*kmsg.ProduceResponse](t, broker, req).Topics[0].Partitions[0].ErrorCode
	}

	// Confirmed: appended, the transaction is open; the request was the
	// batched v4 form with VerifyOnly.
	coordinator.setAnswer(func(*kmsg.AddPartitionsToTxnRequest) int16 { return 0 })
	if code := produce(500, 0); code != 0 {
		t.Fatalf("verified produce: %v", kerr.ErrorForCode(code))
	}
	asked := coordinator.received()
	if len(asked) != 1 || asked[0].Version < 4 || len(asked[0].Transactions) != 1 {
		t.Fatalf("verification requests %+v", asked)
	}
	if txn := asked[0].Transactions[0]; txn.TransactionalID != "app" || txn.ProducerID != 500 || !txn.VerifyOnly ||
		len(txn.Topics) != 1 || txn.Topics[0].Topic != "t" || len(txn.Topics[0].Partitions) != 1 || txn.Topics[0].Partitions[0] != 0 {
		t.Fatalf("verification request %+v", txn)
	}
	// The open transaction's next batch needs no verification.
	if code := produce(500, 1); code != 0 || len(coordinator.received()) != 1 {
		t.Fatalf("second batch: %v after %d verifications", kerr.ErrorForCode(code), len(coordinator.received()))
	}

	end := p.LogEndOffset()
	for _, test := range []struct {
		answer, want *kerr.Error
	}{
		{kerr.InvalidTxnState, kerr.InvalidTxnState},
		{kerr.InvalidProducerEpoch, kerr.InvalidProducerEpoch},
		{kerr.NotCoordinator, kerr.NotEnoughReplicas},
		{kerr.ConcurrentTransactions, kerr.NotEnoughReplicas},
	} {
		coordinator.setAnswer(func(*kmsg.AddPartitionsToTxnRequest) int16 { return test.answer.Code })
		if code := produce(501, 0); code != test.want.Code {
			t.Fatalf("coordinator answered %s: produce got %v, want %s", test.answer.Message, kerr.ErrorForCode(code), test.want.Message)
		}
	}

	// Forced interleaving: the coordinator aborts producer 502's
	// transaction (a timeout) and its marker lands here while the
	// verification is in flight; the confirmation that follows is stale.
	coordinator.setAnswer(func(*kmsg.AddPartitionsToTxnRequest) int16 {
		if _, err := p.AppendMarker(partition.Marker{ProducerID: 502, CoordinatorEpoch: 0}, time.Now()); err != nil {
			t.Errorf("marker: %v", err)
		}
		return 0
	})
	if code := produce(502, 0); code != kerr.InvalidTxnState.Code {
		t.Fatalf("batch verified before the marker: %v, want INVALID_TXN_STATE", kerr.ErrorForCode(code))
	}
	if p.LogEndOffset() != end+1 { // the marker alone
		t.Fatalf("log end %d, want %d (refused batches appended?)", p.LogEndOffset(), end+1)
	}
	for _, open := range p.OpenTransactions() {
		if open.ProducerID != 500 {
			t.Fatalf("open transactions %+v", p.OpenTransactions())
		}
	}

	// A partition the coordinator says is not in the transaction is
	// TRANSACTION_ABORTABLE to a Produce v11+ producer, which knows it,
	// INVALID_TXN_STATE before.
	coordinator.setAnswer(func(*kmsg.AddPartitionsToTxnRequest) int16 { return kerr.TransactionAbortable.Code })
	if code := produce(503, 0); code != kerr.TransactionAbortable.Code {
		t.Fatalf("v11: %v, want TRANSACTION_ABORTABLE", kerr.ErrorForCode(code))
	}
	broker = brokerAt(10)
	if code := produce(503, 0); code != kerr.InvalidTxnState.Code {
		t.Fatalf("v10: %v, want INVALID_TXN_STATE", kerr.ErrorForCode(code))
	}

	// Produce v12 (Transactions V2): the partition is added to the
	// transaction, not verified (VerifyOnly false), then appended.
	broker = brokerAt(12)
	coordinator.setAnswer(func(*kmsg.AddPartitionsToTxnRequest) int16 { return 0 })
	before := len(coordinator.received())
	if code := produce(504, 0); code != 0 {
		t.Fatalf("v12 produce: %v", kerr.ErrorForCode(code))
	}
	asked = coordinator.received()[before:]
	if len(asked) != 1 || len(asked[0].Transactions) != 1 || asked[0].Transactions[0].VerifyOnly || asked[0].Transactions[0].ProducerID != 504 {
		t.Fatalf("v12 add requests %+v", asked)
	}
	if open := p.OpenTransactions(); len(open) != 2 || open[1].ProducerID != 504 {
		t.Fatalf("open transactions %+v", open)
	}
}
