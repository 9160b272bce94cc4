package cli

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/authz"
)

// The acls subcommands are Kafka's kafka-acls.sh on the Kafka admin APIs
// (CreateAcls, DescribeAcls, DeleteAcls), with its flag names.

const aclsUsage = `Usage: strata acls <command> [flags]

Commands (Kafka admin APIs, against --bootstrap-server):
  list [resource] [--allow-principal P ...] [--deny-principal P ...] [--operation OP ...] [--host H ...]
                          ACLs matching the filter (no resource: every resource;
                          --resource-pattern-type match: every ACL that applies
                          to the named resources)
  create (--allow-principal P ... | --deny-principal P ...) --operation OP ... resource [--host H ...]
                          add ACLs: every principal × host × operation × resource
  delete resource [--allow-principal P ...] [--deny-principal P ...] [--operation OP ...] [--host H ...]
                          remove the ACLs matching the filter, and print them

resource is one or more of --topic T, --group G, --cluster, --transactional-id ID
(each repeatable), named LITERAL by default (--resource-pattern-type prefixed:
every name starting with it; a LITERAL * is every name). Principals are
Type:Name (User:alice; User:* is every principal); hosts default to * (every
host). Operations: ALL, READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE,
CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE.

Flags:
`

// ACLInfo is one ACL of `strata acls list`, `create` and `delete`.
type ACLInfo struct {
	Principal    string `json:"principal"`
	Host         string `json:"host"`
	Permission   string `json:"permission"`
	Operation    string `json:"operation"`
	ResourceType string `json:"resource_type"`
	PatternType  string `json:"pattern_type"`
	ResourceName string `json:"resource_name"`
}

// aclFlags are the flags of `strata acls`.
type aclFlags struct {
	allow, deny, operations, topics, groups, txnIDs, hosts []string
	cluster                                                bool
	patternType                                            string
}

func (f *aclFlags) register(fs *pflag.FlagSet) {
	fs.StringArrayVar(&f.allow, "allow-principal", nil, "principal the ACL allows, Type:Name (repeatable)")
	fs.StringArrayVar(&f.deny, "deny-principal", nil, "principal the ACL denies, Type:Name (repeatable)")
	fs.StringArrayVar(&f.operations, "operation", nil, "operation (repeatable): ALL, READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE")
	fs.StringArrayVar(&f.topics, "topic", nil, "topic resource (repeatable)")
	fs.StringArrayVar(&f.groups, "group", nil, "consumer group resource (repeatable)")
	fs.BoolVar(&f.cluster, "cluster", false, "the cluster resource")
	fs.StringArrayVar(&f.txnIDs, "transactional-id", nil, "transactional id resource (repeatable)")
	fs.StringArrayVar(&f.hosts, "host", nil, "host (IP address) the ACL applies to (repeatable; default * for create, any for list and delete)")
	fs.StringVar(&f.patternType, "resource-pattern-type", "literal", "literal or prefixed; also any or match for list and delete")
}

func (f *aclFlags) hasResource() bool {
	return len(f.topics)+len(f.groups)+len(f.txnIDs) > 0 || f.cluster
}

// builder turns the flags into a kadm ACL builder for sub.
func (f *aclFlags) builder(sub string) (*kadm.ACLBuilder, error) {
	pattern, err := authz.ParsePatternType(f.patternType)
	if err != nil {
		return nil, usageErrorf("--resource-pattern-type %q: want literal, prefixed, any or match", f.patternType)
	}
	var ops []kadm.ACLOperation
	for _, name := range f.operations {
		op, err := authz.ParseOperation(name)
		if err != nil || op == authz.OpAny {
			return nil, usageErrorf("--operation %q: want one of ALL, READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE", name)
		}
		ops = append(ops, kmsg.ACLOperation(op))
	}
	for _, p := range append(append([]string(nil), f.allow...), f.deny...) {
		if err := authz.ValidatePrincipal(p); err != nil {
			return nil, usageErrorf("principal %q: want Type:Name, e.g. User:alice", p)
		}
	}
	b := kadm.NewACLs().ResourcePatternType(kmsg.ACLResourcePatternType(pattern))
	if len(f.topics) > 0 {
		b.Topics(f.topics...)
	}
	if len(f.groups) > 0 {
		b.Groups(f.groups...)
	}
	if len(f.txnIDs) > 0 {
		b.TransactionalIDs(f.txnIDs...)
	}
	if f.cluster {
		b.Clusters()
	}
	if sub == "create" {
		switch {
		case pattern != authz.PatternLiteral && pattern != authz.PatternPrefixed:
			return nil, usageErrorf("create: --resource-pattern-type must be literal or prefixed")
		case len(f.allow)+len(f.deny) == 0:
			return nil, usageErrorf("create: give --allow-principal or --deny-principal")
		case len(ops) == 0:
			return nil, usageErrorf("create: give --operation")
		case !f.hasResource():
			return nil, usageErrorf("create: give a resource: --topic, --group, --cluster or --transactional-id")
		}
		hosts := f.hosts
		if len(hosts) == 0 {
			hosts = []string{authz.Wildcard}
		}
		if len(f.allow) > 0 {
			b.Allow(f.allow...).AllowHosts(hosts...)
		}
		if len(f.deny) > 0 {
			b.Deny(f.deny...).DenyHosts(hosts...)
		}
		return b.Operations(ops...), nil
	}
	if !f.hasResource() {
		if sub == "delete" {
			return nil, usageErrorf("delete: give a resource: --topic, --group, --cluster or --transactional-id")
		}
		b.AnyResource()
		if f.patternType == "literal" { // the default: no resource means every pattern
			b.ResourcePatternType(kadm.ACLPatternAny)
		}
	}
	if len(f.allow)+len(f.deny) == 0 {
		b.Allow().Deny()
	} else {
		b.MaybeAllow(f.allow...).MaybeDeny(f.deny...)
	}
	if len(f.hosts) == 0 {
		b.AllowHosts().DenyHosts()
	} else {
		b.AllowHosts(f.hosts...).DenyHosts(f.hosts...)
	}
	return b.Operations(ops...), nil
}

func runACLs(args []string, stdout, stderr io.Writer) error {
	var flags aclFlags
	sub, k, err := parseKafkaCommand("acls", aclsUsage, "list, create, delete", args, stderr, flags.register)
	if err != nil {
		return err
	}
	defer k.client.Close()
	switch sub {
	case "list", "create", "delete":
	default:
		return usageErrorf("unknown subcommand %q (list, create, delete)", sub)
	}
	b, err := flags.builder(sub)
	if err != nil {
		return err
	}
	ctx, cancel := k.context()
	defer cancel()
	acls, err := runACLCommand(ctx, k.adm, sub, b)
	if err != nil {
		return err
	}
	sort.Slice(acls, func(i, j int) bool { return fmt.Sprint(acls[i]) < fmt.Sprint(acls[j]) })
	return k.emit(stdout, acls, func(tw *tabwriter.Writer) {
		fmt.Fprintln(tw, "PRINCIPAL\tHOST\tPERMISSION\tOPERATION\tRESOURCE TYPE\tPATTERN\tNAME")
		for _, a := range acls {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.Principal, a.Host, a.Permission, a.Operation, a.ResourceType, a.PatternType, a.ResourceName)
		}
	})
}

func aclInfo(principal, host string, perm kmsg.ACLPermissionType, op kmsg.ACLOperation, rt kmsg.ACLResourceType, pt kmsg.ACLResourcePatternType, name string) ACLInfo {
	return ACLInfo{Principal: principal, Host: host, Permission: perm.String(), Operation: op.String(), ResourceType: rt.String(), PatternType: pt.String(), ResourceName: name}
}

// runACLCommand sends sub's requests and returns the ACLs listed, created
// or deleted; any per-ACL error fails the command.
func runACLCommand(ctx context.Context, adm *kadm.Client, sub string, b *kadm.ACLBuilder) ([]ACLInfo, error) {
	out := []ACLInfo{}
	switch sub {
	case "list":
		results, err := adm.DescribeACLs(ctx, b)
		if err != nil {
			return nil, fmt.Errorf("list ACLs: %w", err)
		}
		for _, r := range results {
			if r.Err != nil {
				return nil, fmt.Errorf("list ACLs: %w (%s)", r.Err, r.ErrMessage)
			}
			for _, d := range r.Described {
				out = append(out, aclInfo(d.Principal, d.Host, d.Permission, d.Operation, d.Type, d.Pattern, d.Name))
			}
		}
	case "create":
		results, err := adm.CreateACLs(ctx, b)
		if err != nil {
			return nil, fmt.Errorf("create ACLs: %w", err)
		}
		for _, r := range results {
			if r.Err != nil {
				return nil, fmt.Errorf("create ACL for %s on %s %s: %w (%s)", r.Principal, r.Type, r.Name, r.Err, r.ErrMessage)
			}
			out = append(out, aclInfo(r.Principal, r.Host, r.Permission, r.Operation, r.Type, r.Pattern, r.Name))
		}
	case "delete":
		results, err := adm.DeleteACLs(ctx, b)
		if err != nil {
			return nil, fmt.Errorf("delete ACLs: %w", err)
		}
		for _, r := range results {
			if r.Err != nil {
				return nil, fmt.Errorf("delete ACLs: %w (%s)", r.Err, r.ErrMessage)
			}
			for _, d := range r.Deleted {
				out = append(out, aclInfo(d.Principal, d.Host, d.Permission, d.Operation, d.Type, d.Pattern, d.Name))
			}
		}
	}
	return out, nil
}

// buildAuthorizer is the broker's authorizer of --authorizer, --super-users
// and --allow-everyone-if-no-acl-found: nil for none.
func (f *serveFlags) buildAuthorizer() (*authz.Authorizer, error) {
	switch f.authorizer {
	case "none":
		if f.superUsers != "" || f.allowEveryoneIfNoACL {
			return nil, usageErrorf("--super-users and --allow-everyone-if-no-acl-found need --authorizer acl")
		}
		return nil, nil
	case "acl":
	default:
		return nil, usageErrorf("--authorizer %q: want acl or none", f.authorizer)
	}
	a := &authz.Authorizer{SuperUsers: map[string]bool{}, AllowEveryoneIfNoACLFound: f.allowEveryoneIfNoACL}
	for _, p := range strings.Split(f.superUsers, ";") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if err := authz.ValidatePrincipal(p); err != nil {
			return nil, usageErrorf("--super-users %q: want Type:Name;Type:Name, e.g. User:admin", f.superUsers)
		}
		a.SuperUsers[p] = true
	}
	return a, nil
}
