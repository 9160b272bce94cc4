package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// `strata partitions reassign` and `strata partitions elect`: Kafka's
// kafka-reassign-partitions and kafka-leader-election over the admin APIs
// (AlterPartitionReassignments, ListPartitionReassignments, ElectLeaders),
// so they work against any Kafka cluster too.

const reassignUsage = `Usage: strata partitions reassign --reassignment-json-file FILE (--execute [--throttle B/s] [--additional] | --verify | --cancel) [flags]
       strata partitions reassign --generate --topics-to-move-json-file FILE --broker-list 1,2,3 [flags]

Moves partitions to the replicas a plan names, in kafka-reassign-partitions'
JSON format:

  {"version":1,"partitions":[{"topic":"orders","partition":0,"replicas":[2,3]}]}

  --execute   start the reassignments (prints the current assignment first,
              in the same format, to roll back with); with --throttle, sets
              leader.replication.throttled.rate and
              follower.replication.throttled.rate on every broker involved,
              which bound the catch-up traffic of the replicas being added
  --verify    report each partition (done, in progress, or not on its
              target); once all are done, removes the throttle
  --cancel    cancel the reassignments in progress and remove the throttle
  --generate  propose a plan moving the topics of --topics-to-move-json-file
              ({"version":1,"topics":[{"topic":"orders"}]}) onto the brokers
              of --broker-list, placed as Strata places new partitions;
              prints the current assignment and the proposal, changes nothing

Flags:
`

const electUsage = `Usage: strata partitions elect --type preferred|unclean [--topic T [--partition N ...]] [flags]

Kafka's kafka-leader-election: PREFERRED gives each partition to its first
replica when it is alive and in sync; UNCLEAN elects a leader for a partition
that has none, from an out-of-sync replica if need be (records only the
in-sync replicas had are lost; refused on tiered topics). Without --topic,
every partition.

Flags:
`

// ReassignmentPlan is kafka-reassign-partitions' JSON plan.
type ReassignmentPlan struct {
	Version    int                     `json:"version"`
	Partitions []PartitionReassignment `json:"partitions"`
}

// PartitionReassignment is one partition of a plan.
type PartitionReassignment struct {
	Topic     string   `json:"topic"`
	Partition int32    `json:"partition"`
	Replicas  []int32  `json:"replicas"`
	LogDirs   []string `json:"log_dirs,omitempty"`
}

// ReassignmentStatus is one partition of `reassign --execute/--verify/--cancel`.
type ReassignmentStatus struct {
	Topic     string  `json:"topic"`
	Partition int32   `json:"partition"`
	Replicas  []int32 `json:"replicas,omitempty"`
	Adding    []int32 `json:"adding_replicas,omitempty"`
	Removing  []int32 `json:"removing_replicas,omitempty"`
	Status    string  `json:"status"`
	Error     string  `json:"error,omitempty"`
}

func readReassignmentPlan(path string) (ReassignmentPlan, error) {
	var plan ReassignmentPlan
	data, err := os.ReadFile(path)
	if err != nil {
		return plan, usageErrorf("--reassignment-json-file: %v", err)
	}
	if err := json.Unmarshal(data, &plan); err != nil {
		return plan, usageErrorf("--reassignment-json-file %s: not a reassignment plan: %v", path, err)
	}
	if plan.Version != 1 {
		return plan, usageErrorf("--reassignment-json-file %s: version %d; only version 1 is known", path, plan.Version)
	}
	if len(plan.Partitions) == 0 {
		return plan, usageErrorf("--reassignment-json-file %s: no partitions", path)
	}
	for _, p := range plan.Partitions {
		if p.Topic == "" || len(p.Replicas) == 0 {
			return plan, usageErrorf("--reassignment-json-file %s: every partition needs a topic and replicas", path)
		}
		for _, dir := range p.LogDirs {
			if dir != "any" {
				return plan, usageErrorf("--reassignment-json-file %s: log_dirs other than \"any\" are not supported (one log directory per broker)", path)
			}
		}
	}
	return plan, nil
}

func runReassign(args []string, stdout, stderr io.Writer) error {
	var planFile *string
	var execute, verify, cancelMode, additional *bool
	var throttle *int64
	var generate *bool
	var topicsFile, brokerList *string
	_, k, err := parseKafkaCommand("partitions", reassignUsage, "reassign", args, stderr, func(fs *pflag.FlagSet) {
		planFile = fs.String("reassignment-json-file", "", "the plan, in kafka-reassign-partitions' JSON format")
		execute = fs.Bool("execute", false, "start the reassignments of the plan")
		verify = fs.Bool("verify", false, "report the plan's progress; remove the throttle once done")
		cancelMode = fs.Bool("cancel", false, "cancel the plan's reassignments in progress and remove the throttle")
		throttle = fs.Int64("throttle", -1, "with --execute: bytes per second for the catch-up traffic of added replicas, set on every broker involved; -1 leaves replication unthrottled")
		additional = fs.Bool("additional", false, "with --execute: start even though reassignments are in progress (those of the plan's partitions get the new target)")
		generate = fs.Bool("generate", false, "propose a plan for the topics of --topics-to-move-json-file over --broker-list")
		topicsFile = fs.String("topics-to-move-json-file", "", "with --generate: the topics to move, {\"version\":1,\"topics\":[{\"topic\":\"orders\"}]}")
		brokerList = fs.String("broker-list", "", "with --generate: the broker ids to place the topics on, e.g. 1,2,3")
	})
	if err != nil {
		return err
	}
	defer k.client.Close()
	modes := 0
	for _, on := range []bool{*execute, *verify, *cancelMode, *generate} {
		if on {
			modes++
		}
	}
	if modes != 1 {
		return usageErrorf("give exactly one of --execute, --verify, --cancel, --generate")
	}
	if *generate {
		if *topicsFile == "" || *brokerList == "" {
			return usageErrorf("--generate needs --topics-to-move-json-file and --broker-list")
		}
		ctx, cancel := k.context()
		defer cancel()
		return generateReassignment(ctx, k, *topicsFile, *brokerList, stdout)
	}
	if *planFile == "" {
		return usageErrorf("--reassignment-json-file is required")
	}
	plan, err := readReassignmentPlan(*planFile)
	if err != nil {
		return err
	}
	ctx, cancel := k.context()
	defer cancel()
	set := kadm.TopicsSet{}
	for _, p := range plan.Partitions {
		set.Add(p.Topic, p.Partition)
	}
	metadata, err := k.adm.Metadata(ctx, set.Topics()...)
	if err != nil {
		return fmt.Errorf("read the current assignment: %w", err)
	}
	current := func(topic string, partition int32) []int32 {
		return metadata.Topics[topic].Partitions[partition].Replicas
	}
	var statuses []ReassignmentStatus
	switch {
	case *execute:
		if !*additional {
			// As kafka-reassign-partitions: a plan does not silently
			// replace moves in progress.
			listed, err := k.adm.ListPartitionReassignments(ctx, set)
			if err != nil {
				return fmt.Errorf("list the reassignments in progress: %w", err)
			}
			if inProgress := listed.Sorted(); len(inProgress) > 0 {
				return fmt.Errorf("%d of the plan's partitions (%s[%d] first) are being reassigned already: wait for them (--verify), cancel them (--cancel), or give --additional to replace their targets",
					len(inProgress), inProgress[0].Topic, inProgress[0].Partition)
			}
		}
		rollback := ReassignmentPlan{Version: 1}
		var req kadm.AlterPartitionAssignmentsReq
		involved := map[int32]bool{}
		for _, p := range plan.Partitions {
			rollback.Partitions = append(rollback.Partitions, PartitionReassignment{Topic: p.Topic, Partition: p.Partition, Replicas: current(p.Topic, p.Partition)})
			req.Assign(p.Topic, p.Partition, p.Replicas)
			for _, r := range append(slices.Clone(p.Replicas), current(p.Topic, p.Partition)...) {
				involved[r] = true
			}
		}
		if k.output != "json" {
			encoded, _ := json.Marshal(rollback)
			fmt.Fprintf(stdout, "Current partition replica assignment (save it to roll back with --execute):\n%s\n\n", encoded)
		}
		if *throttle >= 0 {
			if err := setReplicationThrottle(ctx, k, involved, strconv.FormatInt(*throttle, 10)); err != nil {
				return err
			}
		}
		results, err := k.adm.AlterPartitionAssignments(ctx, req)
		if err != nil {
			return fmt.Errorf("start the reassignments: %w", err)
		}
		for _, r := range results.Sorted() {
			s := ReassignmentStatus{Topic: r.Topic, Partition: r.Partition, Status: "started"}
			if r.Err != nil {
				s.Status, s.Error = "failed", errorText(r.Err, r.ErrMessage)
			}
			statuses = append(statuses, s)
		}
	case *cancelMode:
		var req kadm.AlterPartitionAssignmentsReq
		for _, p := range plan.Partitions {
			req.CancelAssign(p.Topic, p.Partition)
		}
		results, err := k.adm.AlterPartitionAssignments(ctx, req)
		if err != nil {
			return fmt.Errorf("cancel the reassignments: %w", err)
		}
		for _, r := range results.Sorted() {
			s := ReassignmentStatus{Topic: r.Topic, Partition: r.Partition, Status: "cancelled"}
			switch {
			case errors.Is(r.Err, kerr.NoReassignmentInProgress):
				s.Status = "not in progress"
			case r.Err != nil:
				s.Status, s.Error = "failed", errorText(r.Err, r.ErrMessage)
			}
			statuses = append(statuses, s)
		}
		if err := removeReplicationThrottle(ctx, k, metadata.Brokers.NodeIDs()); err != nil {
			return err
		}
	default: // verify
		listed, err := k.adm.ListPartitionReassignments(ctx, set)
		if err != nil {
			return fmt.Errorf("list the reassignments: %w", err)
		}
		done := true
		for _, p := range plan.Partitions {
			s := ReassignmentStatus{Topic: p.Topic, Partition: p.Partition, Replicas: current(p.Topic, p.Partition)}
			if r, ok := listed[p.Topic][p.Partition]; ok {
				s.Status, s.Adding, s.Removing = "in progress", r.AddingReplicas, r.RemovingReplicas
				done = false
			} else if slices.Equal(s.Replicas, p.Replicas) {
				s.Status = "complete"
			} else {
				s.Status = "not on its target"
				done = false
			}
			statuses = append(statuses, s)
		}
		if done {
			if err := removeReplicationThrottle(ctx, k, metadata.Brokers.NodeIDs()); err != nil {
				return err
			}
		}
	}
	sort.Slice(statuses, func(i, j int) bool {
		if statuses[i].Topic != statuses[j].Topic {
			return statuses[i].Topic < statuses[j].Topic
		}
		return statuses[i].Partition < statuses[j].Partition
	})
	err = k.emit(stdout, statuses, func(tw *tabwriter.Writer) {
		fmt.Fprintln(tw, "TOPIC\tPARTITION\tSTATUS\tREPLICAS\tADDING\tREMOVING\tERROR")
		for _, s := range statuses {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", s.Topic, s.Partition, s.Status, ids(s.Replicas), ids(s.Adding), ids(s.Removing), s.Error)
		}
	})
	if err != nil {
		return err
	}
	for _, s := range statuses {
		if s.Error != "" {
			return fmt.Errorf("%s[%d]: %s", s.Topic, s.Partition, s.Error)
		}
	}
	return nil
}

func errorText(err error, message string) string {
	if message != "" {
		return err.Error() + ": " + message
	}
	return err.Error()
}

// throttledRates are the dynamic broker configs --throttle sets.
var throttledRates = []string{"leader.replication.throttled.rate", "follower.replication.throttled.rate"}

// setReplicationThrottle sets both throttled rates on brokers.
func setReplicationThrottle(ctx context.Context, k kafkaCommand, brokers map[int32]bool, rate string) error {
	var configs []kadm.AlterConfig
	for _, name := range throttledRates {
		configs = append(configs, kadm.AlterConfig{Op: kadm.SetConfig, Name: name, Value: &rate})
	}
	ids := make([]int32, 0, len(brokers))
	for id := range brokers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return alterBrokers(ctx, k, configs, ids, "set the replication throttle")
}

// removeReplicationThrottle deletes both throttled rates from brokers.
func removeReplicationThrottle(ctx context.Context, k kafkaCommand, brokers []int32) error {
	var configs []kadm.AlterConfig
	for _, name := range throttledRates {
		configs = append(configs, kadm.AlterConfig{Op: kadm.DeleteConfig, Name: name})
	}
	return alterBrokers(ctx, k, configs, brokers, "remove the replication throttle")
}

func alterBrokers(ctx context.Context, k kafkaCommand, configs []kadm.AlterConfig, brokers []int32, what string) error {
	if len(brokers) == 0 {
		return nil
	}
	responses, err := k.adm.AlterBrokerConfigs(ctx, configs, brokers...)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	for _, r := range responses {
		if r.Err != nil {
			return fmt.Errorf("%s on broker %s: %s", what, r.Name, errorText(r.Err, r.ErrMessage))
		}
	}
	return nil
}

// ElectionResult is one partition of `strata partitions elect`.
type ElectionResult struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Status    string `json:"status"`
	Error     string `json:"error,omitempty"`
}

func runElect(args []string, stdout, stderr io.Writer) error {
	var electionType, kafkaElectionType, topic *string
	var partitions *[]int32
	_, k, err := parseKafkaCommand("partitions", electUsage, "elect", args, stderr, func(fs *pflag.FlagSet) {
		electionType = fs.String("type", "", "preferred or unclean")
		kafkaElectionType = fs.String("election-type", "", "the same as --type (kafka-leader-election's name)")
		topic = fs.String("topic", "", "only this topic (default: every partition)")
		partitions = fs.Int32Slice("partition", nil, "only these partitions of --topic (repeatable or comma-separated; default: all)")
	})
	if err != nil {
		return err
	}
	defer k.client.Close()
	if *electionType == "" {
		electionType = kafkaElectionType
	}
	var how kadm.ElectLeadersHow
	switch strings.ToLower(*electionType) {
	case "preferred":
		how = kadm.ElectPreferredReplica
	case "unclean":
		how = kadm.ElectLiveReplica
	default:
		return usageErrorf("--type %q: preferred or unclean", *electionType)
	}
	if *topic == "" && len(*partitions) > 0 {
		return usageErrorf("--partition needs --topic")
	}
	ctx, cancel := k.context()
	defer cancel()
	var set kadm.TopicsSet // nil: every partition
	if *topic != "" {
		set = kadm.TopicsSet{}
		chosen := *partitions
		if len(chosen) == 0 {
			m, err := k.adm.Metadata(ctx, *topic)
			if err != nil {
				return err
			}
			t, ok := m.Topics[*topic]
			switch {
			case !ok:
				return fmt.Errorf("topic %q: not in the cluster's metadata answer; check the name with `strata topics list`", *topic)
			case t.Err != nil:
				return fmt.Errorf("topic %q: %w", *topic, t.Err)
			}
			for p := range t.Partitions {
				chosen = append(chosen, p)
			}
		}
		set.Add(*topic, chosen...)
	}
	results, err := k.adm.ElectLeaders(ctx, how, set)
	if err != nil {
		return fmt.Errorf("elect leaders: %w", err)
	}
	var out []ElectionResult
	failed := 0
	for topicName, byPartition := range results {
		for p, r := range byPartition {
			e := ElectionResult{Topic: topicName, Partition: p, Status: "elected"}
			switch {
			case errors.Is(r.Err, kerr.ElectionNotNeeded):
				e.Status = "not needed"
			case r.Err != nil:
				e.Status, e.Error = "failed", errorText(r.Err, r.ErrMessage)
				failed++
			}
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].Partition < out[j].Partition
	})
	if err := k.emit(stdout, out, func(tw *tabwriter.Writer) {
		fmt.Fprintln(tw, "TOPIC\tPARTITION\tSTATUS\tERROR")
		for _, e := range out {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", e.Topic, e.Partition, e.Status, e.Error)
		}
	}); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d elections failed", failed, len(out))
	}
	return nil
}

// runPartitionsReassignOrElect runs `partitions reassign` or `partitions
// elect` (args[0]).
func runPartitionsReassignOrElect(args []string, stdout, stderr io.Writer) error {
	if args[0] == "reassign" {
		return runReassign(args, stdout, stderr)
	}
	return runElect(args, stdout, stderr)
}
