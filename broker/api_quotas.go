package broker

import (
	"slices"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/authz"
	"github.com/strata-log/strata/metadata"
)

// DescribeClientQuotas and AlterClientQuotas (KIP-546): the client quotas
// stored in the metadata quorum (metadata.ClientQuota), with Kafka's
// entity types, match semantics and errors. broker/quota enforces them.

func init() {
	register(0, 1, handleDescribeClientQuotas)
	register(0, 1, handleAlterClientQuotas)
}

// Kafka's quota entity types.
const (
	quotaEntityUser     = "user"
	quotaEntityClientID = "client-id"
	quotaEntityIP       = "ip"
)

// quotaTimeoutMillis bounds an AlterClientQuotas commit.
const quotaTimeoutMillis = 30000

// quotaFilter is a DescribeClientQuotas request's components: entity
// types that must have a given name (nil: the default), and types that
// must be present with any name (the default included, as Kafka's KRaft
// controller matches them).
type quotaFilter struct {
	exact  map[string]*string
	any    map[string]bool
	strict bool
}

// parseQuotaFilter checks the components as Kafka does: an error code
// and message for the whole response, or the filter.
func parseQuotaFilter(req *kmsg.DescribeClientQuotasRequest) (quotaFilter, *kerr.Error, string) {
	f := quotaFilter{exact: map[string]*string{}, any: map[string]bool{}, strict: req.Strict}
	for _, component := range req.Components {
		typ := component.EntityType
		_, seenExact := f.exact[typ]
		switch {
		case typ == "":
			return f, kerr.InvalidRequest, "invalid empty entity type"
		case seenExact || f.any[typ]:
			return f, kerr.InvalidRequest, "entity type " + typ + " cannot appear more than once in the filter"
		}
		if typ != quotaEntityUser && typ != quotaEntityClientID && typ != quotaEntityIP {
			return f, kerr.UnsupportedVersion, "unsupported entity type " + typ
		}
		switch component.MatchType {
		case kmsg.QuotasMatchTypeExact:
			if component.Match == nil {
				return f, kerr.InvalidRequest, "match type EXACT needs a match string"
			}
			f.exact[typ] = component.Match
		case kmsg.QuotasMatchTypeDefault:
			if component.Match != nil {
				return f, kerr.InvalidRequest, "match type DEFAULT takes no match string"
			}
			f.exact[typ] = nil
		case kmsg.QuotasMatchTypeAny:
			if component.Match != nil {
				return f, kerr.InvalidRequest, "match type ANY takes no match string"
			}
			f.any[typ] = true
		default:
			return f, kerr.UnsupportedVersion, "unknown match type " + component.MatchType.String()
		}
	}
	_, exactIP := f.exact[quotaEntityIP]
	_, exactUser := f.exact[quotaEntityUser]
	_, exactClient := f.exact[quotaEntityClientID]
	if (exactIP || f.any[quotaEntityIP]) && (exactUser || exactClient || f.any[quotaEntityUser] || f.any[quotaEntityClientID]) {
		return f, kerr.InvalidRequest, "an ip filter component cannot be used with user or client-id components"
	}
	return f, nil, ""
}

// quotaEntityParts is an entity as Kafka's map of type to name (nil: the
// default).
func quotaEntityParts(e metadata.QuotaEntity) map[string]*string {
	parts := map[string]*string{}
	for typ, name := range map[string]metadata.QuotaName{quotaEntityUser: e.User, quotaEntityClientID: e.ClientID} {
		if !name.Present {
			continue
		}
		if name.Default {
			parts[typ] = nil
		} else {
			parts[typ] = &name.Name
		}
	}
	return parts
}

func (f quotaFilter) matches(e metadata.QuotaEntity) bool {
	parts := quotaEntityParts(e)
	if f.strict && len(parts) != len(f.exact)+len(f.any) {
		return false
	}
	for typ, want := range f.exact {
		got, ok := parts[typ]
		if !ok || (got == nil) != (want == nil) || (got != nil && *got != *want) {
			return false
		}
	}
	for typ := range f.any {
		if _, ok := parts[typ]; !ok {
			return false
		}
	}
	return true
}

func handleDescribeClientQuotas(c *clientConn, _ requestHeader, req *kmsg.DescribeClientQuotasRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.DescribeClientQuotasResponse)
	fail := func(err *kerr.Error, msg string) (kmsg.Response, error) {
		resp.ErrorCode, resp.ErrorMessage = err.Code, &msg
		return resp, nil
	}
	if !c.authorizedCluster(authz.OpDescribeConfigs) {
		return fail(kerr.ClusterAuthorizationFailed, "DESCRIBE_CONFIGS on the cluster is required to describe client quotas")
	}
	filter, err, msg := parseQuotaFilter(req)
	if err != nil {
		return fail(err, msg)
	}
	for _, q := range c.server.cfg.Metadata.State().ClientQuotas() {
		if !filter.matches(q.Entity) {
			continue
		}
		entry := kmsg.NewDescribeClientQuotasResponseEntry()
		parts := quotaEntityParts(q.Entity)
		for _, typ := range []string{quotaEntityUser, quotaEntityClientID} {
			if name, ok := parts[typ]; ok {
				entity := kmsg.NewDescribeClientQuotasResponseEntryEntity()
				entity.Type, entity.Name = typ, name
				entry.Entity = append(entry.Entity, entity)
			}
		}
		keys := make([]string, 0, len(q.Values))
		for key := range q.Values {
			keys = append(keys, key)
		}
		slices.Sort(keys)
		for _, key := range keys {
			value := kmsg.NewDescribeClientQuotasResponseEntryValue()
			value.Key, value.Value = key, q.Values[key]
			entry.Values = append(entry.Values, value)
		}
		resp.Entries = append(resp.Entries, entry)
	}
	return resp, nil
}

// quotaAlteration turns a request entry into an alteration, validated as
// the state machine will: an error code and message, or the alteration.
func quotaAlteration(entry kmsg.AlterClientQuotasRequestEntry) (metadata.QuotaAlteration, *kerr.Error, string) {
	var a metadata.QuotaAlteration
	if len(entry.Entity) == 0 {
		return a, kerr.InvalidRequest, "invalid empty client quota entity"
	}
	for _, part := range entry.Entity {
		var name *metadata.QuotaName
		switch part.Type {
		case quotaEntityUser:
			name = &a.Entity.User
		case quotaEntityClientID:
			name = &a.Entity.ClientID
		case quotaEntityIP:
			return a, kerr.InvalidRequest, "ip quotas (connection_creation_rate) are not supported by Strata"
		default:
			return a, kerr.InvalidRequest, "unhandled client quota entity type: " + part.Type
		}
		if name.Present {
			return a, kerr.InvalidRequest, "duplicate entity entry " + part.Type
		}
		switch {
		case part.Name == nil:
			*name = metadata.DefaultQuota
		case *part.Name == "":
			return a, kerr.InvalidRequest, "empty " + part.Type + " not supported"
		default:
			*name = metadata.NamedQuota(*part.Name)
		}
	}
	for _, op := range entry.Ops {
		a.Ops = append(a.Ops, metadata.QuotaOp{Key: op.Key, Value: op.Value, Remove: op.Remove})
	}
	validate := a.Validate
	if len(a.Ops) == 0 {
		validate = a.Entity.Validate // nothing to change: Kafka answers success
	}
	if err := validate(); err != nil {
		return a, kerr.InvalidRequest, strings.TrimPrefix(err.Error(), metadata.ErrInvalidClientQuota.Error()+": ")
	}
	return a, nil, ""
}

func handleAlterClientQuotas(c *clientConn, _ requestHeader, req *kmsg.AlterClientQuotasRequest) (kmsg.Response, error) {
	s := c.server
	resp := req.ResponseKind().(*kmsg.AlterClientQuotasResponse)
	resp.Entries = make([]kmsg.AlterClientQuotasResponseEntry, 0, len(req.Entries)) // one per request entry: no regrowth
	authorized := c.authorizedCluster(authz.OpAlterConfigs)
	var alterations []metadata.QuotaAlteration
	var valid []int // indexes in resp.Entries of alterations
	entities := map[metadata.QuotaEntity]int{}
	for _, entry := range req.Entries {
		out := kmsg.NewAlterClientQuotasResponseEntry()
		for _, part := range entry.Entity {
			e := kmsg.NewAlterClientQuotasResponseEntryEntity()
			e.Type, e.Name = part.Type, part.Name
			out.Entity = append(out.Entity, e)
		}
		fail := func(err *kerr.Error, msg string) {
			out.ErrorCode, out.ErrorMessage = err.Code, &msg
		}
		a, err, msg := quotaAlteration(entry)
		switch {
		case !authorized:
			fail(kerr.ClusterAuthorizationFailed, "ALTER_CONFIGS on the cluster is required to alter client quotas")
		case err != nil:
			fail(err, msg)
		default:
			if first, dup := entities[a.Entity]; dup {
				// Both refused: which of them should win is not for
				// the broker to guess.
				dupMsg := "entity " + a.Entity.String() + " named more than once in the request"
				fail(kerr.InvalidRequest, dupMsg)
				resp.Entries[first].ErrorCode, resp.Entries[first].ErrorMessage = kerr.InvalidRequest.Code, &dupMsg
				break
			}
			entities[a.Entity] = len(resp.Entries)
			alterations = append(alterations, a)
			valid = append(valid, len(resp.Entries))
		}
		resp.Entries = append(resp.Entries, out)
	}
	// Keep the alterations no later duplicate refused.
	var keep []metadata.QuotaAlteration
	var keepIndexes []int
	for j, i := range valid {
		if resp.Entries[i].ErrorCode == 0 && len(alterations[j].Ops) > 0 {
			keep = append(keep, alterations[j])
			keepIndexes = append(keepIndexes, i)
		}
	}
	if req.ValidateOnly || len(keep) == 0 {
		return resp, nil
	}
	ctx, cancel := s.adminContext(quotaTimeoutMillis)
	defer cancel()
	for start := 0; start < len(keep); start += metadata.MaxQuotaAlterationsPerCommand {
		end := min(start+metadata.MaxQuotaAlterationsPerCommand, len(keep))
		if err := s.cfg.Metadata.AlterClientQuotas(ctx, keep[start:end]); err != nil {
			s.log.Warn("altering client quotas failed", "entities", end-start, "err", err)
			code, msg := adminCommitErrorCode(err, metadata.ErrInvalidClientQuota), "altering client quotas: "+err.Error()
			for _, i := range keepIndexes[start:end] {
				resp.Entries[i].ErrorCode, resp.Entries[i].ErrorMessage = code, &msg
			}
			continue
		}
		for _, a := range keep[start:end] {
			s.log.Info("client quotas altered", "entity", a.Entity.String(), "ops", formatQuotaOps(a.Ops))
		}
	}
	return resp, nil
}

func formatQuotaOps(ops []metadata.QuotaOp) string {
	var parts []string
	for _, op := range ops {
		if op.Remove {
			parts = append(parts, "-"+op.Key)
		} else {
			parts = append(parts, op.Key+"="+strconv.FormatFloat(op.Value, 'f', -1, 64))
		}
	}
	return strings.Join(parts, ",")
}
