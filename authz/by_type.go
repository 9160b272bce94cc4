package authz

import "strings"

// resourceTypeProbe is the resource name Kafka's authorizeByResourceType
// first authorizes the request for.
const resourceTypeProbe = "hardcode"

// AuthorizeByResourceType reports whether bindings allow req's principal,
// from req's host, req's operation on at least one resource of
// req.Resource.Type (its name is not used), as Kafka's
// Authorizer.authorizeByResourceType (KIP-679: an idempotent producer
// needs IDEMPOTENT_WRITE on the cluster, or WRITE on any topic):
//
//   - first the request is decided, by Authorize, for a resource of the
//     type named "hardcode" (Kafka's probe): a super user, an ALLOW that
//     applies to every name ("*", or a prefix of the probe's name), or,
//     with AllowEveryoneIfNoACLFound, no binding that applies to the
//     probe (whatever bindings other names of the type have: those names
//     are protected, the rest are open to everyone) allows;
//   - otherwise the bindings of the type for the principal (or User:*),
//     the host (or *) and the operation (or ALL; implied operations do not
//     count here, as in Kafka) decide: a DENY of LITERAL "*" refuses; an
//     ALLOW of LITERAL "*" allows; an ALLOW of a LITERAL name allows
//     unless that name is denied LITERAL or a denied PREFIXED pattern is a
//     prefix of it; an ALLOW of a PREFIXED pattern allows unless a denied
//     PREFIXED pattern is a prefix of it.
func (a *Authorizer) AuthorizeByResourceType(bindings []Binding, req Request) bool {
	rt := req.Resource.Type
	probe := req
	probe.Resource = Resource{Type: rt, Name: resourceTypeProbe}
	if a.Authorize(bindings, probe) {
		return true
	}
	wildcardAllowed := false
	denyLiteral, denyPrefixed := map[string]bool{}, map[string]bool{}
	var allows []Pattern
	for _, b := range bindings {
		if b.Pattern.Type != rt {
			continue
		}
		e := b.Entry
		if (e.Principal != req.Principal && e.Principal != WildcardPrincipal) || !hostMatches(e.Host, req.Host) ||
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
		case e.Permission == PermissionAllow && b.Pattern.PatternType == PatternLiteral && b.Pattern.Name == Wildcard:
			wildcardAllowed = true
		case e.Permission == PermissionAllow:
			allows = append(allows, b.Pattern)
		}
	}
	if wildcardAllowed {
		return true
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
