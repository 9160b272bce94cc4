package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/strata-log/strata/broker"
	"github.com/strata-log/strata/metadata"
)

// `strata partitions reassign --generate`: kafka-reassign-partitions'
// --generate. From --topics-to-move-json-file ({"version":1,"topics":
// [{"topic":"orders"}]}) and --broker-list (1,2,3) it prints the topics'
// current assignment and a proposed one, each partition keeping its
// replication factor, placed by Strata's own placement of new partitions
// (spread evenly, racks alternated). Nothing changes; the proposal is a
// plan for --execute.

// TopicsToMove is kafka-reassign-partitions' --topics-to-move-json-file.
type TopicsToMove struct {
	Version int `json:"version"`
	Topics  []struct {
		Topic string `json:"topic"`
	} `json:"topics"`
}

// GeneratedReassignment is what --generate prints with --output json.
type GeneratedReassignment struct {
	Current  ReassignmentPlan `json:"current"`
	Proposed ReassignmentPlan `json:"proposed"`
}

func readTopicsToMove(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, usageErrorf("--topics-to-move-json-file: %v", err)
	}
	var move TopicsToMove
	if err := json.Unmarshal(data, &move); err != nil {
		return nil, usageErrorf("--topics-to-move-json-file %s: not a topics-to-move file: %v", path, err)
	}
	if move.Version != 1 {
		return nil, usageErrorf("--topics-to-move-json-file %s: version %d; only version 1 is known", path, move.Version)
	}
	var topics []string
	for _, t := range move.Topics {
		if t.Topic == "" {
			return nil, usageErrorf("--topics-to-move-json-file %s: a topic without a name", path)
		}
		topics = append(topics, t.Topic)
	}
	if len(topics) == 0 {
		return nil, usageErrorf("--topics-to-move-json-file %s: no topics", path)
	}
	slices.Sort(topics)
	return slices.Compact(topics), nil
}

func parseBrokerList(list string) ([]int32, error) {
	var out []int32
	for _, s := range strings.Split(list, ",") {
		id, err := strconv.ParseInt(strings.TrimSpace(s), 10, 32)
		if err != nil || id < 0 {
			return nil, usageErrorf("--broker-list %q: a comma list of broker ids, e.g. 1,2,3", list)
		}
		out = append(out, int32(id))
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// proposeReassignment places every partition of the topics in current
// (topic → replicas by partition) over brokers, each with its replication
// factor, and returns the current and proposed plans.
func proposeReassignment(current map[string][][]int32, brokers []metadata.Broker) (GeneratedReassignment, error) {
	out := GeneratedReassignment{Current: ReassignmentPlan{Version: 1}, Proposed: ReassignmentPlan{Version: 1}}
	topics := make([]string, 0, len(current))
	for t := range current {
		topics = append(topics, t)
	}
	slices.Sort(topics)
	for _, topic := range topics {
		partitions := current[topic]
		rf := 0
		for _, r := range partitions {
			rf = max(rf, len(r))
		}
		if rf > len(brokers) {
			return out, fmt.Errorf("topic %s has replication factor %d, more than the %d brokers of --broker-list", topic, rf, len(brokers))
		}
		proposed := broker.PlaceReplicasAcross(brokers, int32(len(partitions)), rf)
		for p, replicas := range partitions {
			out.Current.Partitions = append(out.Current.Partitions, PartitionReassignment{Topic: topic, Partition: int32(p), Replicas: replicas})
			out.Proposed.Partitions = append(out.Proposed.Partitions, PartitionReassignment{Topic: topic, Partition: int32(p), Replicas: proposed[p]})
		}
	}
	return out, nil
}

// generateReassignment is --generate against the cluster k talks to.
func generateReassignment(ctx context.Context, k kafkaCommand, topicsFile, brokerList string, stdout io.Writer) error {
	topics, err := readTopicsToMove(topicsFile)
	if err != nil {
		return err
	}
	ids, err := parseBrokerList(brokerList)
	if err != nil {
		return err
	}
	md, err := k.adm.Metadata(ctx, topics...)
	if err != nil {
		return fmt.Errorf("read the cluster metadata: %w", err)
	}
	known := map[int32]kadm.BrokerDetail{}
	for _, b := range md.Brokers {
		known[b.NodeID] = b
	}
	var brokers []metadata.Broker
	for _, id := range ids {
		b, ok := known[id]
		if !ok {
			return fmt.Errorf("broker %d of --broker-list is not in the cluster (live brokers: %v): give live broker ids", id, md.Brokers.NodeIDs())
		}
		rack := ""
		if b.Rack != nil {
			rack = *b.Rack
		}
		brokers = append(brokers, metadata.Broker{ID: id, Rack: rack})
	}
	current := map[string][][]int32{}
	for _, topic := range topics {
		t, ok := md.Topics[topic]
		if !ok || t.Err != nil {
			return fmt.Errorf("topic %s: %v", topic, t.Err)
		}
		replicas := make([][]int32, len(t.Partitions))
		for _, p := range t.Partitions {
			if int(p.Partition) < len(replicas) {
				replicas[p.Partition] = p.Replicas
			}
		}
		current[topic] = replicas
	}
	generated, err := proposeReassignment(current, brokers)
	if err != nil {
		return err
	}
	if k.output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(generated)
	}
	cur, _ := json.Marshal(generated.Current)
	prop, _ := json.Marshal(generated.Proposed)
	_, err = fmt.Fprintf(stdout, "Current partition replica assignment\n%s\n\nProposed partition reassignment configuration\n%s\n", cur, prop)
	return err
}
