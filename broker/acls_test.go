package broker_test

import (
	"context"
	"sort"
	"strings"
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

// TestACLsAbsentFeatures: Kafka's resource types and operations of features
// Strata lacks — DELEGATION_TOKEN and USER, CREATE_TOKENS, DESCRIBE_TOKENS
// (delegation tokens) and TWO_PHASE_COMMIT (KIP-939) — are valid in
// DescribeAcls and DeleteAcls filters, as in Kafka (kafka-acls --list
// --principal User:alice names them), and select nothing. Creating a
// binding with them is refused, per creation, saying why. UNKNOWN and
// out-of-range values stay INVALID_REQUEST, as Kafka answers them.
func TestACLsAbsentFeatures(t *testing.T) {
	n := brokertest.Start(t)
	cl := n.Client()
	const (
		twoPhaseCommit = kmsg.ACLOperation(15) // not in kmsg yet
		outOfRangeType = kmsg.ACLResourceType(8)
		outOfRangeOp   = kmsg.ACLOperation(16)
	)

	creation := func(rt kmsg.ACLResourceType, name string, op kmsg.ACLOperation) kmsg.CreateACLsRequestCreation {
		c := kmsg.NewCreateACLsRequestCreation()
		c.ResourceType, c.ResourceName, c.ResourcePatternType = rt, name, kmsg.ACLResourcePatternTypeLiteral
		c.Principal, c.Host, c.Operation, c.PermissionType = "User:alice", "*", op, kmsg.ACLPermissionTypeAllow
		return c
	}
	create := kmsg.NewPtrCreateACLsRequest()
	create.Creations = []kmsg.CreateACLsRequestCreation{
		creation(kmsg.ACLResourceTypeTopic, "t", kmsg.ACLOperationRead),
		creation(kmsg.ACLResourceTypeUser, "User:bob", kmsg.ACLOperationCreateTokens),
		creation(kmsg.ACLResourceTypeDelegationToken, "token", kmsg.ACLOperationDescribe),
		creation(kmsg.ACLResourceTypeTopic, "t", kmsg.ACLOperationDescribeTokens),
		creation(kmsg.ACLResourceTypeTransactionalId, "tx", twoPhaseCommit),
		creation(outOfRangeType, "t", kmsg.ACLOperationRead),
	}
	wantCreate := []struct {
		code int16
		msg  string
	}{
		{0, ""},
		{kerr.InvalidRequest.Code, "delegation tokens"},
		{kerr.InvalidRequest.Code, "delegation tokens"},
		{kerr.InvalidRequest.Code, "delegation tokens"},
		{kerr.InvalidRequest.Code, "two-phase commit"},
		{kerr.InvalidRequest.Code, "resource type UNKNOWN(8)"},
	}
	cr := request[*kmsg.CreateACLsResponse](t, cl, create)
	if len(cr.Results) != len(wantCreate) {
		t.Fatalf("%d results for %d creations", len(cr.Results), len(wantCreate))
	}
	for i, r := range cr.Results {
		msg := ""
		if r.ErrorMessage != nil {
			msg = *r.ErrorMessage
		}
		if r.ErrorCode != wantCreate[i].code || !strings.Contains(msg, wantCreate[i].msg) {
			t.Errorf("creation %d: error %d %q, want %d containing %q", i, r.ErrorCode, msg, wantCreate[i].code, wantCreate[i].msg)
		}
	}

	describe := func(rt kmsg.ACLResourceType, principal *string, op kmsg.ACLOperation) *kmsg.DescribeACLsResponse {
		req := kmsg.NewPtrDescribeACLsRequest()
		req.ResourceType, req.ResourcePatternType = rt, kmsg.ACLResourcePatternTypeAny
		req.Principal, req.Operation, req.PermissionType = principal, op, kmsg.ACLPermissionTypeAny
		return request[*kmsg.DescribeACLsResponse](t, cl, req)
	}
	alice := "User:alice"
	for _, tc := range []struct {
		name      string
		rt        kmsg.ACLResourceType
		op        kmsg.ACLOperation
		code      int16
		resources int
	}{
		{"ANY", kmsg.ACLResourceTypeAny, kmsg.ACLOperationAny, 0, 1},
		{"USER", kmsg.ACLResourceTypeUser, kmsg.ACLOperationAny, 0, 0},
		{"DELEGATION_TOKEN", kmsg.ACLResourceTypeDelegationToken, kmsg.ACLOperationAny, 0, 0},
		{"CREATE_TOKENS", kmsg.ACLResourceTypeAny, kmsg.ACLOperationCreateTokens, 0, 0},
		{"DESCRIBE_TOKENS", kmsg.ACLResourceTypeTopic, kmsg.ACLOperationDescribeTokens, 0, 0},
		{"TWO_PHASE_COMMIT", kmsg.ACLResourceTypeTransactionalId, twoPhaseCommit, 0, 0},
		{"USER with UNKNOWN operation", kmsg.ACLResourceTypeUser, kmsg.ACLOperationUnknown, kerr.InvalidRequest.Code, 0},
		{"UNKNOWN resource type", kmsg.ACLResourceTypeUnknown, kmsg.ACLOperationAny, kerr.InvalidRequest.Code, 0},
		{"out-of-range resource type", outOfRangeType, kmsg.ACLOperationCreateTokens, kerr.InvalidRequest.Code, 0},
		{"out-of-range operation", kmsg.ACLResourceTypeUser, outOfRangeOp, kerr.InvalidRequest.Code, 0},
	} {
		d := describe(tc.rt, &alice, tc.op)
		if d.ErrorCode != tc.code || len(d.Resources) != tc.resources {
			t.Errorf("describe %s: error %d, %d resources; want %d, %d", tc.name, d.ErrorCode, len(d.Resources), tc.code, tc.resources)
		}
	}

	filter := func(rt kmsg.ACLResourceType, op kmsg.ACLOperation) kmsg.DeleteACLsRequestFilter {
		f := kmsg.NewDeleteACLsRequestFilter()
		f.ResourceType, f.ResourcePatternType = rt, kmsg.ACLResourcePatternTypeAny
		f.Principal, f.Operation, f.PermissionType = &alice, op, kmsg.ACLPermissionTypeAny
		return f
	}
	del := kmsg.NewPtrDeleteACLsRequest()
	del.Filters = []kmsg.DeleteACLsRequestFilter{
		filter(kmsg.ACLResourceTypeUser, kmsg.ACLOperationAny),
		filter(kmsg.ACLResourceTypeAny, kmsg.ACLOperationCreateTokens),
		filter(kmsg.ACLResourceTypeDelegationToken, twoPhaseCommit),
		filter(outOfRangeType, kmsg.ACLOperationAny),
		filter(kmsg.ACLResourceTypeUser, outOfRangeOp),
		filter(kmsg.ACLResourceTypeAny, kmsg.ACLOperationAny),
	}
	wantDelete := []struct {
		code    int16
		matches int
	}{{0, 0}, {0, 0}, {0, 0}, {kerr.InvalidRequest.Code, 0}, {kerr.InvalidRequest.Code, 0}, {0, 1}}
	dr := request[*kmsg.DeleteACLsResponse](t, cl, del)
	if len(dr.Results) != len(wantDelete) {
		t.Fatalf("%d results for %d filters", len(dr.Results), len(wantDelete))
	}
	for i, r := range dr.Results {
		if r.ErrorCode != wantDelete[i].code || len(r.MatchingACLs) != wantDelete[i].matches {
			t.Errorf("delete filter %d: error %d, %d matches; want %d, %d", i, r.ErrorCode, len(r.MatchingACLs), wantDelete[i].code, wantDelete[i].matches)
		}
	}
	if d := describe(kmsg.ACLResourceTypeAny, nil, kmsg.ACLOperationAny); d.ErrorCode != 0 || len(d.Resources) != 0 {
		t.Fatalf("after delete: error %d, resources %+v", d.ErrorCode, d.Resources)
	}
}
