// Package authz is Kafka's access-control model: ACL bindings (a resource
// pattern and an access-control entry), the filters DescribeAcls and
// DeleteAcls select them with, and the decision whether a principal
// connected from a host may perform an operation on a resource. It holds
// no wire code: the numeric values of the enums are Kafka's (they travel in
// CreateAcls/DescribeAcls/DeleteAcls and in the metadata quorum's ACL
// records, so they are part of those formats).
package authz

import (
	"errors"
	"fmt"
	"strings"
)

// ResourceType is Kafka's resource type (org.apache.kafka.common.resource.ResourceType).
type ResourceType int8

// Kafka's resource type codes.
const (
	ResourceUnknown         ResourceType = 0
	ResourceAny             ResourceType = 1 // filters only
	ResourceTopic           ResourceType = 2
	ResourceGroup           ResourceType = 3
	ResourceCluster         ResourceType = 4
	ResourceTransactionalID ResourceType = 5
	// Kafka's, for delegation tokens, which Strata does not have: no binding
	// names them (Validate refuses them, and the metadata quorum applies
	// only bindings Validate accepts).
	ResourceDelegationToken ResourceType = 6
	ResourceUser            ResourceType = 7
)

// PatternType is Kafka's resource pattern type (PatternType).
type PatternType int8

// Kafka's pattern type codes.
const (
	PatternUnknown  PatternType = 0
	PatternAny      PatternType = 1 // filters only: any pattern type, name compared literally
	PatternMatch    PatternType = 2 // filters only: every binding that applies to the named resource
	PatternLiteral  PatternType = 3
	PatternPrefixed PatternType = 4
)

// Operation is Kafka's ACL operation (AclOperation).
type Operation int8

// Kafka's operation codes.
const (
	OpUnknown         Operation = 0
	OpAny             Operation = 1 // filters only
	OpAll             Operation = 2
	OpRead            Operation = 3
	OpWrite           Operation = 4
	OpCreate          Operation = 5
	OpDelete          Operation = 6
	OpAlter           Operation = 7
	OpDescribe        Operation = 8
	OpClusterAction   Operation = 9
	OpDescribeConfigs Operation = 10
	OpAlterConfigs    Operation = 11
	OpIdempotentWrite Operation = 12
	// Kafka's, for delegation tokens and KIP-939's two-phase commit, which
	// Strata does not have: as with ResourceDelegationToken, no binding
	// names them.
	OpCreateTokens   Operation = 13
	OpDescribeTokens Operation = 14
	OpTwoPhaseCommit Operation = 15
)

// Permission is Kafka's ACL permission type (AclPermissionType).
type Permission int8

// Kafka's permission codes.
const (
	PermissionUnknown Permission = 0
	PermissionAny     Permission = 1 // filters only
	PermissionDeny    Permission = 2
	PermissionAllow   Permission = 3
)

// ClusterName is the only name of the CLUSTER resource, as in Kafka.
const ClusterName = "kafka-cluster"

// Wildcard is the resource name, and the host, that matches every one;
// WildcardPrincipal is the principal that matches every principal.
const (
	Wildcard          = "*"
	WildcardPrincipal = "User:*"
)

// Anonymous is the principal of an unauthenticated connection.
const Anonymous = "User:ANONYMOUS"

var resourceNames = map[ResourceType]string{
	ResourceUnknown: "UNKNOWN", ResourceAny: "ANY", ResourceTopic: "TOPIC", ResourceGroup: "GROUP",
	ResourceCluster: "CLUSTER", ResourceTransactionalID: "TRANSACTIONAL_ID",
}

var patternNames = map[PatternType]string{
	PatternUnknown: "UNKNOWN", PatternAny: "ANY", PatternMatch: "MATCH", PatternLiteral: "LITERAL", PatternPrefixed: "PREFIXED",
}

var operationNames = map[Operation]string{
	OpUnknown: "UNKNOWN", OpAny: "ANY", OpAll: "ALL", OpRead: "READ", OpWrite: "WRITE", OpCreate: "CREATE",
	OpDelete: "DELETE", OpAlter: "ALTER", OpDescribe: "DESCRIBE", OpClusterAction: "CLUSTER_ACTION",
	OpDescribeConfigs: "DESCRIBE_CONFIGS", OpAlterConfigs: "ALTER_CONFIGS", OpIdempotentWrite: "IDEMPOTENT_WRITE",
}

var permissionNames = map[Permission]string{
	PermissionUnknown: "UNKNOWN", PermissionAny: "ANY", PermissionDeny: "DENY", PermissionAllow: "ALLOW",
}

func enumString[T ~int8](names map[T]string, v T) string {
	if name, ok := names[v]; ok {
		return name
	}
	return fmt.Sprintf("UNKNOWN(%d)", int8(v))
}

func parseEnum[T ~int8](names map[T]string, what, s string) (T, error) {
	for v, name := range names {
		if v != 0 && strings.EqualFold(strings.ReplaceAll(s, "-", "_"), name) {
			return v, nil
		}
	}
	return 0, fmt.Errorf("unknown %s %q", what, s)
}

func (r ResourceType) String() string { return enumString(resourceNames, r) }
func (p PatternType) String() string  { return enumString(patternNames, p) }
func (o Operation) String() string    { return enumString(operationNames, o) }
func (p Permission) String() string   { return enumString(permissionNames, p) }

// ParseOperation parses an operation name (READ, write, describe-configs…).
func ParseOperation(s string) (Operation, error) { return parseEnum(operationNames, "operation", s) }

// ParsePatternType parses a pattern type name (LITERAL, PREFIXED, ANY, MATCH).
func ParsePatternType(s string) (PatternType, error) {
	return parseEnum(patternNames, "resource pattern type", s)
}

// Known reports whether r is a concrete resource type a binding may name.
func (r ResourceType) Known() bool { return r >= ResourceTopic && r <= ResourceTransactionalID }

// Resource is one concrete resource an operation is performed on.
type Resource struct {
	Type ResourceType
	Name string
}

// Pattern is a binding's resource pattern: LITERAL (the name, or the
// wildcard "*" matching every name) or PREFIXED (every name starting with
// Name).
type Pattern struct {
	Type        ResourceType
	Name        string
	PatternType PatternType
}

// Matches reports whether the pattern applies to resource.
func (p Pattern) Matches(resource Resource) bool {
	if p.Type != resource.Type {
		return false
	}
	switch p.PatternType {
	case PatternLiteral:
		return p.Name == resource.Name || p.Name == Wildcard
	case PatternPrefixed:
		return strings.HasPrefix(resource.Name, p.Name)
	}
	return false
}

// Entry is a binding's access-control entry.
type Entry struct {
	// Principal is "Type:Name" (User:alice), or User:* for every principal.
	Principal  string
	Host       string // "*" for every host
	Operation  Operation
	Permission Permission
}

// Binding is one ACL: an entry applied to the resources of a pattern.
type Binding struct {
	Pattern Pattern
	Entry   Entry
}

func (b Binding) String() string {
	return fmt.Sprintf("%s %s on %s:%s:%s from %s: %s", b.Entry.Principal, b.Entry.Permission, b.Pattern.Type,
		b.Pattern.PatternType, b.Pattern.Name, b.Entry.Host, b.Entry.Operation)
}

// ErrInvalidBinding is wrapped by Validate's errors; Kafka answers it
// INVALID_REQUEST.
var ErrInvalidBinding = errors.New("invalid ACL binding")

// Validate checks a binding to be created as Kafka's controller does: a
// concrete resource type, LITERAL or PREFIXED, a non-empty name (the
// CLUSTER resource's being kafka-cluster), a Type:Name principal, a host,
// a concrete operation and ALLOW or DENY.
func (b Binding) Validate() error {
	switch {
	case !b.Pattern.Type.Known():
		return fmt.Errorf("%w: resource type %s", ErrInvalidBinding, b.Pattern.Type)
	case b.Pattern.PatternType != PatternLiteral && b.Pattern.PatternType != PatternPrefixed:
		return fmt.Errorf("%w: pattern type %s (want LITERAL or PREFIXED)", ErrInvalidBinding, b.Pattern.PatternType)
	case b.Pattern.Name == "":
		return fmt.Errorf("%w: empty resource name", ErrInvalidBinding)
	case b.Pattern.Type == ResourceCluster && b.Pattern.Name != ClusterName:
		return fmt.Errorf("%w: the only valid name for the CLUSTER resource is %s", ErrInvalidBinding, ClusterName)
	case b.Entry.Host == "":
		return fmt.Errorf("%w: empty host (use * for every host)", ErrInvalidBinding)
	case b.Entry.Operation < OpAll || b.Entry.Operation > OpIdempotentWrite:
		return fmt.Errorf("%w: operation %s", ErrInvalidBinding, b.Entry.Operation)
	case b.Entry.Permission != PermissionAllow && b.Entry.Permission != PermissionDeny:
		return fmt.Errorf("%w: permission %s (want ALLOW or DENY)", ErrInvalidBinding, b.Entry.Permission)
	}
	if err := ValidatePrincipal(b.Entry.Principal); err != nil {
		return err
	}
	const maxLen = 1 << 10 // metadata records stay small
	if len(b.Pattern.Name) > 4*maxLen || len(b.Entry.Principal) > maxLen || len(b.Entry.Host) > maxLen {
		return fmt.Errorf("%w: name, principal or host too long", ErrInvalidBinding)
	}
	return nil
}

// ValidatePrincipal checks Kafka's "Type:Name" principal form.
func ValidatePrincipal(principal string) error {
	typ, name, ok := strings.Cut(principal, ":")
	if !ok || typ == "" || name == "" {
		return fmt.Errorf("%w: principal %q is not Type:Name (e.g. User:alice)", ErrInvalidBinding, principal)
	}
	return nil
}

// Filter selects bindings, as DescribeAcls and DeleteAcls do. Nil strings
// match anything; ANY enums match anything.
type Filter struct {
	ResourceType ResourceType
	Name         *string
	PatternType  PatternType
	Principal    *string
	Host         *string
	Operation    Operation
	Permission   Permission
}

// ErrInvalidFilter is wrapped by Filter.Validate's errors (INVALID_REQUEST).
var ErrInvalidFilter = errors.New("invalid ACL filter")

// Validate refuses unknown enum values, as Kafka does.
func (f Filter) Validate() error {
	switch {
	case f.ResourceType < ResourceAny || f.ResourceType > ResourceTransactionalID:
		return fmt.Errorf("%w: resource type %s", ErrInvalidFilter, f.ResourceType)
	case f.PatternType < PatternAny || f.PatternType > PatternPrefixed:
		return fmt.Errorf("%w: pattern type %s", ErrInvalidFilter, f.PatternType)
	case f.Operation < OpAny || f.Operation > OpIdempotentWrite:
		return fmt.Errorf("%w: operation %s", ErrInvalidFilter, f.Operation)
	case f.Permission < PermissionAny || f.Permission > PermissionAllow:
		return fmt.Errorf("%w: permission %s", ErrInvalidFilter, f.Permission)
	}
	return nil
}

// Matches reports whether the filter selects b.
func (f Filter) Matches(b Binding) bool {
	p := b.Pattern
	if f.ResourceType != ResourceAny && f.ResourceType != p.Type {
		return false
	}
	switch f.PatternType {
	case PatternAny:
		if f.Name != nil && *f.Name != p.Name {
			return false
		}
	case PatternMatch:
		if f.Name != nil && !p.Matches(Resource{Type: p.Type, Name: *f.Name}) {
			return false
		}
	default:
		if f.PatternType != p.PatternType || (f.Name != nil && *f.Name != p.Name) {
			return false
		}
	}
	e := b.Entry
	return (f.Principal == nil || *f.Principal == e.Principal) &&
		(f.Host == nil || *f.Host == e.Host) &&
		(f.Operation == OpAny || f.Operation == e.Operation) &&
		(f.Permission == PermissionAny || f.Permission == e.Permission)
}
