package broker_test

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/strata-log/strata/broker/brokertest"
)

func describedACLs(t *testing.T, adm *kadm.Client, b *kadm.ACLBuilder) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	results, err := adm.DescribeACLs(ctx, b)
	if err != nil {
		t.Fatalf("DescribeACLs: %v", err)
	}
	var out []string
	for _, r := range results {
		if r.Err != nil {
			t.Fatalf("DescribeACLs: %v (%s)", r.Err, r.ErrMessage)
		}
		for _, d := range r.Described {
			out = append(out, d.Principal+" "+d.Host+" "+d.Permission.String()+" "+d.Operation.String()+" "+d.Type.String()+":"+d.Pattern.String()+":"+d.Name)
		}
	}
	sort.Strings(out)
	return out
}

// TestACLsCreateDescribeDelete: kadm creates ACLs, lists them with
// filters (ANY, MATCH, by principal), deletes some by filter; they survive
// a restart of the node (they live in the metadata quorum).
func TestACLsCreateDescribeDelete(t *testing.T) {
	n := brokertest.Start(t)
	adm := kadm.NewClient(n.Client())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	create := func(b *kadm.ACLBuilder) {
		t.Helper()
		results, err := adm.CreateACLs(ctx, b)
		if err != nil {
			t.Fatalf("CreateACLs: %v", err)
		}
		for _, r := range results {
			if r.Err != nil {
				t.Fatalf("CreateACLs %s: %v (%s)", r.Name, r.Err, r.ErrMessage)
			}
		}
	}
	create(kadm.NewACLs().Allow("User:alice").Topics("orders").Operations(kadm.OpWrite, kadm.OpRead).ResourcePatternType(kadm.ACLPatternLiteral))
	create(kadm.NewACLs().Deny("User:bob").DenyHosts("10.0.0.9").Topics("ord").Operations(kadm.OpAll).ResourcePatternType(kadm.ACLPatternPrefixed))
	create(kadm.NewACLs().Allow("User:alice").Groups("g").Operations(kadm.OpRead).ResourcePatternType(kadm.ACLPatternLiteral))
	create(kadm.NewACLs().Allow("User:alice").Clusters().Operations(kadm.OpIdempotentWrite).ResourcePatternType(kadm.ACLPatternLiteral))
	// Creating one again changes nothing.
	create(kadm.NewACLs().Allow("User:alice").Topics("orders").Operations(kadm.OpWrite).ResourcePatternType(kadm.ACLPatternLiteral))

	all := describedACLs(t, adm, kadm.NewACLs().AnyResource().Allow().Deny().AllowHosts().DenyHosts().Operations(kadm.OpAny).ResourcePatternType(kadm.ACLPatternAny))
	want := []string{
		"User:alice * ALLOW IDEMPOTENT_WRITE CLUSTER:LITERAL:kafka-cluster",
		"User:alice * ALLOW READ GROUP:LITERAL:g",
		"User:alice * ALLOW READ TOPIC:LITERAL:orders",
		"User:alice * ALLOW WRITE TOPIC:LITERAL:orders",
		"User:bob 10.0.0.9 DENY ALL TOPIC:PREFIXED:ord",
	}
	if !equal(all, want) {
		t.Fatalf("all ACLs:\n%q\nwant\n%q", all, want)
	}
	// MATCH: every binding that applies to topic "orders".
	matching := describedACLs(t, adm, kadm.NewACLs().Topics("orders").Allow().Deny().AllowHosts().DenyHosts().Operations(kadm.OpAny).ResourcePatternType(kadm.ACLPatternMatch))
	if !equal(matching, []string{want[2], want[3], want[4]}) {
		t.Fatalf("matching topic orders: %q", matching)
	}

	n.Restart()
	adm = kadm.NewClient(n.Client())
	if after := describedACLs(t, adm, kadm.NewACLs().AnyResource().Allow().Deny().AllowHosts().DenyHosts().Operations(kadm.OpAny).ResourcePatternType(kadm.ACLPatternAny)); !equal(after, want) {
		t.Fatalf("after restart:\n%q", after)
	}

	deleted, err := adm.DeleteACLs(ctx, kadm.NewACLs().AnyResource().Allow("User:alice").AllowHosts().Operations(kadm.OpRead).ResourcePatternType(kadm.ACLPatternAny))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range deleted {
		if r.Err != nil {
			t.Fatalf("DeleteACLs: %v", r.Err)
		}
		for _, d := range r.Deleted {
			names = append(names, d.Type.String()+":"+d.Name)
		}
	}
	sort.Strings(names)
	if !equal(names, []string{"GROUP:g", "TOPIC:orders"}) {
		t.Fatalf("deleted %q", names)
	}
	left := describedACLs(t, adm, kadm.NewACLs().AnyResource().Allow().Deny().AllowHosts().DenyHosts().Operations(kadm.OpAny).ResourcePatternType(kadm.ACLPatternAny))
	if !equal(left, []string{want[0], want[3], want[4]}) {
		t.Fatalf("left: %q", left)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestACLsInvalidRequests: Kafka's INVALID_REQUEST for creations and
// filters its rules refuse, per creation or filter; the valid ones in the
// same request still apply. v0 (no pattern type) means LITERAL.
func TestACLsInvalidRequests(t *testing.T) {
	n := brokertest.Start(t)
	cl := n.Client()

	creation := func(rt kmsg.ACLResourceType, name string, pt kmsg.ACLResourcePatternType, principal string, op kmsg.ACLOperation) kmsg.CreateACLsRequestCreation {
		c := kmsg.NewCreateACLsRequestCreation()
		c.ResourceType, c.ResourceName, c.ResourcePatternType = rt, name, pt
		c.Principal, c.Host, c.Operation, c.PermissionType = principal, "*", op, kmsg.ACLPermissionTypeAllow
		return c
	}
	req := kmsg.NewPtrCreateACLsRequest()
	req.Creations = []kmsg.CreateACLsRequestCreation{
		creation(kmsg.ACLResourceTypeTopic, "t", kmsg.ACLResourcePatternTypeLiteral, "User:a", kmsg.ACLOperationRead),    // ok
		creation(kmsg.ACLResourceTypeAny, "t", kmsg.ACLResourcePatternTypeLiteral, "User:a", kmsg.ACLOperationRead),      // ANY type
		creation(kmsg.ACLResourceTypeTopic, "t", kmsg.ACLResourcePatternTypeMatch, "User:a", kmsg.ACLOperationRead),      // MATCH
		creation(kmsg.ACLResourceTypeTopic, "", kmsg.ACLResourcePatternTypeLiteral, "User:a", kmsg.ACLOperationRead),     // no name
		creation(kmsg.ACLResourceTypeTopic, "t", kmsg.ACLResourcePatternTypeLiteral, "alice", kmsg.ACLOperationRead),     // principal
		creation(kmsg.ACLResourceTypeTopic, "t", kmsg.ACLResourcePatternTypeLiteral, "User:a", kmsg.ACLOperationAny),     // ANY op
		creation(kmsg.ACLResourceTypeCluster, "c", kmsg.ACLResourcePatternTypeLiteral, "User:a", kmsg.ACLOperationAlter), // cluster name
		creation(kmsg.ACLResourceTypeGroup, "g", kmsg.ACLResourcePatternTypePrefixed, "User:a", kmsg.ACLOperationDelete), // ok
	}
	resp := request[*kmsg.CreateACLsResponse](t, cl, req)
	for i, r := range resp.Results {
		want := kerr.InvalidRequest.Code
		if i == 0 || i == len(resp.Results)-1 {
			want = 0
		}
		if r.ErrorCode != want {
			t.Errorf("creation %d: error %d, want %d", i, r.ErrorCode, want)
		}
	}
	if len(resp.Results) != len(req.Creations) {
		t.Fatalf("%d results for %d creations", len(resp.Results), len(req.Creations))
	}

	describe := kmsg.NewPtrDescribeACLsRequest()
	describe.ResourceType, describe.ResourcePatternType = kmsg.ACLResourceTypeAny, kmsg.ACLResourcePatternTypeUnknown
	describe.Operation, describe.PermissionType = kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
	if d := request[*kmsg.DescribeACLsResponse](t, cl, describe); d.ErrorCode != kerr.InvalidRequest.Code {
		t.Fatalf("unknown pattern type: error %d, want INVALID_REQUEST", d.ErrorCode)
	}

	// v0: the filter is LITERAL; the PREFIXED group binding is not listed.
	v0 := kversion.Stable()
	v0.SetMaxKeyVersion(kmsg.DescribeACLs.Int16(), 0)
	describe.ResourcePatternType = kmsg.ACLResourcePatternTypeAny
	d := request[*kmsg.DescribeACLsResponse](t, n.Client(kgo.MaxVersions(v0)), describe)
	if d.Version != 0 || d.ErrorCode != 0 || len(d.Resources) != 1 || d.Resources[0].ResourceName != "t" {
		t.Fatalf("v%d: error %d, resources %+v; want topic t only", d.Version, d.ErrorCode, d.Resources)
	}

	del := kmsg.NewPtrDeleteACLsRequest()
	good := kmsg.NewDeleteACLsRequestFilter()
	good.ResourceType, good.ResourcePatternType = kmsg.ACLResourceTypeGroup, kmsg.ACLResourcePatternTypeAny
	good.Operation, good.PermissionType = kmsg.ACLOperationAny, kmsg.ACLPermissionTypeAny
	bad := good
	bad.Operation = kmsg.ACLOperationUnknown
	del.Filters = []kmsg.DeleteACLsRequestFilter{bad, good}
	dr := request[*kmsg.DeleteACLsResponse](t, cl, del)
	if len(dr.Results) != 2 || dr.Results[0].ErrorCode != kerr.InvalidRequest.Code || dr.Results[1].ErrorCode != 0 ||
		len(dr.Results[1].MatchingACLs) != 1 || dr.Results[1].MatchingACLs[0].ResourceName != "g" {
		t.Fatalf("delete results %+v", dr.Results)
	}
}
