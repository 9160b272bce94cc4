package cli

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/broker/quota"
	"github.com/strata-log/strata/metadata"
)

// The quotas subcommands are Kafka's kafka-configs.sh --entity-type
// users/clients on the client quota admin APIs (DescribeClientQuotas,
// AlterClientQuotas, KIP-546).

const quotasUsage = `Usage: strata quotas <command> [flags]

Client quotas (Kafka admin APIs, against --bootstrap-server):
  list [entity]                    quotas of every entity, or of the one named (exactly)
  set entity [--producer-byte-rate N] [--consumer-byte-rate N]
                                   set the entity's byte rates (bytes per second)
  delete entity [--quota KEY ...]  remove the entity's quotas (default: both byte rates)

entity is --user U and/or --client-id C; --default user or --default client-id
(repeatable) names the default user or client id instead, e.g. --user alice
--default client-id is every client of alice's without a quota of its own.
A user is the authenticated principal's name (ANONYMOUS without
authentication). Each client gets the first quota of: user+client-id,
user+default client-id, user, default user+client-id, default user+default
client-id, default user, client-id, default client-id (Kafka's order).
Strata enforces producer_byte_rate and consumer_byte_rate; request_percentage
and controller_mutation_rate are refused.

Flags:
`

// QuotaInfo is one entity's quota of `strata quotas list`.
type QuotaInfo struct {
	User     *string `json:"user,omitempty"`      // "<default>" for the default user
	ClientID *string `json:"client_id,omitempty"` // "<default>" for the default client id
	Key      string  `json:"key"`
	Value    float64 `json:"value"`
}

// quotaEntityFlags name an entity.
type quotaEntityFlags struct {
	user, clientID string
	defaults       []string
}

func (f *quotaEntityFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.user, "user", "", "the user (principal name) the quota applies to")
	fs.StringVar(&f.clientID, "client-id", "", "the client id the quota applies to")
	fs.StringArrayVar(&f.defaults, "default", nil, "user or client-id: the default user or client id (repeatable)")
}

// entity is the named entity; empty when nothing names one.
func (f *quotaEntityFlags) entity() (kadm.ClientQuotaEntity, error) {
	var entity kadm.ClientQuotaEntity
	defaults := map[string]bool{}
	for _, d := range f.defaults {
		switch d {
		case "user", "client-id":
			defaults[d] = true
		default:
			return nil, usageErrorf("--default %q: user or client-id", d)
		}
	}
	for _, part := range []struct{ typ, name string }{{"user", f.user}, {"client-id", f.clientID}} {
		switch {
		case part.name != "" && defaults[part.typ]:
			return nil, usageErrorf("give --%s or --default %s, not both", part.typ, part.typ)
		case part.name != "":
			name := part.name
			entity = append(entity, kadm.ClientQuotaEntityComponent{Type: part.typ, Name: &name})
		case defaults[part.typ]:
			entity = append(entity, kadm.ClientQuotaEntityComponent{Type: part.typ})
		}
	}
	return entity, nil
}

func runQuotas(args []string, stdout, stderr io.Writer) error {
	var entityFlags quotaEntityFlags
	var producerRate, consumerRate *int64
	var keys *[]string
	sub, k, err := parseKafkaCommand("quotas", quotasUsage, "list, set, delete", args, stderr, func(fs *pflag.FlagSet) {
		entityFlags.register(fs)
		producerRate = fs.Int64("producer-byte-rate", 0, "producer_byte_rate: bytes per second the entity's producers may send (set)")
		consumerRate = fs.Int64("consumer-byte-rate", 0, "consumer_byte_rate: bytes per second the entity's consumers may fetch (set)")
		keys = fs.StringArray("quota", nil, "quota key to remove, producer_byte_rate or consumer_byte_rate (delete; repeatable; default both)")
	})
	if err != nil {
		return err
	}
	defer k.client.Close()
	entity, err := entityFlags.entity()
	if err != nil {
		return err
	}
	if sub != "list" && sub != "set" && sub != "delete" {
		return usageErrorf("unknown subcommand %q (list, set, delete)", sub)
	}
	if sub != "list" && len(entity) == 0 {
		return usageErrorf("name the entity: --user U, --client-id C, --default user, --default client-id")
	}
	ctx, cancel := k.context()
	defer cancel()
	switch sub {
	case "list":
		var components []kadm.DescribeClientQuotaComponent
		for _, part := range entity {
			c := kadm.DescribeClientQuotaComponent{Type: part.Type, MatchName: part.Name, MatchType: kmsg.QuotasMatchTypeExact}
			if part.Name == nil {
				c.MatchType = kmsg.QuotasMatchTypeDefault
			}
			components = append(components, c)
		}
		described, err := k.adm.DescribeClientQuotas(ctx, len(components) > 0, components)
		if err != nil {
			return err
		}
		rows := []QuotaInfo{}
		for _, d := range described {
			for _, v := range d.Values {
				row := QuotaInfo{Key: v.Key, Value: v.Value}
				for _, part := range d.Entity {
					name := "<default>"
					if part.Name != nil {
						name = *part.Name
					}
					switch part.Type {
					case "user":
						row.User = &name
					case "client-id":
						row.ClientID = &name
					}
				}
				rows = append(rows, row)
			}
		}
		sort.Slice(rows, func(i, j int) bool { return quotaRowKey(rows[i]) < quotaRowKey(rows[j]) })
		return k.emit(stdout, rows, func(tw *tabwriter.Writer) {
			fmt.Fprintln(tw, "USER\tCLIENT-ID\tQUOTA\tVALUE")
			for _, r := range rows {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", orDash(r.User), orDash(r.ClientID), r.Key, strconv.FormatFloat(r.Value, 'f', -1, 64))
			}
		})
	case "set", "delete":
		var ops []kadm.AlterClientQuotaOp
		if sub == "set" {
			for key, value := range map[string]int64{metadata.ProducerByteRate: *producerRate, metadata.ConsumerByteRate: *consumerRate} {
				switch {
				case value < 0:
					return usageErrorf("--%s %d: must be at least 1", strings.ReplaceAll(key, "_", "-"), value)
				case value > 0:
					ops = append(ops, kadm.AlterClientQuotaOp{Key: key, Value: float64(value)})
				}
			}
			if len(ops) == 0 {
				return usageErrorf("give --producer-byte-rate and/or --consumer-byte-rate")
			}
		} else {
			removed := *keys
			if len(removed) == 0 {
				removed = []string{metadata.ProducerByteRate, metadata.ConsumerByteRate}
			}
			for _, key := range removed {
				ops = append(ops, kadm.AlterClientQuotaOp{Key: key, Remove: true})
			}
		}
		sort.Slice(ops, func(i, j int) bool { return ops[i].Key < ops[j].Key })
		results, err := k.adm.AlterClientQuotas(ctx, []kadm.AlterClientQuotaEntry{{Entity: entity, Ops: ops}})
		if err != nil {
			return err
		}
		for _, r := range results {
			if r.Err != nil {
				return fmt.Errorf("%s: %v %s", r.Entity, r.Err, r.ErrMessage)
			}
		}
		fmt.Fprintf(stdout, "%s: %s\n", entity, map[string]string{"set": "quotas set", "delete": "quotas removed"}[sub])
		return nil
	}
	return usageErrorf("unknown subcommand %q (list, set, delete)", sub)
}

func quotaRowKey(r QuotaInfo) string {
	return orDash(r.User) + "\x00" + orDash(r.ClientID) + "\x00" + r.Key
}

func orDash(s *string) string {
	if s == nil {
		return "-"
	}
	return *s
}

// quotaFlags are the broker's client quota flags (Kafka's
// quota.window.num and quota.window.size.seconds).
type quotaFlags struct {
	windowNum         int
	windowSizeSeconds int
}

func addQuotaFlags(fs *pflag.FlagSet) *quotaFlags {
	f := &quotaFlags{}
	fs.IntVar(&f.windowNum, "quota-window-num", 11, "samples a client's byte rate is measured over, for client quotas (quota.window.num)")
	fs.IntVar(&f.windowSizeSeconds, "quota-window-size-seconds", 1, "span of each client quota sample, in seconds (quota.window.size.seconds)")
	return f
}

// config is the broker's quota.Config, or a usage error.
func (f *quotaFlags) config() (quota.Config, error) {
	cfg := quota.Config{WindowNum: f.windowNum, WindowSize: time.Duration(f.windowSizeSeconds) * time.Second}
	if f.windowSizeSeconds < 1 {
		return cfg, usageErrorf("--quota-window-size-seconds %d: must be at least 1", f.windowSizeSeconds)
	}
	if f.windowNum < 2 {
		return cfg, usageErrorf("--quota-window-num %d: must be at least 2", f.windowNum)
	}
	return cfg, nil
}
