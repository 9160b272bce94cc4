package broker

import (
	"context"
	"fmt"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/strata-log/strata/metadata"
)

// TestAdminCommitErrorCodeLeadershipIsRetriable: a client-quota, ACL or
// SCRAM credential change the quorum did not commit because it was between leaders
// (metadata.ErrNotLeader, as the store returns it when this node is not
// the leader and none is known, or when leadership was lost while the
// command was being committed) is answered REQUEST_TIMED_OUT, retriable,
// as CreateTopics, DeleteTopics, CreatePartitions and (Incremental)
// AlterConfigs answer it and as Kafka's forwarding broker answers a
// controller it could not get an answer from, never
// UNKNOWN_SERVER_ERROR; an invalid change stays INVALID_REQUEST.
func TestAdminCommitErrorCodeLeadershipIsRetriable(t *testing.T) {
	for _, api := range []struct {
		name    string
		invalid error
	}{
		{"AlterClientQuotas", metadata.ErrInvalidClientQuota},
		{"CreateAcls/DeleteAcls", metadata.ErrInvalidACL},
		{"AlterUserScramCredentials", nil},
	} {
		for _, c := range []struct {
			err  error
			want *kerr.Error
		}{
			{fmt.Errorf("%w: %w", metadata.ErrNotLeader, raft.ErrLeadershipLost), kerr.RequestTimedOut},
			{fmt.Errorf("%w: %w", metadata.ErrNotLeader, raft.ErrNotLeader), kerr.RequestTimedOut},
			{fmt.Errorf("%w (no leader is known)", metadata.ErrNotLeader), kerr.RequestTimedOut},
			{context.DeadlineExceeded, kerr.RequestTimedOut},
		} {
			if got := adminCommitErrorCode(c.err, api.invalid); got != c.want.Code {
				t.Errorf("%s, %q: %v, want %v", api.name, c.err, kerr.ErrorForCode(got), c.want)
			}
		}
		if api.invalid == nil {
			continue // the state machine refuses none of its changes as invalid
		}
		if got := adminCommitErrorCode(fmt.Errorf("%w: bad", api.invalid), api.invalid); got != kerr.InvalidRequest.Code {
			t.Errorf("%s, invalid: %v, want INVALID_REQUEST", api.name, kerr.ErrorForCode(got))
		}
	}
	if !kerr.IsRetriable(kerr.RequestTimedOut) {
		t.Fatal("REQUEST_TIMED_OUT is not retriable")
	}
}
