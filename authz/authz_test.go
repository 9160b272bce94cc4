package authz

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func allow(principal string, op Operation, rt ResourceType, pt PatternType, name string) Binding {
	return Binding{Pattern{rt, name, pt}, Entry{principal, "*", op, PermissionAllow}}
}

func deny(principal string, op Operation, rt ResourceType, pt PatternType, name string) Binding {
	return Binding{Pattern{rt, name, pt}, Entry{principal, "*", op, PermissionDeny}}
}

func TestAuthorizeDecisionTable(t *testing.T) {
	topic := func(name string) Resource { return Resource{ResourceTopic, name} }
	hostACL := Binding{Pattern{ResourceTopic, "h", PatternLiteral}, Entry{"User:alice", "10.0.0.1", OpRead, PermissionAllow}}
	tests := []struct {
		name      string
		bindings  []Binding
		authz     Authorizer
		principal string
		host      string
		op        Operation
		resource  Resource
		want      bool
	}{
		{"no acl, default deny", nil, Authorizer{}, "User:alice", "1.2.3.4", OpRead, topic("t"), false},
		{"no acl, allow everyone", nil, Authorizer{AllowEveryoneIfNoACLFound: true}, "User:alice", "1.2.3.4", OpRead, topic("t"), true},
		{"acl for someone else on the resource: not 'no acl found'", []Binding{allow("User:bob", OpRead, ResourceTopic, PatternLiteral, "t")},
			Authorizer{AllowEveryoneIfNoACLFound: true}, "User:alice", "h", OpRead, topic("t"), false},
		{"acl on another resource leaves it unprotected", []Binding{allow("User:bob", OpRead, ResourceTopic, PatternLiteral, "u")},
			Authorizer{AllowEveryoneIfNoACLFound: true}, "User:alice", "h", OpRead, topic("t"), true},
		{"literal allow", []Binding{allow("User:alice", OpRead, ResourceTopic, PatternLiteral, "t")}, Authorizer{}, "User:alice", "h", OpRead, topic("t"), true},
		{"literal is not a prefix", []Binding{allow("User:alice", OpRead, ResourceTopic, PatternLiteral, "t")}, Authorizer{}, "User:alice", "h", OpRead, topic("tt"), false},
		{"other operation", []Binding{allow("User:alice", OpRead, ResourceTopic, PatternLiteral, "t")}, Authorizer{}, "User:alice", "h", OpWrite, topic("t"), false},
		{"other resource type", []Binding{allow("User:alice", OpRead, ResourceGroup, PatternLiteral, "t")}, Authorizer{}, "User:alice", "h", OpRead, topic("t"), false},
		{"prefixed", []Binding{allow("User:alice", OpWrite, ResourceTopic, PatternPrefixed, "orders-")}, Authorizer{}, "User:alice", "h", OpWrite, topic("orders-eu"), true},
		{"prefixed miss", []Binding{allow("User:alice", OpWrite, ResourceTopic, PatternPrefixed, "orders-")}, Authorizer{}, "User:alice", "h", OpWrite, topic("order"), false},
		{"wildcard name", []Binding{allow("User:alice", OpWrite, ResourceTopic, PatternLiteral, "*")}, Authorizer{}, "User:alice", "h", OpWrite, topic("x"), true},
		{"prefixed * is a literal prefix", []Binding{allow("User:alice", OpWrite, ResourceTopic, PatternPrefixed, "*")}, Authorizer{}, "User:alice", "h", OpWrite, topic("x"), false},
		{"wildcard principal", []Binding{allow("User:*", OpRead, ResourceTopic, PatternLiteral, "t")}, Authorizer{}, "User:ANONYMOUS", "h", OpRead, topic("t"), true},
		{"other principal", []Binding{allow("User:bob", OpRead, ResourceTopic, PatternLiteral, "t")}, Authorizer{}, "User:alice", "h", OpRead, topic("t"), false},
		{"host matches", []Binding{hostACL}, Authorizer{}, "User:alice", "10.0.0.1", OpRead, topic("h"), true},
		{"host differs", []Binding{hostACL}, Authorizer{}, "User:alice", "10.0.0.2", OpRead, topic("h"), false},
		{"deny wins over allow", []Binding{allow("User:alice", OpRead, ResourceTopic, PatternLiteral, "t"), deny("User:alice", OpRead, ResourceTopic, PatternPrefixed, "t")},
			Authorizer{}, "User:alice", "h", OpRead, topic("t"), false},
		{"deny for everyone wins over allow", []Binding{allow("User:alice", OpAll, ResourceTopic, PatternLiteral, "*"), deny("User:*", OpWrite, ResourceTopic, PatternLiteral, "t")},
			Authorizer{}, "User:alice", "h", OpWrite, topic("t"), false},
		{"deny ALL denies describe", []Binding{allow("User:alice", OpDescribe, ResourceTopic, PatternLiteral, "t"), deny("User:alice", OpAll, ResourceTopic, PatternLiteral, "t")},
			Authorizer{}, "User:alice", "h", OpDescribe, topic("t"), false},
		{"deny READ does not deny DESCRIBE", []Binding{allow("User:alice", OpDescribe, ResourceTopic, PatternLiteral, "t"), deny("User:alice", OpRead, ResourceTopic, PatternLiteral, "t")},
			Authorizer{}, "User:alice", "h", OpDescribe, topic("t"), true},
		{"allow ALL", []Binding{allow("User:alice", OpAll, ResourceTopic, PatternLiteral, "t")}, Authorizer{}, "User:alice", "h", OpDelete, topic("t"), true},
		{"READ implies DESCRIBE", []Binding{allow("User:alice", OpRead, ResourceTopic, PatternLiteral, "t")}, Authorizer{}, "User:alice", "h", OpDescribe, topic("t"), true},
		{"WRITE implies DESCRIBE", []Binding{allow("User:alice", OpWrite, ResourceTopic, PatternLiteral, "t")}, Authorizer{}, "User:alice", "h", OpDescribe, topic("t"), true},
		{"DELETE implies DESCRIBE", []Binding{allow("User:alice", OpDelete, ResourceTopic, PatternLiteral, "t")}, Authorizer{}, "User:alice", "h", OpDescribe, topic("t"), true},
		{"ALTER implies DESCRIBE", []Binding{allow("User:alice", OpAlter, ResourceTopic, PatternLiteral, "t")}, Authorizer{}, "User:alice", "h", OpDescribe, topic("t"), true},
		{"CREATE does not imply DESCRIBE", []Binding{allow("User:alice", OpCreate, ResourceTopic, PatternLiteral, "t")}, Authorizer{}, "User:alice", "h", OpDescribe, topic("t"), false},
		{"DESCRIBE does not imply READ", []Binding{allow("User:alice", OpDescribe, ResourceTopic, PatternLiteral, "t")}, Authorizer{}, "User:alice", "h", OpRead, topic("t"), false},
		{"ALTER_CONFIGS implies DESCRIBE_CONFIGS", []Binding{allow("User:alice", OpAlterConfigs, ResourceTopic, PatternLiteral, "t")}, Authorizer{}, "User:alice", "h", OpDescribeConfigs, topic("t"), true},
		{"DESCRIBE_CONFIGS does not imply ALTER_CONFIGS", []Binding{allow("User:alice", OpDescribeConfigs, ResourceTopic, PatternLiteral, "t")}, Authorizer{}, "User:alice", "h", OpAlterConfigs, topic("t"), false},
		{"super user despite deny", []Binding{deny("User:admin", OpAll, ResourceTopic, PatternLiteral, "*")}, Authorizer{SuperUsers: map[string]bool{"User:admin": true}}, "User:admin", "h", OpWrite, topic("t"), true},
		{"cluster resource", []Binding{allow("User:alice", OpIdempotentWrite, ResourceCluster, PatternLiteral, ClusterName)}, Authorizer{}, "User:alice", "h", OpIdempotentWrite, Resource{ResourceCluster, ClusterName}, true},
		{"transactional id", []Binding{allow("User:alice", OpWrite, ResourceTransactionalID, PatternPrefixed, "tx-")}, Authorizer{}, "User:alice", "h", OpWrite, Resource{ResourceTransactionalID, "tx-1"}, true},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			got := test.authz.Authorize(test.bindings, Request{test.principal, test.host, test.op, test.resource})
			if got != test.want {
				t.Fatalf("Authorize(%s %s %s %v) = %t, want %t", test.principal, test.host, test.op, test.resource, got, test.want)
			}
		})
	}
}

func TestFilterMatches(t *testing.T) {
	str := func(s string) *string { return &s }
	lit := allow("User:a", OpRead, ResourceTopic, PatternLiteral, "orders")
	wild := allow("User:a", OpRead, ResourceTopic, PatternLiteral, "*")
	pre := deny("User:b", OpWrite, ResourceTopic, PatternPrefixed, "ord")
	grp := allow("User:a", OpRead, ResourceGroup, PatternLiteral, "orders")
	all := []Binding{lit, wild, pre, grp}
	anyFilter := Filter{ResourceType: ResourceAny, PatternType: PatternAny, Operation: OpAny, Permission: PermissionAny}
	with := func(change func(*Filter)) Filter { f := anyFilter; change(&f); return f }
	tests := []struct {
		name   string
		filter Filter
		want   []Binding
	}{
		{"any", anyFilter, all},
		{"topic", with(func(f *Filter) { f.ResourceType = ResourceTopic }), []Binding{lit, wild, pre}},
		{"any pattern, name compared literally", with(func(f *Filter) { f.Name = str("orders") }), []Binding{lit, grp}},
		{"match: what applies to topic orders", with(func(f *Filter) { f.ResourceType, f.PatternType, f.Name = ResourceTopic, PatternMatch, str("orders") }), []Binding{lit, wild, pre}},
		{"literal", with(func(f *Filter) { f.PatternType = PatternLiteral }), []Binding{lit, wild, grp}},
		{"prefixed", with(func(f *Filter) { f.PatternType, f.Name = PatternPrefixed, str("ord") }), []Binding{pre}},
		{"principal", with(func(f *Filter) { f.Principal = str("User:b") }), []Binding{pre}},
		{"host", with(func(f *Filter) { f.Host = str("10.0.0.1") }), nil},
		{"operation", with(func(f *Filter) { f.Operation = OpWrite }), []Binding{pre}},
		{"permission", with(func(f *Filter) { f.Permission = PermissionAllow }), []Binding{lit, wild, grp}},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			var got []Binding
			for _, b := range all {
				if test.filter.Matches(b) {
					got = append(got, b)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(test.want) {
				t.Fatalf("got %v\nwant %v", got, test.want)
			}
		})
	}
	if err := (Filter{ResourceType: ResourceUnknown, PatternType: PatternAny, Operation: OpAny, Permission: PermissionAny}).Validate(); !errors.Is(err, ErrInvalidFilter) {
		t.Fatalf("unknown resource type: %v", err)
	}
	if err := anyFilter.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestBindingValidate(t *testing.T) {
	good := allow("User:a", OpRead, ResourceTopic, PatternLiteral, "t")
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := map[string]func(*Binding){
		"any resource type":   func(b *Binding) { b.Pattern.Type = ResourceAny },
		"match pattern":       func(b *Binding) { b.Pattern.PatternType = PatternMatch },
		"empty name":          func(b *Binding) { b.Pattern.Name = "" },
		"cluster named other": func(b *Binding) { b.Pattern.Type, b.Pattern.Name = ResourceCluster, "c" },
		"principal no type":   func(b *Binding) { b.Entry.Principal = "alice" },
		"empty host":          func(b *Binding) { b.Entry.Host = "" },
		"any operation":       func(b *Binding) { b.Entry.Operation = OpAny },
		"any permission":      func(b *Binding) { b.Entry.Permission = PermissionAny },
	}
	for name, change := range bad {
		b := good
		change(&b)
		if err := b.Validate(); !errors.Is(err, ErrInvalidBinding) {
			t.Errorf("%s: %v, want ErrInvalidBinding", name, err)
		}
	}
}

// TestAPIRequirementsMatchKafka pins APIRequirements to Kafka's documented
// table ("Operations and Resources on Protocols"), written out here in
// the documentation's own words.
func TestAPIRequirementsMatchKafka(t *testing.T) {
	kafka := map[string]string{
		"Produce":                      "WRITE TRANSACTIONAL_ID; IDEMPOTENT_WRITE CLUSTER; WRITE TOPIC",
		"Fetch":                        "CLUSTER_ACTION CLUSTER; READ TOPIC",
		"ListOffsets":                  "DESCRIBE TOPIC",
		"Metadata":                     "DESCRIBE TOPIC; CREATE CLUSTER; CREATE TOPIC",
		"OffsetCommit":                 "READ GROUP; READ TOPIC",
		"OffsetFetch":                  "DESCRIBE GROUP; DESCRIBE TOPIC",
		"FindCoordinator":              "DESCRIBE GROUP; DESCRIBE TRANSACTIONAL_ID",
		"JoinGroup":                    "READ GROUP",
		"Heartbeat":                    "READ GROUP",
		"LeaveGroup":                   "READ GROUP",
		"SyncGroup":                    "READ GROUP",
		"DescribeGroups":               "DESCRIBE GROUP",
		"ListGroups":                   "DESCRIBE CLUSTER; DESCRIBE GROUP",
		"CreateTopics":                 "CREATE CLUSTER; CREATE TOPIC; DESCRIBE_CONFIGS TOPIC",
		"DeleteTopics":                 "DELETE TOPIC",
		"DeleteRecords":                "DELETE TOPIC",
		"InitProducerID":               "WRITE TRANSACTIONAL_ID; IDEMPOTENT_WRITE CLUSTER",
		"OffsetForLeaderEpoch":         "CLUSTER_ACTION CLUSTER; DESCRIBE TOPIC",
		"AddPartitionsToTxn":           "WRITE TRANSACTIONAL_ID; WRITE TOPIC",
		"AddOffsetsToTxn":              "WRITE TRANSACTIONAL_ID; READ GROUP",
		"EndTxn":                       "WRITE TRANSACTIONAL_ID",
		"WriteTxnMarkers":              "CLUSTER_ACTION CLUSTER",
		"TxnOffsetCommit":              "WRITE TRANSACTIONAL_ID; READ GROUP; READ TOPIC",
		"DescribeACLs":                 "DESCRIBE CLUSTER",
		"CreateACLs":                   "ALTER CLUSTER",
		"DeleteACLs":                   "ALTER CLUSTER",
		"DescribeConfigs":              "DESCRIBE_CONFIGS CLUSTER; DESCRIBE_CONFIGS TOPIC",
		"AlterConfigs":                 "ALTER_CONFIGS CLUSTER; ALTER_CONFIGS TOPIC",
		"DescribeLogDirs":              "DESCRIBE CLUSTER",
		"CreatePartitions":             "ALTER TOPIC",
		"DeleteGroups":                 "DELETE GROUP",
		"ElectLeaders":                 "ALTER CLUSTER",
		"IncrementalAlterConfigs":      "ALTER_CONFIGS CLUSTER; ALTER_CONFIGS TOPIC",
		"AlterPartitionAssignments":    "ALTER CLUSTER",
		"ListPartitionReassignments":   "DESCRIBE CLUSTER",
		"OffsetDelete":                 "DELETE GROUP; READ TOPIC",
		"DescribeClientQuotas":         "DESCRIBE_CONFIGS CLUSTER",
		"AlterClientQuotas":            "ALTER_CONFIGS CLUSTER",
		"DescribeUserSCRAMCredentials": "DESCRIBE CLUSTER",
		"AlterUserSCRAMCredentials":    "ALTER CLUSTER",
		"DescribeQuorum":               "DESCRIBE CLUSTER",
		"DescribeCluster":              "DESCRIBE CLUSTER",
		"DescribeTopicPartitions":      "DESCRIBE TOPIC",
		"DescribeProducers":            "READ TOPIC",
		"DescribeTransactions":         "DESCRIBE TRANSACTIONAL_ID",
		"ListTransactions":             "DESCRIBE TRANSACTIONAL_ID",
	}
	seen := map[string]bool{}
	for key, reqs := range APIRequirements {
		name := kmsg.NameForKey(key)
		var parts []string
		for _, r := range reqs {
			parts = append(parts, r.Operation.String()+" "+r.Resource.String())
		}
		if got := strings.Join(parts, "; "); got != kafka[name] {
			t.Errorf("%s (key %d): %q, Kafka documents %q", name, key, got, kafka[name])
		}
		seen[name] = true
	}
	for name := range kafka {
		if !seen[name] {
			t.Errorf("%s is missing from APIRequirements", name)
		}
	}
	for _, key := range []int16{17, 18, 36} { // SaslHandshake, ApiVersions, SaslAuthenticate
		if _, ok := APIRequirements[key]; ok {
			t.Errorf("%s needs no authorization", kmsg.NameForKey(key))
		}
	}
}

func TestErrorCodes(t *testing.T) {
	for rt, want := range map[ResourceType]int16{ResourceTopic: 29, ResourceGroup: 30, ResourceCluster: 31, ResourceTransactionalID: 53} {
		if got := ErrorCode(rt); got != want {
			t.Errorf("%s: %d, want %d", rt, got, want)
		}
	}
}

func TestParse(t *testing.T) {
	if op, err := ParseOperation("describe-configs"); err != nil || op != OpDescribeConfigs {
		t.Fatalf("%v %v", op, err)
	}
	if _, err := ParseOperation("fly"); err == nil {
		t.Fatal("parsed fly")
	}
	if pt, err := ParsePatternType("prefixed"); err != nil || pt != PatternPrefixed {
		t.Fatalf("%v %v", pt, err)
	}
}

// TestAuthorizeIPv6Hosts: an entry's host applies to a client connecting
// from that address however it is written. Kafka compares the entry's
// host with Java's InetAddress.getHostAddress(), which writes IPv6 in full
// ("0:0:0:0:0:0:0:1"), so that is how ACLs migrated from Kafka name an
// IPv6 client; the broker's client address is Go's compressed form
// ("::1"). A DENY written either way must refuse, an ALLOW allow.
func TestAuthorizeIPv6Hosts(t *testing.T) {
	hostEntry := func(host string, perm Permission) Binding {
		return Binding{Pattern{ResourceTopic, "t", PatternLiteral}, Entry{"User:alice", host, OpRead, perm}}
	}
	everyone := allow("User:alice", OpRead, ResourceTopic, PatternLiteral, "t")
	tests := []struct {
		name     string
		bindings []Binding
		host     string
		want     bool
	}{
		{"deny in Java's form", []Binding{everyone, hostEntry("0:0:0:0:0:0:0:1", PermissionDeny)}, "::1", false},
		{"deny in Java's form, global address", []Binding{everyone, hostEntry("2001:db8:0:0:0:0:0:5", PermissionDeny)}, "2001:db8::5", false},
		{"deny in upper case", []Binding{everyone, hostEntry("2001:DB8::5", PermissionDeny)}, "2001:db8::5", false},
		{"deny of another address", []Binding{everyone, hostEntry("2001:db8:0:0:0:0:0:6", PermissionDeny)}, "2001:db8::5", true},
		{"allow in Java's form", []Binding{hostEntry("0:0:0:0:0:0:0:1", PermissionAllow)}, "::1", true},
		{"allow of another address", []Binding{hostEntry("0:0:0:0:0:0:0:2", PermissionAllow)}, "::1", false},
		{"IPv4-mapped deny", []Binding{everyone, hostEntry("::ffff:10.0.0.1", PermissionDeny)}, "10.0.0.1", false},
		{"not an address", []Binding{hostEntry("localhost", PermissionAllow)}, "127.0.0.1", false},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			a := Authorizer{}
			req := Request{"User:alice", test.host, OpRead, Resource{ResourceTopic, "t"}}
			if got := a.Authorize(test.bindings, req); got != test.want {
				t.Fatalf("Authorize from %s = %t, want %t", test.host, got, test.want)
			}
			req.Resource = Resource{Type: ResourceTopic}
			if got := a.AuthorizeByResourceType(test.bindings, req); got != test.want {
				t.Fatalf("AuthorizeByResourceType from %s = %t, want %t", test.host, got, test.want)
			}
		})
	}
}
