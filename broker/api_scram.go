package broker

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/authz"
	"github.com/strata-log/strata/broker/authn"
	"github.com/strata-log/strata/metadata"
)

// DescribeUserScramCredentials and AlterUserScramCredentials (KIP-554):
// SCRAM users, stored in the metadata quorum (metadata.ScramCredential).
// The salted password a client sends is turned into the stored and server
// keys here; neither it nor any password is kept or logged.

func init() {
	register(0, 0, handleDescribeUserScramCredentials)
	register(0, 0, handleAlterUserScramCredentials)
}

func handleDescribeUserScramCredentials(c *clientConn, _ requestHeader, req *kmsg.DescribeUserSCRAMCredentialsRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.DescribeUserSCRAMCredentialsResponse)
	if !c.authorizedCluster(authz.OpDescribe) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return resp, nil
	}
	byUser := map[string][]kmsg.DescribeUserSCRAMCredentialsResponseResultCredentialInfo{}
	var order []string
	for _, cred := range c.server.cfg.Metadata.State().ScramCredentials() {
		if _, seen := byUser[cred.User]; !seen {
			order = append(order, cred.User)
		}
		byUser[cred.User] = append(byUser[cred.User], kmsg.DescribeUserSCRAMCredentialsResponseResultCredentialInfo{Mechanism: cred.Mechanism, Iterations: cred.Iterations})
	}
	result := func(user string) kmsg.DescribeUserSCRAMCredentialsResponseResult {
		r := kmsg.NewDescribeUserSCRAMCredentialsResponseResult()
		r.User = user
		if infos, ok := byUser[user]; ok {
			r.CredentialInfos = infos
		} else {
			r.ErrorCode = kerr.ResourceNotFound.Code
			msg := "attempt to describe a user credential that does not exist: " + user
			r.ErrorMessage = &msg
		}
		return r
	}
	if req.Users == nil { // null: every user
		for _, user := range order {
			resp.Results = append(resp.Results, result(user))
		}
		return resp, nil
	}
	count := map[string]int{}
	for _, u := range req.Users {
		count[u.Name]++
	}
	answered := map[string]bool{}
	for _, u := range req.Users {
		if answered[u.Name] {
			continue
		}
		answered[u.Name] = true
		if count[u.Name] > 1 {
			r := kmsg.NewDescribeUserSCRAMCredentialsResponseResult()
			r.User, r.ErrorCode = u.Name, kerr.DuplicateResource.Code
			msg := "user named more than once: " + u.Name
			r.ErrorMessage = &msg
			resp.Results = append(resp.Results, r)
			continue
		}
		resp.Results = append(resp.Results, result(u.Name))
	}
	return resp, nil
}

func handleAlterUserScramCredentials(c *clientConn, _ requestHeader, req *kmsg.AlterUserSCRAMCredentialsRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.AlterUserSCRAMCredentialsResponse)
	type key struct {
		user      string
		mechanism int8
	}
	seen := map[key]int{}
	var users []string
	codes := map[string]int16{}
	messages := map[string]string{}
	note := func(user string) {
		if _, ok := codes[user]; !ok {
			codes[user] = 0
			users = append(users, user)
		}
	}
	fail := func(user string, err *kerr.Error, msg string) {
		if codes[user] == 0 {
			codes[user], messages[user] = err.Code, msg
		}
	}
	for _, d := range req.Deletions {
		note(d.Name)
		seen[key{d.Name, d.Mechanism}]++
	}
	for _, u := range req.Upsertions {
		note(u.Name)
		seen[key{u.Name, u.Mechanism}]++
	}
	for k, n := range seen {
		if n > 1 {
			fail(k.user, kerr.DuplicateResource, "a user's mechanism is named more than once")
		}
	}
	if !c.authorizedCluster(authz.OpAlter) {
		for _, user := range users {
			fail(user, kerr.ClusterAuthorizationFailed, "ALTER on the cluster is required to change SCRAM credentials")
		}
	}
	state := c.server.cfg.Metadata.State()
	var deletions []metadata.ScramDeletion
	var upserts []metadata.ScramCredential
	for _, d := range req.Deletions {
		switch _, known := authn.ScramMechanismOf(d.Mechanism); {
		case d.Name == "":
			fail(d.Name, kerr.UnacceptableCredential, "empty user name")
		case !known:
			fail(d.Name, kerr.UnsupportedSaslMechanism, "unknown SCRAM mechanism")
		default:
			if _, ok := state.ScramCredential(d.Name, d.Mechanism); !ok {
				fail(d.Name, kerr.ResourceNotFound, "attempt to delete a user credential that does not exist")
			}
			deletions = append(deletions, metadata.ScramDeletion{User: d.Name, Mechanism: d.Mechanism})
		}
	}
	for _, u := range req.Upsertions {
		m, known := authn.ScramMechanismOf(u.Mechanism)
		switch {
		case u.Name == "":
			fail(u.Name, kerr.UnacceptableCredential, "empty user name")
			continue
		case !known:
			fail(u.Name, kerr.UnsupportedSaslMechanism, "unknown SCRAM mechanism")
			continue
		case u.Iterations < metadata.MinScramIterations || u.Iterations > metadata.MaxScramIterations:
			fail(u.Name, kerr.UnacceptableCredential, "iterations must be between 4096 and 16384")
			continue
		case len(u.Salt) == 0:
			fail(u.Name, kerr.UnacceptableCredential, "empty salt")
			continue
		}
		cred, err := authn.ScramCredentialFromSalted(m, u.Salt, u.SaltedPassword, int(u.Iterations))
		if err != nil {
			fail(u.Name, kerr.UnacceptableCredential, err.Error())
			continue
		}
		upserts = append(upserts, metadata.ScramCredential{User: u.Name, Mechanism: u.Mechanism, Salt: cred.Salt,
			Iterations: u.Iterations, StoredKey: cred.StoredKey, ServerKey: cred.ServerKey})
	}
	// Only users whose every change is valid are altered, together.
	deletions = keepOK(deletions, func(d metadata.ScramDeletion) string { return d.User }, codes)
	upserts = keepOK(upserts, func(u metadata.ScramCredential) string { return u.User }, codes)
	if len(deletions)+len(upserts) > 0 {
		ctx, cancel := c.server.adminContext(30_000)
		err := c.server.cfg.Metadata.AlterScramCredentials(ctx, upserts, deletions)
		cancel()
		if err != nil {
			for _, user := range users {
				fail(user, kerr.ErrorForCode(adminCommitErrorCode(err, nil)).(*kerr.Error), "storing the credentials failed: "+err.Error())
			}
		}
	}
	for _, user := range users {
		r := kmsg.NewAlterUserSCRAMCredentialsResponseResult()
		r.User, r.ErrorCode = user, codes[user]
		if msg, ok := messages[user]; ok {
			r.ErrorMessage = &msg
		}
		resp.Results = append(resp.Results, r)
	}
	return resp, nil
}

// keepOK keeps the changes of users without an error code.
func keepOK[T any](changes []T, user func(T) string, codes map[string]int16) []T {
	var out []T
	for _, change := range changes {
		if codes[user(change)] == 0 {
			out = append(out, change)
		}
	}
	return out
}
