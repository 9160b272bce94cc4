package authz

import "github.com/twmb/franz-go/pkg/kerr"

// Authorizer decides requests against a set of bindings, as Kafka's
// StandardAuthorizer does:
//
//   - a super user may do everything;
//   - a DENY binding that matches (principal or User:*, host or *,
//     the operation or ALL, the resource by LITERAL name, LITERAL "*" or
//     PREFIXED prefix) refuses, whatever ALLOW bindings say;
//   - otherwise an ALLOW binding that matches allows, where ALLOW of READ,
//     WRITE, DELETE or ALTER also allows DESCRIBE, and ALLOW of
//     ALTER_CONFIGS also allows DESCRIBE_CONFIGS;
//   - a resource no binding applies to (for any principal) is allowed only
//     with AllowEveryoneIfNoACLFound.
type Authorizer struct {
	// SuperUsers are principals ("User:admin") allowed everything.
	SuperUsers map[string]bool
	// AllowEveryoneIfNoACLFound is Kafka's allow.everyone.if.no.acl.found.
	AllowEveryoneIfNoACLFound bool
}

// Request is one authorization question.
type Request struct {
	Principal string // "User:alice"; Anonymous when unauthenticated
	Host      string // the client's IP address
	Operation Operation
	Resource  Resource
}

// Authorize reports whether bindings allow req.
func (a *Authorizer) Authorize(bindings []Binding, req Request) bool {
	if a.SuperUsers[req.Principal] {
		return true
	}
	any, allowed := false, false
	for _, b := range bindings {
		if !b.Pattern.Matches(req.Resource) {
			continue
		}
		any = true
		e := b.Entry
		if e.Principal != req.Principal && e.Principal != WildcardPrincipal {
			continue
		}
		if e.Host != req.Host && e.Host != Wildcard {
			continue
		}
		switch e.Permission {
		case PermissionDeny:
			if e.Operation == req.Operation || e.Operation == OpAll {
				return false
			}
		case PermissionAllow:
			if implies(e.Operation, req.Operation) {
				allowed = true
			}
		}
	}
	if !any {
		return a.AllowEveryoneIfNoACLFound
	}
	return allowed
}

// implies reports whether an ALLOW of granted allows requested.
func implies(granted, requested Operation) bool {
	if granted == requested || granted == OpAll {
		return true
	}
	switch requested {
	case OpDescribe:
		return granted == OpRead || granted == OpWrite || granted == OpDelete || granted == OpAlter
	case OpDescribeConfigs:
		return granted == OpAlterConfigs
	}
	return false
}

// ErrorCode is Kafka's error code for a request refused on a resource of
// type t.
func ErrorCode(t ResourceType) int16 {
	switch t {
	case ResourceTopic:
		return kerr.TopicAuthorizationFailed.Code
	case ResourceGroup:
		return kerr.GroupAuthorizationFailed.Code
	case ResourceTransactionalID:
		return kerr.TransactionalIDAuthorizationFailed.Code
	default:
		return kerr.ClusterAuthorizationFailed.Code
	}
}
