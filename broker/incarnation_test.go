package broker_test

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker"
	"github.com/strata-log/strata/broker/brokertest"
	"github.com/strata-log/strata/broker/recordbatch"
	"github.com/strata-log/strata/metadata"
	"github.com/strata-log/strata/metadata/metadatatest"
)

// seedRequest sends req to the client's first seed broker itself, not to
// the broker the metadata names for the partition.
func seedRequest[R kmsg.Response](t *testing.T, cl *kgo.Client, req kmsg.Request) R {
	t.Helper()
	return request[R](t, cl.SeedBrokers()[0], req)
}

// TestRestartedBrokerActsOnNothingBeforeItsRegistration: a broker that
// restarts replays metadata naming its previous incarnation leader. Until
// its own registration is accepted and unfenced it must not take writes
// (it may have lost the unsynced tail the previous incarnation
// acknowledged, and would write new records at the same offsets and epoch)
// nor answer OffsetForLeaderEpoch (followers would truncate to what it has
// left). Once registered it leads again and keeps every record.
func TestRestartedBrokerActsOnNothingBeforeItsRegistration(t *testing.T) {
	// No controlled shutdown: the stop leaves the leadership in place, as
	// a crash does.
	n := brokertest.Start(t, func(cfg *broker.Config) { cfg.ControlledShutdownTimeout = -1 })
	cl := n.Client(kgo.DefaultProduceTopic("t"), kgo.AllowAutoTopicCreation())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("first")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	n.Stop()

	store := metadatatest.Open(t, n.Dir())
	topic, ok := store.State().Topic("t")
	if !ok || topic.Partitions[0].Leader != metadatatest.NodeID {
		t.Fatalf("replayed state: topic %+v, want node %d leading partition 0", topic, metadatatest.NodeID)
	}
	leaderEpoch := topic.Partitions[0].LeaderEpoch
	srv, err := broker.New(broker.Config{
		NodeID:                     metadatatest.NodeID,
		Listeners:                  []broker.Listener{{Name: "CLIENT", Address: "127.0.0.1:0"}},
		DataDir:                    n.Dir(),
		Metadata:                   store,
		OffsetsTopicNumPartitions:  4,
		GroupInitialRebalanceDelay: -1,
		Logger:                     slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	srv.HoldRegistration(release)
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve()
	}()
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
		srv.Close()
		<-served
	}()
	if p := srv.OpenPartition("t", 0); p == nil || p.Leading() {
		t.Fatalf("partition t-0 before registration: open %t, leading %t; want open and not leading", p != nil, p != nil && p.Leading())
	}

	direct := n.Client(kgo.SeedBrokers(srv.Addr("CLIENT").String()))
	batch, err := recordbatch.Build(recordbatch.BuildOptions{}, []recordbatch.Record{{Timestamp: time.Now().UnixMilli(), Value: []byte("stale")}})
	if err != nil {
		t.Fatal(err)
	}
	produce := kmsg.NewPtrProduceRequest()
	produce.Acks, produce.TimeoutMillis = 1, 5000
	produce.Topics = []kmsg.ProduceRequestTopic{{Topic: "t", TopicID: topic.ID, Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: batch}}}}
	if code := seedRequest[*kmsg.ProduceResponse](t, direct, produce).Topics[0].Partitions[0].ErrorCode; code != kerr.NotLeaderForPartition.Code {
		t.Errorf("produce before registration: %v, want NOT_LEADER_OR_FOLLOWER", kerr.ErrorForCode(code))
	}
	epochs := kmsg.NewPtrOffsetForLeaderEpochRequest()
	epochs.ReplicaID = 2
	epochs.Topics = []kmsg.OffsetForLeaderEpochRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetForLeaderEpochRequestTopicPartition{
		{Partition: 0, CurrentLeaderEpoch: leaderEpoch, LeaderEpoch: leaderEpoch},
	}}}
	if code := seedRequest[*kmsg.OffsetForLeaderEpochResponse](t, direct, epochs).Topics[0].Partitions[0].ErrorCode; code != kerr.NotLeaderForPartition.Code {
		t.Errorf("OffsetForLeaderEpoch before registration: %v, want NOT_LEADER_OR_FOLLOWER", kerr.ErrorForCode(code))
	}

	close(release)
	deadline := time.Now().Add(20 * time.Second)
	for !srv.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("broker not ready after its registration")
		}
		time.Sleep(10 * time.Millisecond)
	}
	produced := direct.ProduceSync(ctx, &kgo.Record{Topic: "t", Value: []byte("second")})
	if err := produced.FirstErr(); err != nil {
		t.Fatal(err)
	}
	if offset := produced[0].Record.Offset; offset != 1 {
		t.Errorf("record after the restart at offset %d, want 1 (after the acknowledged one)", offset)
	}
}

// TestRegistrationReportsCleanShutdown: a broker that stopped cleanly
// (every log flushed and closed) leaves its clean-shutdown marker; the next
// process on the data dir takes it away before it writes anything and says
// so in its registration, with the data dir's id. A process that finds no
// marker (the previous one crashed) registers as unclean, and the
// controller takes it out of every ISR.
func TestRegistrationReportsCleanShutdown(t *testing.T) {
	n := brokertest.Start(t)
	n.Stop()
	marker := filepath.Join(n.Dir(), ".strata_cleanshutdown")
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("clean-shutdown marker after a clean stop: %v", err)
	}
	for _, test := range []struct {
		name  string
		crash bool
	}{{"after a clean stop", false}, {"after a crash", true}} {
		t.Run(test.name, func(t *testing.T) {
			if test.crash {
				if err := os.Remove(marker); err != nil {
					t.Fatal(err)
				}
			}
			store := metadatatest.Open(t, n.Dir())
			srv, err := broker.New(broker.Config{
				NodeID:    metadatatest.NodeID,
				Listeners: []broker.Listener{{Name: "CLIENT", Address: "127.0.0.1:0"}},
				DataDir:   n.Dir(),
				Metadata:  store,
				Logger:    slog.New(slog.DiscardHandler),
			})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(marker); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("clean-shutdown marker once the next process has started: %v, want it gone", err)
			}
			registration := srv.Registration()
			if registration.CleanShutdown == test.crash {
				t.Errorf("registration reports clean shutdown %t, want %t", registration.CleanShutdown, !test.crash)
			}
			if registration.DirectoryID != store.DirectoryID() || registration.DirectoryID == ([16]byte{}) {
				t.Errorf("registration directory id %x, want the data dir's %x", registration.DirectoryID, store.DirectoryID())
			}
			if err := srv.Close(); err != nil {
				t.Fatal(err)
			}
			store.Close()
		})
	}
}

// TestStaleBrokerEpochFetchCountsForNothing: a follower's fetch carries its
// broker epoch (Fetch v15 ReplicaState, KIP-903). A fetch made under an
// earlier registration of the follower — the broker has registered again
// since, and its new incarnation may have lost what the earlier one had —
// must not move the high watermark (nor join the ISR); the same fetch
// under the current registration does.
func TestStaleBrokerEpochFetchCountsForNothing(t *testing.T) {
	// Broker 2 never fetches on its own: no controlled shutdown waiting
	// for it at the end.
	n := brokertest.Start(t, func(cfg *broker.Config) { cfg.ControlledShutdownTimeout = -1 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	registration := metadata.BrokerRegistration{ID: 2, IncarnationID: uuid.New(), DirectoryID: uuid.New(),
		Endpoints: []metadata.BrokerEndpoint{{Listener: "CLIENT", Host: "127.0.0.1", Port: 9094, SecurityProtocol: "PLAINTEXT"}}}
	staleEpoch, err := n.Store.RegisterBroker(ctx, registration)
	if err != nil {
		t.Fatal(err)
	}
	// Broker 2 restarts on its data dir after a clean shutdown: a new
	// registration, a new broker epoch. It is unfenced before the topic
	// is placed on it (a fenced broker leaves every ISR), as if it had
	// heartbeated.
	registration.IncarnationID, registration.CleanShutdown = uuid.New(), true
	currentEpoch, err := n.Store.RegisterBroker(ctx, registration)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Store.SetBrokerFenced(ctx, 2, currentEpoch, false); err != nil {
		t.Fatal(err)
	}
	cl := n.Client(kgo.DefaultProduceTopic("t"), kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	// Created through the store: CreateTopics would wait for broker 2,
	// which runs nowhere, to report the new topic.
	if _, err := n.Store.CreateTopic(ctx, metadata.TopicSpec{Name: "t", Assignments: [][]int32{{1, 2}}}); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("one")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	topic, _ := n.Store.State().Topic("t")
	if isr := topic.Partitions[0].ISR; len(isr) != 2 {
		t.Fatalf("ISR %v, want [1 2]", isr)
	}

	fetch := func(epoch int64) int64 {
		t.Helper()
		req := kmsg.NewPtrFetchRequest()
		req.ReplicaID = 2
		req.ReplicaState.ID, req.ReplicaState.Epoch = 2, epoch
		req.MaxBytes = 1 << 20
		part := kmsg.NewFetchRequestTopicPartition()
		part.Partition, part.FetchOffset, part.PartitionMaxBytes = 0, 1, 1<<20
		req.Topics = []kmsg.FetchRequestTopic{{Topic: "t", TopicID: topic.ID, Partitions: []kmsg.FetchRequestTopicPartition{part}}}
		resp := request[*kmsg.FetchResponse](t, cl, req)
		if resp.Version < 15 {
			t.Fatalf("Fetch v%d, want v15 (ReplicaState)", resp.Version)
		}
		p := resp.Topics[0].Partitions[0]
		if p.ErrorCode != 0 {
			t.Fatalf("replica fetch: %v", kerr.ErrorForCode(p.ErrorCode))
		}
		return p.HighWatermark
	}
	if hw := fetch(staleEpoch); hw != 0 {
		t.Errorf("high watermark %d after a caught-up fetch at broker 2's earlier epoch, want 0", hw)
	}
	if hw := fetch(currentEpoch); hw != 1 {
		t.Errorf("high watermark %d after a caught-up fetch at broker 2's current epoch, want 1", hw)
	}
}

// TestSecondProcessWithALiveNodeIDStops: a broker whose node id is
// registered from another data directory by a process that keeps its
// session alive is refused (DUPLICATE_BROKER_REGISTRATION) and gives up:
// Serve returns an error wrapping metadata.ErrDuplicateBroker (the process
// exits non-zero), and the live registration is untouched.
func TestSecondProcessWithALiveNodeIDStops(t *testing.T) {
	store := metadatatest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	live := metadata.BrokerRegistration{ID: metadatatest.NodeID, IncarnationID: uuid.New(), DirectoryID: uuid.New(),
		Endpoints: []metadata.BrokerEndpoint{{Listener: "CLIENT", Host: "127.0.0.1", Port: 9092, SecurityProtocol: "PLAINTEXT"}}}
	epoch, err := store.RegisterBroker(ctx, live)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.SetBrokerFenced(ctx, live.ID, epoch, false); err != nil {
		t.Fatal(err)
	}
	beating, stopBeating := context.WithCancel(ctx)
	defer stopBeating()
	go func() {
		for beating.Err() == nil {
			store.Heartbeat(beating, metadata.BrokerHeartbeat{ID: live.ID, BrokerEpoch: epoch})
			select {
			case <-beating.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()

	srv, err := broker.New(broker.Config{
		NodeID:            metadatatest.NodeID,
		Listeners:         []broker.Listener{{Name: "CLIENT", Address: "127.0.0.1:0"}},
		DataDir:           t.TempDir(),
		Metadata:          store,
		HeartbeatInterval: 50 * time.Millisecond,
		SessionTimeout:    200 * time.Millisecond,
		Logger:            slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	select {
	case err := <-served:
		if !errors.Is(err, metadata.ErrDuplicateBroker) {
			t.Fatalf("Serve: %v, want an error wrapping ErrDuplicateBroker", err)
		}
	case <-ctx.Done():
		t.Fatal("the second process with a live node id kept running")
	}
	if b, _ := store.State().Broker(live.ID); b.IncarnationID != live.IncarnationID || b.Epoch != epoch {
		t.Fatalf("the live registration was replaced: %+v", b)
	}
}
