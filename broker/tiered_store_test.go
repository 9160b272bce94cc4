package broker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/strata-log/strata/broker"
	"github.com/strata-log/strata/broker/brokertest"
	"github.com/strata-log/strata/metadata/metadatatest"
)

// noRemote is a RemoteReader that is never called: the tests below only
// create and configure topics.
type noRemote struct{ broker.RemoteReader }

// TestTieringNeedsASharedObjectStore: a broker whose object store is
// node-local (each node of a cluster started without --object-store
// tiers into its own data dir) accepts tiered topics while it is the only
// node and refuses remote.storage.enable=true — on CreateTopics,
// AlterConfigs and IncrementalAlterConfigs, with INVALID_CONFIG and a
// message naming the fix — once another broker has registered. A topic
// tiered before stays tiered and configurable. A shared store (s3://, or
// file:// with --object-store-shared) is accepted in any cluster.
func TestTieringNeedsASharedObjectStore(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tiered := map[string]*string{"remote.storage.enable": kadm.StringPtr("true")}
	for _, nodeLocal := range []bool{true, false} {
		n := brokertest.Start(t, func(c *broker.Config) {
			c.RemoteReader = noRemote{}
			c.ObjectStoreNodeLocal = nodeLocal
		})
		adm := kadm.NewClient(n.Client())
		create := func(topic string, configs map[string]*string) kadm.CreateTopicResponse {
			t.Helper()
			r, err := adm.CreateTopic(ctx, 1, 1, configs, topic)
			if err != nil && r.Err == nil {
				t.Fatal(err)
			}
			return r
		}
		if r := create("alone", tiered); r.Err != nil {
			t.Fatalf("node-local=%v, one node: tiered topic refused: %v %s", nodeLocal, r.Err, r.ErrMessage)
		}
		if r := create("plain", nil); r.Err != nil {
			t.Fatal(r.Err)
		}

		// A second node joins, and acts on the metadata it applies (else
		// the shared-store case's CreateTopics waits for its session to end).
		second := metadatatest.NodeID + 1
		metadatatest.ReportApplying(t, n.Store, second, metadatatest.RegisterBroker(t, n.Store, second))

		refused := func(what string, err error, message string) {
			t.Helper()
			if !nodeLocal {
				if err != nil {
					t.Fatalf("shared store, two nodes: %s refused: %v %s", what, err, message)
				}
				return
			}
			if err != kerr.InvalidConfig || !strings.Contains(message, "--object-store-shared") || !strings.Contains(message, "node-local") {
				t.Fatalf("node-local store, two nodes: %s answered %v %q, want INVALID_CONFIG naming the shared store", what, err, message)
			}
		}
		r := create("together", tiered)
		refused("CreateTopics", r.Err, r.ErrMessage)

		alter, err := adm.AlterTopicConfigsState(ctx, []kadm.AlterConfig{{Name: "remote.storage.enable", Value: kadm.StringPtr("true")}}, "plain")
		if err != nil {
			t.Fatal(err)
		}
		refused("AlterConfigs", alter[0].Err, alter[0].ErrMessage)
		if nodeLocal {
			incremental, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "remote.storage.enable", Value: kadm.StringPtr("true")}}, "plain")
			if err != nil {
				t.Fatal(err)
			}
			refused("IncrementalAlterConfigs", incremental[0].Err, incremental[0].ErrMessage)
		}

		// The topic tiered while the node was alone keeps its configs
		// editable.
		kept, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: kadm.StringPtr("86400000")}}, "alone")
		if err != nil || kept[0].Err != nil {
			t.Fatalf("node-local=%v: altering retention of the topic tiered before: %v %v %s", nodeLocal, err, kept[0].Err, kept[0].ErrMessage)
		}
		n.Stop()
	}
}
