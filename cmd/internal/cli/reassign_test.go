package cli

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestReadReassignmentPlan: kafka-reassign-partitions' JSON plans are
// read as that tool writes them (log_dirs "any"); what Strata cannot do
// or what is not a plan is refused with a usage error.
func TestReadReassignmentPlan(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name, plan string
		want       *ReassignmentPlan
	}{
		{"kafka's format", `{"version":1,"partitions":[{"topic":"orders","partition":0,"replicas":[2,3],"log_dirs":["any","any"]}]}`,
			&ReassignmentPlan{Version: 1, Partitions: []PartitionReassignment{{Topic: "orders", Replicas: []int32{2, 3}, LogDirs: []string{"any", "any"}}}}},
		{"without log_dirs", `{"version":1,"partitions":[{"topic":"orders","partition":1,"replicas":[1]}]}`,
			&ReassignmentPlan{Version: 1, Partitions: []PartitionReassignment{{Topic: "orders", Partition: 1, Replicas: []int32{1}}}}},
		{"a log dir", `{"version":1,"partitions":[{"topic":"orders","partition":0,"replicas":[2],"log_dirs":["/data"]}]}`, nil},
		{"unknown version", `{"version":2,"partitions":[{"topic":"orders","partition":0,"replicas":[2]}]}`, nil},
		{"no partitions", `{"version":1,"partitions":[]}`, nil},
		{"no replicas", `{"version":1,"partitions":[{"topic":"orders","partition":0}]}`, nil},
		{"not JSON", `topic=orders`, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, c.name+".json")
			if err := os.WriteFile(path, []byte(c.plan), 0o600); err != nil {
				t.Fatal(err)
			}
			plan, err := readReassignmentPlan(path)
			if c.want == nil {
				if _, usage := err.(usageError); !usage {
					t.Fatalf("error %v (%T), want a usage error", err, err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(plan, *c.want) {
				t.Fatalf("plan %+v, %v; want %+v", plan, err, *c.want)
			}
		})
	}
}
