package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker/brokertest"
	"github.com/strata-log/strata/metadata"
)

// TestProposeReassignment: --generate's proposal keeps every partition's
// replication factor, places replicas only on the given brokers, each
// partition's on distinct brokers, with leaders spread evenly; and it
// refuses a replication factor above the broker count.
func TestProposeReassignment(t *testing.T) {
	current := map[string][][]int32{
		"a": {{1, 2}, {2, 1}, {1, 2}},
		"b": {{1}, {1}, {1}, {1}, {1}, {1}},
	}
	brokers := []metadata.Broker{{ID: 3}, {ID: 4}, {ID: 5}}
	got, err := proposeReassignment(current, brokers)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Current.Partitions) != 9 || len(got.Proposed.Partitions) != 9 {
		t.Fatalf("plans of %d and %d partitions, want 9", len(got.Current.Partitions), len(got.Proposed.Partitions))
	}
	leaders := map[string]map[int32]int{}
	for i, p := range got.Proposed.Partitions {
		cur := got.Current.Partitions[i]
		if cur.Topic != p.Topic || cur.Partition != p.Partition || !slices.Equal(cur.Replicas, current[p.Topic][p.Partition]) {
			t.Fatalf("current %+v for proposed %+v", cur, p)
		}
		if len(p.Replicas) != len(cur.Replicas) {
			t.Fatalf("%s-%d: replication factor %d, want %d", p.Topic, p.Partition, len(p.Replicas), len(cur.Replicas))
		}
		seen := map[int32]bool{}
		for _, r := range p.Replicas {
			if r < 3 || r > 5 || seen[r] {
				t.Fatalf("%s-%d: replicas %v outside 3,4,5 or repeated", p.Topic, p.Partition, p.Replicas)
			}
			seen[r] = true
		}
		if leaders[p.Topic] == nil {
			leaders[p.Topic] = map[int32]int{}
		}
		leaders[p.Topic][p.Replicas[0]]++
	}
	for topic, counts := range leaders {
		for id, n := range counts {
			if want := len(current[topic]) / 3; n != want {
				t.Fatalf("%s: broker %d leads %d partitions, want %d (spread evenly): %v", topic, id, n, want, counts)
			}
		}
	}
	if _, err := proposeReassignment(map[string][][]int32{"a": {{1, 2, 3, 4}}}, brokers); err == nil {
		t.Fatal("replication factor 4 over 3 brokers proposed")
	}
}

// TestReassignGenerateAgainstBroker: `partitions reassign --generate`
// against an in-process broker prints the current assignment and a plan
// in kafka-reassign-partitions' format, and refuses a broker that is not
// in the cluster and a topics file that is not one.
func TestReassignGenerateAgainstBroker(t *testing.T) {
	n := brokertest.Start(t)
	ct := kmsg.NewPtrCreateTopicsRequest()
	ct.Topics = []kmsg.CreateTopicsRequestTopic{{Topic: "orders", NumPartitions: 2, ReplicationFactor: 1}}
	resp, err := ct.RequestWith(t.Context(), n.Client())
	if err != nil || resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("create topic: %v %+v", err, resp)
	}
	dir := t.TempDir()
	topics := filepath.Join(dir, "topics.json")
	if err := os.WriteFile(topics, []byte(`{"version":1,"topics":[{"topic":"orders"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	bs := []string{"--bootstrap-server", n.Addr}
	code, stdout, stderr := runCLI(append([]string{"partitions", "reassign", "--generate", "--topics-to-move-json-file", topics, "--broker-list", "1", "--output", "json"}, bs...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var got GeneratedReassignment
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	want := ReassignmentPlan{Version: 1, Partitions: []PartitionReassignment{{Topic: "orders", Partition: 0, Replicas: []int32{1}}, {Topic: "orders", Partition: 1, Replicas: []int32{1}}}}
	if !jsonEqual(got.Current, want) || !jsonEqual(got.Proposed, want) {
		t.Fatalf("generated %+v", got)
	}
	code, stdout, _ = runCLI(append([]string{"partitions", "reassign", "--generate", "--topics-to-move-json-file", topics, "--broker-list", "1"}, bs...)...)
	if code != 0 || !strings.Contains(stdout, "Proposed partition reassignment configuration\n{\"version\":1,\"partitions\":[{\"topic\":\"orders\"") {
		t.Fatalf("exit %d, output:\n%s", code, stdout)
	}
	if code, _, stderr := runCLI(append([]string{"partitions", "reassign", "--generate", "--topics-to-move-json-file", topics, "--broker-list", "1,9"}, bs...)...); code == 0 || !strings.Contains(stderr, "broker 9") {
		t.Fatalf("unknown broker: exit %d, %s", code, stderr)
	}
	if err := os.WriteFile(topics, []byte(`{"version":1,"topics":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCLI(append([]string{"partitions", "reassign", "--generate", "--topics-to-move-json-file", topics, "--broker-list", "1"}, bs...)...); code != 2 || !strings.Contains(stderr, "no topics") {
		t.Fatalf("empty topics file: exit %d, %s", code, stderr)
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}
