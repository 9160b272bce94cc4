//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/strata-log/strata/broker/authn/authntest"
)

// TestSASLSSLReplicationLeaderKill: three nodes with SASL_SSL on every
// Kafka listener — clients on CLIENT as PLAIN users, brokers replicating
// over INTERNAL as their SCRAM-SHA-512 user (stored in the quorum,
// created by an admin once the cluster runs). A client sending a Fetch
// with a follower's replica id is refused. An acks=all idempotent
// producer streams into an RF=3 topic; its partition leader is killed -9
// mid-stream; a consumer group reads every acknowledged record back from
// the survivors.
func TestSASLSSLReplicationLeaderKill(t *testing.T) {
	ca := authntest.NewCA(t, "strata-e2e-ca")
	dir := t.TempDir()
	users := filepath.Join(dir, "users")
	creds := filepath.Join(dir, "broker.properties")
	for path, data := range map[string]string{
		users: "admin:admin-secret\n",
		creds: "sasl.username=broker\nsasl.password=broker-secret\n",
	} {
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c := startClusterWith(t, 3, func(id int32, b *brokerProcess) (string, []string) {
		files := ca.WriteNodeFiles(t, t.TempDir(), id, pkix.Name{CommonName: fmt.Sprintf("broker-%d", id)})
		return "", []string{"--listeners", "CLIENT=" + b.addr + ",INTERNAL=" + freePort(t), "--inter-broker-listener", "INTERNAL",
			"--listener-security-protocol-map", "CLIENT:SASL_SSL,INTERNAL:SASL_SSL",
			"--ssl-cert-file", files.Cert, "--ssl-key-file", files.Key, "--ssl-ca-file", files.CA,
			"--sasl-enabled-mechanisms", "PLAIN,SCRAM-SHA-512", "--sasl-plain-users-file", users,
			"--sasl-mechanism-inter-broker-protocol", "SCRAM-SHA-512", "--sasl-inter-broker-credentials-file", creds,
			"--replica-lag-time-max-ms", "5000", "--offsets-topic-num-partitions", "3"}
	})
	secure := []kgo.Opt{
		kgo.DialTLSConfig(&tls.Config{MinVersion: tls.VersionTLS12, RootCAs: ca.Pool()}),
		kgo.SASL(plain.Auth{User: "admin", Pass: "admin-secret"}.AsMechanism()),
	}
	ctx := testContext(t, 2*time.Minute)
	adm := kadm.NewClient(c.client(t, secure...))
	altered, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{User: "broker", Mechanism: kadm.ScramSha512, Iterations: 8192, Password: "broker-secret"}})
	if err != nil || altered.Error() != nil {
		t.Fatalf("creating the brokers' SCRAM user: %v %v", err, altered.Error())
	}
	topic := uniqueTopic(t)
	if resp, err := adm.CreateTopic(ctx, 1, 3, map[string]*string{"min.insync.replicas": kadm.StringPtr("2")}, topic); err != nil || resp.Err != nil {
		t.Fatalf("create: %v %v", err, resp.Err)
	}
	// Both followers replicate over the SASL_SSL inter-broker listener.
	var leader int32
	eventually(t, time.Minute, "all three replicas in sync", func() error {
		described, err := adm.ListTopics(ctx, topic)
		if err != nil {
			return err
		}
		p := described[topic].Partitions[0]
		if p.Leader < 1 || len(p.ISR) != 3 {
			return fmt.Errorf("leader %d, ISR %v", p.Leader, p.ISR)
		}
		leader = p.Leader
		return nil
	})

	// A client (the admin user, over the client listener) posing as a
	// follower is refused, and the brokers' own replica fetches never are.
	var follower int32
	for id := range c.nodes {
		if id != leader {
			follower = id
		}
	}
	meta, err := adm.ListTopics(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	fetch := kmsg.NewPtrFetchRequest()
	fetch.ReplicaID, fetch.ReplicaState.ID, fetch.MaxBytes = follower, follower, 1<<20
	fetch.Topics = []kmsg.FetchRequestTopic{{Topic: topic, TopicID: meta[topic].ID,
		Partitions: []kmsg.FetchRequestTopicPartition{{Partition: 0, PartitionMaxBytes: 1 << 20, CurrentLeaderEpoch: -1, LastFetchedEpoch: -1}}}}
	posing := c.client(t, secure...)
	resp, err := fetch.RequestWith(ctx, posing.Broker(int(leader)))
	if err != nil {
		t.Fatal(err)
	}
	if code := resp.Topics[0].Partitions[0].ErrorCode; code != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("a client's Fetch as replica %d: %v, want TOPIC_AUTHORIZATION_FAILED", follower, kerr.ErrorForCode(code))
	}
	if refused := metricValue(t, c.nodes[leader], "strata_replica_requests_refused_total"); refused != 1 {
		t.Fatalf("leader refused %v replica requests, want 1 (the client's): the brokers' own were refused too", refused)
	}

	// The group's coordinator topic (RF=3) exists before a broker dies:
	// it is never created with fewer replicas.
	group := uniqueTopic(t) + "-group"
	eventually(t, time.Minute, "a coordinator for the group", func() error {
		found := adm.FindGroupCoordinators(ctx, group)
		return found.Error()
	})

	producer := c.client(t, append(secure, kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordDeliveryTimeout(30*time.Second))...)
	var acked []string
	failed := 0
	produce := func(batches int) {
		for range batches {
			var recs []*kgo.Record
			for range 10 {
				recs = append(recs, &kgo.Record{Value: fmt.Appendf(nil, "record-%05d", len(acked)+failed+len(recs))})
			}
			for _, r := range producer.ProduceSync(ctx, recs...) {
				if r.Err != nil {
					failed++
					continue
				}
				acked = append(acked, string(r.Record.Value))
			}
		}
	}
	produce(30)
	c.nodes[leader].kill()
	t.Logf("killed leader %d after %d acknowledged records", leader, len(acked))
	produce(30)
	if len(acked) < 400 {
		t.Fatalf("only %d records acknowledged (%d failed) around the leader's kill", len(acked), failed)
	}

	consumer := c.client(t, append(secure, kgo.SeedBrokers(c.seeds(leader)...), kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(500*time.Millisecond))...)
	want := map[string]bool{}
	for _, v := range acked {
		want[v] = true
	}
	readCtx, cancel := context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	for len(want) > 0 {
		fetches := consumer.PollFetches(readCtx)
		if readCtx.Err() != nil {
			t.Fatalf("%d of %d acknowledged records not read back, e.g. %v", len(want), len(acked), firstKey(want))
		}
		fetches.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Logf("fetch %s[%d]: %v", topic, p, err)
			}
		})
		fetches.EachRecord(func(r *kgo.Record) { delete(want, string(r.Value)) })
	}
	t.Logf("read back all %d acknowledged records (%d not acknowledged) with a consumer group", len(acked), failed)
}

func firstKey(m map[string]bool) string {
	for k := range m {
		return k
	}
	return ""
}
