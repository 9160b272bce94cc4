package authz

import (
	"net/netip"

	"github.com/twmb/franz-go/pkg/kerr"
)

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
		if !hostMatches(e.Host, req.Host) {
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

// hostMatches reports whether an entry's host applies to a request from
// host (the client's IP address, as Go writes it): "*", or the same
// address however it is written. Kafka compares the host with Java's
// InetAddress.getHostAddress(), which writes an IPv6 address in full
// ("0:0:0:0:0:0:0:1", where Go writes "::1"), so ACLs made for Kafka
// name IPv6 clients that way; a DENY so written must refuse here too.
// An IPv4-mapped IPv6 address is its IPv4 address (Java's, and Go's,
// client address); a zone is not compared (the client's address has
// none).
func hostMatches(entryHost, host string) bool {
	if entryHost == Wildcard || entryHost == host {
		return true
	}
	a, err := netip.ParseAddr(entryHost)
	if err != nil {
		return false
	}
	b, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	return a.WithZone("").Unmap() == b.WithZone("").Unmap()
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
