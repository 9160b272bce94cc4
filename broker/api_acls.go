package broker

import (
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

func handleDescribeACLs(c *clientConn, h requestHeader, req *kmsg.DescribeACLsRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.DescribeACLsResponse)
	if !c.authorizedCluster(authz.OpDescribe) {
		msg := "not authorized to DESCRIBE the cluster (needed to list ACLs)"
		resp.ErrorCode, resp.ErrorMessage = kerr.ClusterAuthorizationFailed.Code, &msg
		return resp, nil
	}
	filter := aclFilter(req.Version, req.ResourceType, req.ResourceName, req.ResourcePatternType, req.Principal, req.Host, req.Operation, req.PermissionType)
	if err := filter.Validate(); err != nil {
		msg := err.Error()
		resp.ErrorCode, resp.ErrorMessage = kerr.InvalidRequest.Code, &msg
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
		if err := filter.Validate(); err != nil {
			msg := err.Error()
			resp.Results[i].ErrorCode, resp.Results[i].ErrorMessage = kerr.InvalidRequest.Code, &msg
			continue
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
