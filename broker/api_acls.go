package broker

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/authz"
	"github.com/strata-log/strata/metadata"
)

func init() {
	register(0, 3, handleCreateACLs)
	register(0, 3, handleDescribeACLs)
	register(0, 3, handleDeleteACLs)
}

// aclTimeoutMillis bounds an ACL change (the ACL APIs carry no timeout).
const aclTimeoutMillis = 30000

// aclPatternType is the request's pattern type: LITERAL before v1, which
// had none.
func aclPatternType(version int16, patternType kmsg.ACLResourcePatternType) authz.PatternType {
	if version < 1 {
		return authz.PatternLiteral
	}
	return authz.PatternType(patternType)
}

// aclAbsent is a Kafka resource type or operation of a feature Strata does
// not have: Kafka's name for it, and the feature.
type aclAbsent struct{ name, feature string }

// Kafka's resource types and operations of delegation tokens and KIP-939's
// two-phase commit. authz refuses them in bindings and filters alike, and
// the metadata quorum re-runs its checks when it applies a command (so
// nodes of every build replay the log alike). The handlers below take a
// filter naming them as Kafka does, as valid (it selects nothing here, no
// binding naming them), and refuse to create a binding with them, where
// Kafka would store one, saying which feature Strata lacks.
var (
	aclAbsentResourceTypes = map[authz.ResourceType]aclAbsent{
		authz.ResourceDelegationToken: {"DELEGATION_TOKEN", "delegation tokens"},
		authz.ResourceUser:            {"USER", "delegation tokens"},
	}
	aclAbsentOperations = map[authz.Operation]aclAbsent{
		authz.OpCreateTokens:   {"CREATE_TOKENS", "delegation tokens"},
		authz.OpDescribeTokens: {"DESCRIBE_TOKENS", "delegation tokens"},
		authz.OpTwoPhaseCommit: {"TWO_PHASE_COMMIT", "two-phase commit (KIP-939)"},
	}
)

// aclAbsentFeature says which feature Strata lacks a resource type or
// operation is for ("resource type USER: Strata has no delegation
// tokens"), or "" if neither is such.
func aclAbsentFeature(rt authz.ResourceType, op authz.Operation) string {
	if v, ok := aclAbsentResourceTypes[rt]; ok {
		return fmt.Sprintf("resource type %s: Strata has no %s", v.name, v.feature)
	}
	if v, ok := aclAbsentOperations[op]; ok {
		return fmt.Sprintf("operation %s: Strata has no %s", v.name, v.feature)
	}
	return ""
}

func handleCreateACLs(c *clientConn, h requestHeader, req *kmsg.CreateACLsRequest) (kmsg.Response, error) {
	s := c.server
	resp := req.ResponseKind().(*kmsg.CreateACLsResponse)
	resp.Results = make([]kmsg.CreateACLsResponseResult, len(req.Creations))
	var (
		bindings []authz.Binding
		valid    []int // indexes into resp.Results
	)
	allowed := c.authorizedCluster(authz.OpAlter)
	for i, cr := range req.Creations {
		resp.Results[i] = kmsg.NewCreateACLsResponseResult()
		if !allowed {
			msg := "not authorized to ALTER the cluster (needed to create ACLs)"
			resp.Results[i].ErrorCode, resp.Results[i].ErrorMessage = kerr.ClusterAuthorizationFailed.Code, &msg
			continue
		}
		b := authz.Binding{
			Pattern: authz.Pattern{Type: authz.ResourceType(cr.ResourceType), Name: cr.ResourceName, PatternType: aclPatternType(req.Version, cr.ResourcePatternType)},
			Entry: authz.Entry{Principal: cr.Principal, Host: cr.Host, Operation: authz.Operation(cr.Operation),
				Permission: authz.Permission(cr.PermissionType)},
		}
		// Kafka answers INVALID_REQUEST for the resource types and
		// operations it refuses in a binding; so does Strata for those of
		// its absent features, saying so.
		if absent := aclAbsentFeature(b.Pattern.Type, b.Entry.Operation); absent != "" {
			msg := "cannot create an ACL with " + absent
			resp.Results[i].ErrorCode, resp.Results[i].ErrorMessage = kerr.InvalidRequest.Code, &msg
			continue
		}
		if err := b.Validate(); err != nil {
			msg := err.Error()
			resp.Results[i].ErrorCode, resp.Results[i].ErrorMessage = kerr.InvalidRequest.Code, &msg
			continue
		}
		bindings = append(bindings, b)
		valid = append(valid, i)
	}
	if len(bindings) > metadata.MaxACLsPerCommand {
		msg := "too many ACL creations in one request; send them in batches of at most 1000"
		for _, i := range valid {
			resp.Results[i].ErrorCode, resp.Results[i].ErrorMessage = kerr.InvalidRequest.Code, &msg
		}
		return resp, nil
	}
	if len(bindings) == 0 {
		return resp, nil
	}
	ctx, cancel := s.adminContext(aclTimeoutMillis)
	defer cancel()
	if err := s.cfg.Metadata.CreateACLs(ctx, bindings); err != nil {
		s.log.Warn("creating ACLs failed", "count", len(bindings), "err", err)
		code, msg := adminCommitErrorCode(err, metadata.ErrInvalidACL), "creating ACLs: "+err.Error()
		for _, i := range valid {
			resp.Results[i].ErrorCode, resp.Results[i].ErrorMessage = code, &msg
		}
		return resp, nil
	}
	for _, b := range bindings {
		s.log.Info("ACL created", "acl", b.String())
	}
	return resp, nil
}

// aclFilter is a DescribeAcls or DeleteAcls filter.
func aclFilter(version int16, rt kmsg.ACLResourceType, name *string, pt kmsg.ACLResourcePatternType,
	principal, host *string, op kmsg.ACLOperation, perm kmsg.ACLPermissionType) authz.Filter {
	return authz.Filter{
		ResourceType: authz.ResourceType(rt), Name: name, PatternType: aclPatternType(version, pt),
		Principal: principal, Host: host, Operation: authz.Operation(op), Permission: authz.Permission(perm),
	}
}

// validateACLFilter is filter.Validate, except that, as in Kafka, the
// filter may name the resource types and operations of Strata's absent
// features: such a filter is valid if the rest of it is, and selects no
// binding (none can name them). matchable is false for it; it must not
// reach the metadata quorum, whose Validate refuses it.
func validateACLFilter(filter authz.Filter) (matchable bool, err error) {
	matchable = true
	if _, ok := aclAbsentResourceTypes[filter.ResourceType]; ok {
		filter.ResourceType, matchable = authz.ResourceAny, false
	}
	if _, ok := aclAbsentOperations[filter.Operation]; ok {
		filter.Operation, matchable = authz.OpAny, false
	}
	return matchable, filter.Validate()
}

func handleDescribeACLs(c *clientConn, h requestHeader, req *kmsg.DescribeACLsRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.DescribeACLsResponse)
	if !c.authorizedCluster(authz.OpDescribe) {
		msg := "not authorized to DESCRIBE the cluster (needed to list ACLs)"
		resp.ErrorCode, resp.ErrorMessage = kerr.ClusterAuthorizationFailed.Code, &msg
		return resp, nil
	}
	filter := aclFilter(req.Version, req.ResourceType, req.ResourceName, req.ResourcePatternType, req.Principal, req.Host, req.Operation, req.PermissionType)
	matchable, err := validateACLFilter(filter)
	if err != nil {
		msg := err.Error()
		resp.ErrorCode, resp.ErrorMessage = kerr.InvalidRequest.Code, &msg
		return resp, nil
	}
	if !matchable {
		return resp, nil
	}
	// One resource entry per pattern, in the state's order.
	index := map[authz.Pattern]int{}
	for _, b := range c.server.cfg.Metadata.State().ACLs() {
		if !filter.Matches(b) {
			continue
		}
		i, ok := index[b.Pattern]
		if !ok {
			r := kmsg.NewDescribeACLsResponseResource()
			r.ResourceType = kmsg.ACLResourceType(b.Pattern.Type)
			r.ResourceName = b.Pattern.Name
			r.ResourcePatternType = kmsg.ACLResourcePatternType(b.Pattern.PatternType)
			resp.Resources = append(resp.Resources, r)
			i = len(resp.Resources) - 1
			index[b.Pattern] = i
		}
		acl := kmsg.NewDescribeACLsResponseResourceACL()
		acl.Principal, acl.Host = b.Entry.Principal, b.Entry.Host
		acl.Operation, acl.PermissionType = kmsg.ACLOperation(b.Entry.Operation), kmsg.ACLPermissionType(b.Entry.Permission)
		resp.Resources[i].ACLs = append(resp.Resources[i].ACLs, acl)
	}
	return resp, nil
}

func handleDeleteACLs(c *clientConn, h requestHeader, req *kmsg.DeleteACLsRequest) (kmsg.Response, error) {
	s := c.server
	resp := req.ResponseKind().(*kmsg.DeleteACLsResponse)
	resp.Results = make([]kmsg.DeleteACLsResponseResult, len(req.Filters))
	var (
		filters []authz.Filter
		valid   []int // indexes into resp.Results
	)
	allowed := c.authorizedCluster(authz.OpAlter)
	for i, f := range req.Filters {
		resp.Results[i] = kmsg.NewDeleteACLsResponseResult()
		if !allowed {
			msg := "not authorized to ALTER the cluster (needed to delete ACLs)"
			resp.Results[i].ErrorCode, resp.Results[i].ErrorMessage = kerr.ClusterAuthorizationFailed.Code, &msg
			continue
		}
		filter := aclFilter(req.Version, f.ResourceType, f.ResourceName, f.ResourcePatternType, f.Principal, f.Host, f.Operation, f.PermissionType)
		matchable, err := validateACLFilter(filter)
		if err != nil {
			msg := err.Error()
			resp.Results[i].ErrorCode, resp.Results[i].ErrorMessage = kerr.InvalidRequest.Code, &msg
			continue
		}
		if !matchable {
			continue // deletes nothing
		}
		filters = append(filters, filter)
		valid = append(valid, i)
	}
	if len(filters) == 0 {
		return resp, nil
	}
	fail := func(code int16, msg string) (kmsg.Response, error) {
		for _, i := range valid {
			resp.Results[i].ErrorCode, resp.Results[i].ErrorMessage = code, &msg
		}
		return resp, nil
	}
	if len(filters) > metadata.MaxACLsPerCommand {
		return fail(kerr.InvalidRequest.Code, "too many ACL filters in one request; send them in batches of at most 1000")
	}
	ctx, cancel := s.adminContext(aclTimeoutMillis)
	defer cancel()
	deleted, err := s.cfg.Metadata.DeleteACLs(ctx, filters)
	if err != nil {
		s.log.Warn("deleting ACLs failed", "filters", len(filters), "err", err)
		return fail(adminCommitErrorCode(err, metadata.ErrInvalidACL), "deleting ACLs: "+err.Error())
	}
	for j, i := range valid {
		for _, b := range deleted[j] {
			s.log.Info("ACL deleted", "acl", b.String())
			m := kmsg.NewDeleteACLsResponseResultMatchingACL()
			m.ResourceType = kmsg.ACLResourceType(b.Pattern.Type)
			m.ResourceName = b.Pattern.Name
			m.ResourcePatternType = kmsg.ACLResourcePatternType(b.Pattern.PatternType)
			m.Principal, m.Host = b.Entry.Principal, b.Entry.Host
			m.Operation, m.PermissionType = kmsg.ACLOperation(b.Entry.Operation), kmsg.ACLPermissionType(b.Entry.Permission)
			resp.Results[i].MatchingACLs = append(resp.Results[i].MatchingACLs, m)
		}
	}
	return resp, nil
}
