package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The topics, partitions and groups subcommands speak the Kafka admin APIs
// (franz-go's kadm), so they work against any Kafka cluster, not only
// Strata.

const topicsUsage = `Usage: strata topics <command> [flags]

Commands (Kafka admin APIs, against --bootstrap-server):
  list                                             topics with partition count and replication factor
  describe --topic T                               partitions (leader, replicas, ISR, epoch) and configs set on the topic
  create --topic T [--partitions N] [--replication-factor R] [--config k=v ...]
  delete --topic T
  alter-config --topic T [--set k=v ...] [--delete k ...]

Flags:
`

const partitionsUsage = `Usage: strata partitions <command> [flags]

Commands (Kafka admin APIs, against --bootstrap-server):
  list [--topic T ...]     every partition's leader, epoch, ISR and offsets (Kafka
                           ListOffsets): log start (remote data included), local log
                           start (-4), remote log end (-5, tiered topics), high watermark
  delete-records --topic T --offset O [--partition N ...]
                           delete the records below offset O (-1: every committed record)
                           of the partitions (default all): Kafka DeleteRecords moves
                           their log start offset, on tiered topics in the object store too

Flags:
`

const groupsUsage = `Usage: strata groups <command> [flags]

Commands (Kafka admin APIs, against --bootstrap-server):
  list                                   groups with their state
  describe --group G                     members and their assignments
  lag [--group G ...]                    committed offset, end offset and lag per partition
  reset-offsets --group G --topic T (--to-earliest | --to-latest | --to-offset N) [--execute]
                                         move an empty group's committed offsets; without
                                         --execute only prints the plan

Flags:
`

// kafkaCommand is a parsed Kafka admin subcommand: its admin client and
// output settings.
type kafkaCommand struct {
	commonFlags
	adm    *kadm.Client
	client *kgo.Client
}

func parseKafkaCommand(group, usage, subs string, args []string, stderr io.Writer, extra func(*pflag.FlagSet)) (string, kafkaCommand, error) {
	var bootstrap, commandConfig *string
	sub, common, err := parseSubcommand(group, usage, subs, "--bootstrap-server HOST:PORT,...   brokers to connect to (default 127.0.0.1:9092)\n  --command-config FILE   client properties (librdkafka names: security.protocol, sasl.mechanism, sasl.username, sasl.password, ssl.ca.location, ...)", 30*time.Second, args, stderr, func(fs *pflag.FlagSet) {
		bootstrap = fs.String("bootstrap-server", "127.0.0.1:9092", "brokers to connect to, HOST:PORT,...")
		commandConfig = fs.String("command-config", "", "file of client properties, key=value lines with librdkafka's names (security.protocol, sasl.mechanism, sasl.username, sasl.password, sasl.jaas.config, ssl.ca.location, ssl.certificate.location, ssl.key.location)")
		if extra != nil {
			extra(fs)
		}
	})
	if err != nil {
		return "", kafkaCommand{}, err
	}
	opts := []kgo.Opt{kgo.SeedBrokers(strings.Split(*bootstrap, ",")...), kgo.RetryTimeout(common.timeout)}
	if *commandConfig != "" {
		more, err := commandConfigOpts(*commandConfig)
		if err != nil {
			return "", kafkaCommand{}, usageErrorf("--command-config: %v", err)
		}
		opts = append(opts, more...)
	}
	client, err := kgo.NewClient(opts...)
	if err != nil {
		return "", kafkaCommand{}, usageErrorf("--bootstrap-server %q: %v", *bootstrap, err)
	}
	return sub, kafkaCommand{commonFlags: common, adm: kadm.NewClient(client), client: client}, nil
}

func (k kafkaCommand) context() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), k.timeout)
}

// emit prints v as JSON, or calls table.
func (k kafkaCommand) emit(stdout io.Writer, v any, table func(tw *tabwriter.Writer)) error {
	if k.output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

func ids(v []int32) string {
	parts := make([]string, len(v))
	for i, id := range v {
		parts[i] = fmt.Sprint(id)
	}
	return strings.Join(parts, ",")
}

// keyValues parses repeated k=v flags.
func keyValues(flag string, values []string) (map[string]*string, error) {
	out := map[string]*string{}
	for _, kv := range values {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usageErrorf("%s %q: want name=value", flag, kv)
		}
		out[k] = &v
	}
	return out, nil
}

// TopicInfo is one topic of `strata topics list`.
type TopicInfo struct {
	Name              string `json:"name"`
	ID                string `json:"id"`
	Partitions        int    `json:"partitions"`
	ReplicationFactor int    `json:"replication_factor"`
	Internal          bool   `json:"internal"`
}

// PartitionInfo is one partition of `strata topics describe` and
// `strata partitions list`; offsets are -1 when unknown.
type PartitionInfo struct {
	Topic         string  `json:"topic"`
	Partition     int32   `json:"partition"`
	Leader        int32   `json:"leader"`
	LeaderEpoch   int32   `json:"leader_epoch"`
	Replicas      []int32 `json:"replicas"`
	ISR           []int32 `json:"isr"`
	LogStart      int64   `json:"log_start"`
	LocalStart    int64   `json:"local_start"`
	RemoteEnd     int64   `json:"remote_end"`
	HighWatermark int64   `json:"high_watermark"`
	Error         string  `json:"error,omitempty"`
}

func runTopics(args []string, stdout, stderr io.Writer) error {
	var topic *string
	var partitions *int32
	var rf *int16
	var configs, sets, deletes *[]string
	sub, k, err := parseKafkaCommand("topics", topicsUsage, "list, describe, create, delete, alter-config", args, stderr, func(fs *pflag.FlagSet) {
		topic = fs.String("topic", "", "the topic (describe, create, delete, alter-config)")
		partitions = fs.Int32("partitions", -1, "partition count (create; default: the broker's num.partitions)")
		rf = fs.Int16("replication-factor", -1, "replication factor (create; default: the broker's default)")
		configs = fs.StringArray("config", nil, "topic config name=value (create; repeatable)")
		sets = fs.StringArray("set", nil, "config to set, name=value (alter-config; repeatable)")
		deletes = fs.StringArray("delete", nil, "config to remove, back to its default (alter-config; repeatable)")
	})
	if err != nil {
		return err
	}
	defer k.client.Close()
	ctx, cancel := k.context()
	defer cancel()
	if sub != "list" && *topic == "" {
		return usageErrorf("--topic is required")
	}
	switch sub {
	case "list":
		details, err := k.adm.ListTopics(ctx)
		if err != nil {
			return err
		}
		var out []TopicInfo
		for _, t := range details.Sorted() {
			if t.Err != nil {
				continue
			}
			out = append(out, TopicInfo{Name: t.Topic, ID: t.ID.String(), Partitions: len(t.Partitions), ReplicationFactor: t.Partitions.NumReplicas(), Internal: t.IsInternal})
		}
		return k.emit(stdout, out, func(tw *tabwriter.Writer) {
			fmt.Fprintln(tw, "TOPIC\tPARTITIONS\tREPLICATION\tINTERNAL\tID")
			for _, t := range out {
				fmt.Fprintf(tw, "%s\t%d\t%d\t%t\t%s\n", t.Name, t.Partitions, t.ReplicationFactor, t.Internal, t.ID)
			}
		})
	case "describe":
		parts, err := describePartitions(ctx, k, []string{*topic})
		if err != nil {
			return err
		}
		rcs, err := k.adm.DescribeTopicConfigs(ctx, *topic)
		if err != nil {
			return err
		}
		set := map[string]string{}
		for _, rc := range rcs {
			if rc.Err != nil {
				return fmt.Errorf("configs of %s: %w", *topic, rc.Err)
			}
			for _, c := range rc.Configs {
				if c.Source == kmsg.ConfigSourceDynamicTopicConfig {
					set[c.Key] = c.MaybeValue()
				}
			}
		}
		v := struct {
			Topic      string            `json:"topic"`
			Partitions []PartitionInfo   `json:"partitions"`
			Configs    map[string]string `json:"configs"`
		}{*topic, parts, set}
		return k.emit(stdout, v, func(tw *tabwriter.Writer) {
			fmt.Fprintf(tw, "topic %s\n\n", *topic)
			partitionTable(tw, parts)
			fmt.Fprintln(tw, "\t")
			fmt.Fprintln(tw, "CONFIG (set on the topic)\tVALUE")
			names := make([]string, 0, len(set))
			for n := range set {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				fmt.Fprintf(tw, "%s\t%s\n", n, set[n])
			}
		})
	case "create":
		cfg, err := keyValues("--config", *configs)
		if err != nil {
			return err
		}
		resps, err := k.adm.CreateTopics(ctx, *partitions, *rf, cfg, *topic)
		if err != nil {
			return err
		}
		r, _ := resps.On(*topic, nil)
		if r.Err != nil {
			return fmt.Errorf("create %s: %w: %s", *topic, r.Err, r.ErrMessage)
		}
		return k.emit(stdout, map[string]any{"topic": *topic, "id": r.ID.String(), "created": true}, func(tw *tabwriter.Writer) {
			fmt.Fprintf(tw, "created topic %s (%s)\n", *topic, r.ID)
		})
	case "delete":
		resps, err := k.adm.DeleteTopics(ctx, *topic)
		if err != nil {
			return err
		}
		if r, _ := resps.On(*topic, nil); r.Err != nil {
			return fmt.Errorf("delete %s: %w: %s", *topic, r.Err, r.ErrMessage)
		}
		return k.emit(stdout, map[string]any{"topic": *topic, "deleted": true}, func(tw *tabwriter.Writer) {
			fmt.Fprintf(tw, "deleted topic %s\n", *topic)
		})
	case "alter-config":
		set, err := keyValues("--set", *sets)
		if err != nil {
			return err
		}
		var alters []kadm.AlterConfig
		for n, v := range set {
			alters = append(alters, kadm.AlterConfig{Op: kadm.SetConfig, Name: n, Value: v})
		}
		for _, n := range *deletes {
			alters = append(alters, kadm.AlterConfig{Op: kadm.DeleteConfig, Name: n})
		}
		if len(alters) == 0 {
			return usageErrorf("nothing to change: give --set name=value or --delete name")
		}
		resps, err := k.adm.AlterTopicConfigs(ctx, alters, *topic)
		if err != nil {
			return err
		}
		r, err := resps.On(*topic, nil)
		if err != nil {
			return err
		}
		if r.Err != nil {
			return fmt.Errorf("alter %s: %w: %s", *topic, r.Err, r.ErrMessage)
		}
		return k.emit(stdout, map[string]any{"topic": *topic, "altered": len(alters)}, func(tw *tabwriter.Writer) {
			fmt.Fprintf(tw, "altered %d config(s) of %s\n", len(alters), *topic)
		})
	}
	return usageErrorf("unknown subcommand %q (list, describe, create, delete, alter-config)", sub)
}

func partitionTable(tw *tabwriter.Writer, parts []PartitionInfo) {
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tLEADER\tEPOCH\tREPLICAS\tISR\tLOG START\tLOCAL START\tREMOTE END\tHIGH WATERMARK")
	for _, p := range parts {
		offset := func(o int64) string {
			if o < 0 {
				return "-"
			}
			return fmt.Sprint(o)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Topic, p.Partition, p.Leader, p.LeaderEpoch, ids(p.Replicas), ids(p.ISR),
			offset(p.LogStart), offset(p.LocalStart), offset(p.RemoteEnd), offset(p.HighWatermark))
	}
}

// describePartitions reads the partitions of topics (all when none) with
// Metadata and ListOffsets (earliest, earliest local, latest tiered,
// latest).
func describePartitions(ctx context.Context, k kafkaCommand, topics []string) ([]PartitionInfo, error) {
	details, err := k.adm.ListTopics(ctx, topics...)
	if err != nil {
		return nil, err
	}
	var out []PartitionInfo
	for _, t := range details.Sorted() {
		if t.Err != nil {
			return nil, fmt.Errorf("topic %s: %w", t.Topic, t.Err)
		}
		for _, p := range t.Partitions.Sorted() {
			out = append(out, PartitionInfo{Topic: t.Topic, Partition: p.Partition, Leader: p.Leader, LeaderEpoch: p.LeaderEpoch,
				Replicas: p.Replicas, ISR: p.ISR, LogStart: -1, LocalStart: -1, RemoteEnd: -1, HighWatermark: -1})
		}
	}
	for _, special := range []struct {
		timestamp int64
		set       func(*PartitionInfo, int64)
	}{
		{-2, func(p *PartitionInfo, o int64) { p.LogStart = o }},
		{-4, func(p *PartitionInfo, o int64) { p.LocalStart = o }},
		{-5, func(p *PartitionInfo, o int64) {
			if o >= 0 {
				p.RemoteEnd = o + 1
			}
		}},
		{-1, func(p *PartitionInfo, o int64) { p.HighWatermark = o }},
	} {
		req := kmsg.NewPtrListOffsetsRequest()
		byTopic := map[string]int{}
		for _, p := range out {
			i, ok := byTopic[p.Topic]
			if !ok {
				i = len(req.Topics)
				byTopic[p.Topic] = i
				rt := kmsg.NewListOffsetsRequestTopic()
				rt.Topic = p.Topic
				req.Topics = append(req.Topics, rt)
			}
			rp := kmsg.NewListOffsetsRequestTopicPartition()
			rp.Partition, rp.Timestamp, rp.CurrentLeaderEpoch = p.Partition, special.timestamp, -1
			req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
		}
		for _, shard := range k.client.RequestSharded(ctx, req) {
			if shard.Err != nil {
				continue // that broker is unreachable: its partitions keep -1
			}
			for _, rt := range shard.Resp.(*kmsg.ListOffsetsResponse).Topics {
				for _, rp := range rt.Partitions {
					for i := range out {
						if out[i].Topic != rt.Topic || out[i].Partition != rp.Partition {
							continue
						}
						if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
							if !errors.Is(err, kerr.UnsupportedVersion) {
								out[i].Error = err.Error()
							}
							continue
						}
						special.set(&out[i], rp.Offset)
					}
				}
			}
		}
	}
	return out, nil
}

func runPartitions(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && (args[0] == "reassign" || args[0] == "elect") {
		return runPartitionsReassignOrElect(args, stdout, stderr) // reassign.go
	}
	var topics *[]string
	var partitions *[]int32
	var offset *int64
	sub, k, err := parseKafkaCommand("partitions", partitionsUsage, "list, delete-records", args, stderr, func(fs *pflag.FlagSet) {
		topics = fs.StringArray("topic", nil, "only these topics (repeatable; default all); delete-records: the one topic")
		partitions = fs.Int32Slice("partition", nil, "delete-records: only these partitions (repeatable; default all)")
		offset = fs.Int64("offset", -2, "delete-records: delete the records below this offset (-1: up to the high watermark)")
	})
	if err != nil {
		return err
	}
	defer k.client.Close()
	ctx, cancel := k.context()
	defer cancel()
	switch sub {
	case "list":
	case "delete-records":
		if len(*topics) != 1 {
			return usageErrorf("delete-records: give exactly one --topic")
		}
		if *offset < -1 {
			return usageErrorf("delete-records: give --offset O (at least 0, or -1 for the high watermark)")
		}
		deleted, err := deleteRecords(ctx, k, (*topics)[0], *partitions, *offset)
		if err != nil {
			return err
		}
		if err := k.emit(stdout, deleted, func(tw *tabwriter.Writer) {
			fmt.Fprintln(tw, "TOPIC\tPARTITION\tLOW WATERMARK\tERROR")
			for _, d := range deleted {
				fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", d.Topic, d.Partition, d.LowWatermark, d.Error)
			}
		}); err != nil {
			return err
		}
		for _, d := range deleted {
			if d.Error != "" {
				return fmt.Errorf("DeleteRecords failed on %d partition(s)", countFailed(deleted))
			}
		}
		return nil
	default:
		return usageErrorf("unknown subcommand %q (list, delete-records)", sub)
	}
	parts, err := describePartitions(ctx, k, *topics)
	if err != nil {
		return err
	}
	return k.emit(stdout, parts, func(tw *tabwriter.Writer) { partitionTable(tw, parts) })
}

// GroupLag is one partition of `strata groups lag`.
type GroupLag struct {
	Group     string `json:"group"`
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Committed int64  `json:"committed"`
	End       int64  `json:"end"`
	Lag       int64  `json:"lag"`
	Member    string `json:"member,omitempty"`
}

func runGroups(args []string, stdout, stderr io.Writer) error {
	var groups *[]string
	var topic *string
	var toEarliest, toLatest, execute *bool
	var toOffset *int64
	sub, k, err := parseKafkaCommand("groups", groupsUsage, "list, describe, lag, reset-offsets", args, stderr, func(fs *pflag.FlagSet) {
		groups = fs.StringArray("group", nil, "the group (repeatable for lag)")
		topic = fs.String("topic", "", "the topic whose offsets to reset (reset-offsets)")
		toEarliest = fs.Bool("to-earliest", false, "reset to the log start (reset-offsets)")
		toLatest = fs.Bool("to-latest", false, "reset to the end (reset-offsets)")
		toOffset = fs.Int64("to-offset", -1, "reset to this offset (reset-offsets)")
		execute = fs.Bool("execute", false, "commit the new offsets (reset-offsets; without it only the plan is printed)")
	})
	if err != nil {
		return err
	}
	defer k.client.Close()
	ctx, cancel := k.context()
	defer cancel()
	switch sub {
	case "list":
		listed, err := k.adm.ListGroups(ctx)
		if err != nil {
			return err
		}
		type groupInfo struct {
			Group, State, ProtocolType string
			Coordinator                int32
		}
		var out []groupInfo
		for _, g := range listed.Sorted() {
			out = append(out, groupInfo{g.Group, g.State, g.ProtocolType, g.Coordinator})
		}
		return k.emit(stdout, out, func(tw *tabwriter.Writer) {
			fmt.Fprintln(tw, "GROUP\tSTATE\tPROTOCOL TYPE\tCOORDINATOR")
			for _, g := range out {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", g.Group, g.State, g.ProtocolType, g.Coordinator)
			}
		})
	case "describe":
		if len(*groups) != 1 {
			return usageErrorf("--group is required (once)")
		}
		described, err := k.adm.DescribeGroups(ctx, (*groups)[0])
		if err != nil {
			return err
		}
		g := described[(*groups)[0]]
		if g.Err != nil {
			return fmt.Errorf("describe %s: %w", g.Group, g.Err)
		}
		type member struct {
			ID, ClientID, Host string
			Assigned           map[string][]int32
		}
		var members []member
		for _, m := range g.Members {
			mm := member{ID: m.MemberID, ClientID: m.ClientID, Host: m.ClientHost, Assigned: map[string][]int32{}}
			if a, ok := m.Assigned.AsConsumer(); ok {
				for _, t := range a.Topics {
					mm.Assigned[t.Topic] = t.Partitions
				}
			}
			members = append(members, mm)
		}
		v := map[string]any{"group": g.Group, "state": g.State, "protocol": g.Protocol, "members": members}
		return k.emit(stdout, v, func(tw *tabwriter.Writer) {
			fmt.Fprintf(tw, "group %s: %s, protocol %s, %d members\n\n", g.Group, g.State, g.Protocol, len(members))
			fmt.Fprintln(tw, "MEMBER\tCLIENT\tHOST\tASSIGNED")
			for _, m := range members {
				var parts []string
				for t, ps := range m.Assigned {
					parts = append(parts, fmt.Sprintf("%s:%s", t, ids(ps)))
				}
				sort.Strings(parts)
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.ID, m.ClientID, m.Host, strings.Join(parts, " "))
			}
		})
	case "lag":
		lags, err := k.adm.Lag(ctx, *groups...)
		if err != nil {
			return err
		}
		var out []GroupLag
		for _, l := range lags.Sorted() {
			if l.Error() != nil {
				return fmt.Errorf("lag of %s: %w", l.Group, l.Error())
			}
			for _, ml := range l.Lag.Sorted() {
				gl := GroupLag{Group: l.Group, Topic: ml.Topic, Partition: ml.Partition, Committed: ml.Commit.At, End: ml.End.Offset, Lag: ml.Lag}
				if ml.Member != nil {
					gl.Member = ml.Member.MemberID
				}
				out = append(out, gl)
			}
		}
		return k.emit(stdout, out, func(tw *tabwriter.Writer) {
			fmt.Fprintln(tw, "GROUP\tTOPIC\tPARTITION\tCOMMITTED\tEND\tLAG\tMEMBER")
			for _, l := range out {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\n", l.Group, l.Topic, l.Partition, l.Committed, l.End, l.Lag, l.Member)
			}
		})
	case "reset-offsets":
		if len(*groups) != 1 || *topic == "" {
			return usageErrorf("--group (once) and --topic are required")
		}
		chosen := 0
		for _, b := range []bool{*toEarliest, *toLatest, *toOffset >= 0} {
			if b {
				chosen++
			}
		}
		if chosen != 1 {
			return usageErrorf("give exactly one of --to-earliest, --to-latest, --to-offset N")
		}
		group := (*groups)[0]
		described, err := k.adm.DescribeGroups(ctx, group)
		if err != nil {
			return err
		}
		if g := described[group]; g.State != "Empty" && g.State != "Dead" && g.State != "" {
			return fmt.Errorf("group %s is %s: offsets can only be reset while it has no members (stop its consumers first)", group, g.State)
		}
		var listed kadm.ListedOffsets
		switch {
		case *toEarliest:
			listed, err = k.adm.ListStartOffsets(ctx, *topic)
		default:
			listed, err = k.adm.ListEndOffsets(ctx, *topic)
		}
		if err != nil {
			return err
		}
		offsets := kadm.Offsets{}
		var plan []GroupLag
		listed.Each(func(o kadm.ListedOffset) {
			at := o.Offset
			if *toOffset >= 0 {
				at = *toOffset
			}
			offsets.Add(kadm.Offset{Topic: o.Topic, Partition: o.Partition, At: at, LeaderEpoch: -1})
			plan = append(plan, GroupLag{Group: group, Topic: o.Topic, Partition: o.Partition, Committed: at, End: o.Offset})
		})
		sort.Slice(plan, func(i, j int) bool { return plan[i].Partition < plan[j].Partition })
		if *execute {
			resps, err := k.adm.CommitOffsets(ctx, group, offsets)
			if err != nil {
				return err
			}
			if err := resps.Error(); err != nil {
				return fmt.Errorf("commit: %w", err)
			}
		}
		return k.emit(stdout, map[string]any{"group": group, "executed": *execute, "offsets": plan}, func(tw *tabwriter.Writer) {
			if *execute {
				fmt.Fprintf(tw, "reset the offsets of group %s on %s:\n", group, *topic)
			} else {
				fmt.Fprintf(tw, "plan (dry run; add --execute to commit) for group %s on %s:\n", group, *topic)
			}
			fmt.Fprintln(tw, "TOPIC\tPARTITION\tNEW OFFSET")
			for _, p := range plan {
				fmt.Fprintf(tw, "%s\t%d\t%d\n", p.Topic, p.Partition, p.Committed)
			}
		})
	}
	return usageErrorf("unknown subcommand %q (list, describe, lag, reset-offsets)", sub)
}

// DeletedRecords is one partition of `strata partitions delete-records`:
// its new log start offset (Kafka's low watermark), or the error.
type DeletedRecords struct {
	Topic        string `json:"topic"`
	Partition    int32  `json:"partition"`
	LowWatermark int64  `json:"low_watermark"`
	Error        string `json:"error,omitempty"`
}

// deleteRecords asks DeleteRecords for the topic's partitions (all when
// none are given) below offset.
func deleteRecords(ctx context.Context, k kafkaCommand, topic string, partitions []int32, offset int64) ([]DeletedRecords, error) {
	if len(partitions) == 0 {
		details, err := k.adm.ListTopics(ctx, topic)
		if err != nil {
			return nil, err
		}
		d, ok := details[topic]
		switch {
		case !ok:
			return nil, fmt.Errorf("topic %q: not in the cluster's metadata answer; check the name with `strata topics list`", topic)
		case d.Err != nil:
			return nil, fmt.Errorf("topic %q: %w", topic, d.Err)
		}
		partitions = d.Partitions.Numbers()
	}
	offsets := kadm.Offsets{}
	for _, p := range partitions {
		offsets.AddOffset(topic, p, offset, -1)
	}
	resp, err := k.adm.DeleteRecords(ctx, offsets)
	if err != nil {
		return nil, err
	}
	var out []DeletedRecords
	resp.Each(func(r kadm.DeleteRecordsResponse) {
		d := DeletedRecords{Topic: r.Topic, Partition: r.Partition, LowWatermark: r.LowWatermark}
		if r.Err != nil {
			d.Error, d.LowWatermark = r.Err.Error(), -1
		}
		out = append(out, d)
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Partition < out[j].Partition })
	return out, nil
}

func countFailed(deleted []DeletedRecords) int {
	n := 0
	for _, d := range deleted {
		if d.Error != "" {
			n++
		}
	}
	return n
}
