package authz

import "strings"

// AuthorizeByResourceType reports whether bindings allow req's principal,
// from req's host, req's operation on at least one resource of
// req.Resource.Type (its name is not used), as Kafka's
// Authorizer.authorizeByResourceType (KIP-679: an idempotent producer
// needs IDEMPOTENT_WRITE on the cluster, or WRITE on any topic):
//
//   - a super user may;
//   - with AllowEveryoneIfNoACLFound, a principal may when no binding
//     names any resource of the type;
//   - otherwise the bindings of the type for the principal (or User:*),
//     the host (or *) and the operation (or ALL; implied operations do not
//     count here, as in Kafka) decide: a DENY of LITERAL "*" refuses; an
//     ALLOW of a LITERAL name allows unless that name is denied LITERAL or
//     a denied PREFIXED pattern is a prefix of it; an ALLOW of a PREFIXED
//     pattern allows unless a denied PREFIXED pattern is a prefix of it.
func (a *Authorizer) AuthorizeByResourceType(bindings []Binding, req Request) bool {
	if a.SuperUsers[req.Principal] {
		return true
	}
	rt := req.Resource.Type
	any := false
	denyLiteral, denyPrefixed := map[string]bool{}, map[string]bool{}
	var allows []Pattern
	for _, b := range bindings {
		if b.Pattern.Type != rt {
			continue
		}
		any = true
		e := b.Entry
		if (e.Principal != req.Principal && e.Principal != WildcardPrincipal) || (e.Host != req.Host && e.Host != Wildcard) ||
			(e.Operation != req.Operation && e.Operation != OpAll) {
			continue
		}
		switch {
		case e.Permission == PermissionDeny && b.Pattern.PatternType == PatternLiteral:
			if b.Pattern.Name == Wildcard {
				return false
			}
			denyLiteral[b.Pattern.Name] = true
		case e.Permission == PermissionDeny && b.Pattern.PatternType == PatternPrefixed:
			denyPrefixed[b.Pattern.Name] = true
		case e.Permission == PermissionAllow:
			allows = append(allows, b.Pattern)
		}
	}
	if !any {
		return a.AllowEveryoneIfNoACLFound
	}
	for _, allow := range allows {
		if allow.PatternType == PatternLiteral && denyLiteral[allow.Name] {
			continue
		}
		dominated := false
		for prefix := range denyPrefixed {
			if strings.HasPrefix(allow.Name, prefix) {
				dominated = true
				break
			}
		}
		if !dominated {
			return true
		}
	}
	return false
}
