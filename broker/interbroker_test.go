package broker_test

import (
	"context"
	"crypto/tls"
	"crypto/x509/pkix"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/strata-log/strata/authz"
	"github.com/strata-log/strata/broker"
	"github.com/strata-log/strata/broker/authn"
	"github.com/strata-log/strata/broker/authn/authntest"
	"github.com/strata-log/strata/broker/brokertest"
	"github.com/strata-log/strata/metadata"
	"github.com/strata-log/strata/metadata/metadatatest"
)

// writeSecret writes a 0600 file in dir and returns its path.
func writeSecret(t *testing.T, dir, name, data string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// interBrokerSASL configures SASL_PLAINTEXT CLIENT and INTERNAL listeners
// (INTERNAL the inter-broker one) with PLAIN users alice and broker, the
// brokers' user.
func interBrokerSASL(t *testing.T) func(*broker.Config) {
	dir := t.TempDir()
	users, err := authn.LoadPlainUsers(writeSecret(t, dir, "users", "alice:alice-secret\nbroker:broker-secret\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	creds, _, err := authn.LoadCredentialsFile(writeSecret(t, dir, "broker.properties", "sasl.username=broker\nsasl.password=broker-secret\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	return func(c *broker.Config) {
		c.Listeners[0].SecurityProtocol = authn.SASLPlaintext
		c.Listeners = append(c.Listeners, broker.Listener{Name: "INTERNAL", Address: "127.0.0.1:0", SecurityProtocol: authn.SASLPlaintext})
		c.InterBrokerListener = "INTERNAL"
		c.PlainUsers = users
		c.InterBrokerSASLMechanism = "PLAIN"
		c.InterBrokerCredentials = creds
	}
}

// interBrokerMTLS configures one SSL listener (CLIENT, also the
// inter-broker one) with mutual TLS and this node's node certificate.
func interBrokerMTLS(t *testing.T, ca *authntest.CA) func(*broker.Config) {
	files := ca.WriteNodeFiles(t, t.TempDir(), metadatatest.NodeID, pkix.Name{CommonName: "broker-1"})
	id, err := authn.NewTLS(authn.TLSFiles{CertFile: files.Cert, KeyFile: files.Key, CAFile: files.CA, ClientAuth: authn.ClientAuthRequired}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return func(c *broker.Config) {
		c.Listeners[0].SecurityProtocol = authn.SSL
		c.TLS = id
	}
}

// tlsClient dials with a certificate of ca: a node certificate of node
// (>= 0), else a client certificate.
func tlsClient(t *testing.T, ca *authntest.CA, node int32) kgo.Opt {
	t.Helper()
	var certPEM, keyPEM []byte
	if node >= 0 {
		certPEM, keyPEM = ca.IssueNode(t, node, pkix.Name{CommonName: "node"})
	} else {
		certPEM, keyPEM = ca.Issue(t, pkix.Name{CommonName: "client"})
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return kgo.DialTLSConfig(&tls.Config{MinVersion: tls.VersionTLS12, RootCAs: ca.Pool(), Certificates: []tls.Certificate{pair}})
}

// TestReplicaFetchBoundToBrokerPrincipal: a Fetch with a replica id moves
// the follower's state on the leader (its offset counts for the high
// watermark), so it is accepted only from a broker — the inter-broker SASL
// user, a node certificate naming that replica — or, under --authorizer
// acl, a principal with CLUSTER_ACTION. Anyone else gets
// TOPIC_AUTHORIZATION_FAILED and the high watermark does not move;
// OffsetForLeaderEpoch as a replica is refused the same way.
func TestReplicaFetchBoundToBrokerPrincipal(t *testing.T) {
	ca := authntest.NewCA(t, "ca")
	alice := kgo.SASL(plain.Auth{User: "alice", Pass: "alice-secret"}.AsMechanism())
	brokerUser := kgo.SASL(plain.Auth{User: "broker", Pass: "broker-secret"}.AsMechanism())
	tests := []struct {
		name     string
		config   func(*broker.Config)
		producer kgo.Opt         // how the test's producer connects
		granted  []authz.Binding // ACLs from the start
		refused  []kgo.Opt       // connections whose replica requests are refused
		acls     []authz.Binding // ACLs granted after the refusals
		allowed  kgo.Opt         // a connection whose replica fetch counts
	}{
		{
			name: "SASL inter-broker listener, no authorizer", config: interBrokerSASL(t), producer: alice,
			refused: []kgo.Opt{alice},
			allowed: brokerUser, // on the client listener too: the principal makes the broker
		},
		{
			name: "mutual TLS with node certificates, no authorizer", config: interBrokerMTLS(t, ca), producer: tlsClient(t, ca, -1),
			refused: []kgo.Opt{tlsClient(t, ca, -1), tlsClient(t, ca, 3)}, // a client; another node's certificate
			allowed: tlsClient(t, ca, 2),
		},
		{
			name: "ACL authorizer, PLAINTEXT", config: func(c *broker.Config) { c.Authorizer = &authz.Authorizer{} },
			producer: kgo.ClientID("producer"),
			granted:  []authz.Binding{anonymousACL(authz.OpWrite, authz.PermissionAllow, authz.ResourceTopic, "t")},
			refused:  []kgo.Opt{kgo.ClientID("anonymous without CLUSTER_ACTION")},
			acls:     []authz.Binding{anonymousACL(authz.OpClusterAction, authz.PermissionAllow, authz.ResourceCluster, authz.ClusterName)},
			allowed:  kgo.ClientID("anonymous with CLUSTER_ACTION"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Broker 2 never fetches on its own: no controlled shutdown
			// waiting for it at the end.
			n := brokertest.Start(t, tt.config, func(c *broker.Config) { c.ControlledShutdownTimeout = -1 })
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			registration := metadata.BrokerRegistration{ID: 2, IncarnationID: uuid.New(), DirectoryID: uuid.New(),
				Endpoints: []metadata.BrokerEndpoint{{Listener: "CLIENT", Host: "127.0.0.1", Port: 9094, SecurityProtocol: "PLAINTEXT"}}}
			epoch, err := n.Store.RegisterBroker(ctx, registration)
			if err != nil {
				t.Fatal(err)
			}
			if err := n.Store.SetBrokerFenced(ctx, 2, epoch, false); err != nil {
				t.Fatal(err)
			}
			if _, err := n.Store.CreateTopic(ctx, metadata.TopicSpec{Name: "t", Assignments: [][]int32{{1, 2}}}); err != nil {
				t.Fatal(err)
			}
			if len(tt.granted) > 0 {
				if err := n.Store.CreateACLs(ctx, tt.granted); err != nil {
					t.Fatal(err)
				}
			}
			producer := n.Client(tt.producer, kgo.DefaultProduceTopic("t"), kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
			if err := producer.ProduceSync(ctx, &kgo.Record{Value: []byte("one")}).FirstErr(); err != nil {
				t.Fatal(err)
			}
			topic, _ := n.Store.State().Topic("t")

			// A caught-up fetch as replica 2: error and high watermark.
			replicaFetch := func(opt kgo.Opt) (int16, int64) {
				t.Helper()
				req := kmsg.NewPtrFetchRequest()
				req.ReplicaID = 2
				req.ReplicaState.ID, req.ReplicaState.Epoch = 2, epoch
				req.MaxBytes = 1 << 20
				part := kmsg.NewFetchRequestTopicPartition()
				part.Partition, part.FetchOffset, part.PartitionMaxBytes = 0, 1, 1<<20
				req.Topics = []kmsg.FetchRequestTopic{{Topic: "t", TopicID: topic.ID, Partitions: []kmsg.FetchRequestTopicPartition{part}}}
				p := request[*kmsg.FetchResponse](t, n.Client(opt), req).Topics[0].Partitions[0]
				return p.ErrorCode, p.HighWatermark
			}
			replicaEpochs := func(opt kgo.Opt) int16 {
				t.Helper()
				req := kmsg.NewPtrOffsetForLeaderEpochRequest()
				req.ReplicaID = 2
				req.Topics = []kmsg.OffsetForLeaderEpochRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetForLeaderEpochRequestTopicPartition{{Partition: 0, CurrentLeaderEpoch: -1, LeaderEpoch: 0}}}}
				return request[*kmsg.OffsetForLeaderEpochResponse](t, n.Client(opt), req).Topics[0].Partitions[0].ErrorCode
			}
			// What a consumer sees: the high watermark.
			consumerHighWatermark := func() int64 {
				t.Helper()
				req := kmsg.NewPtrListOffsetsRequest()
				req.ReplicaID = -1
				req.Topics = []kmsg.ListOffsetsRequestTopic{{Topic: "t", Partitions: []kmsg.ListOffsetsRequestTopicPartition{{Partition: 0, Timestamp: -1, CurrentLeaderEpoch: -1}}}}
				p := request[*kmsg.ListOffsetsResponse](t, producer, req).Topics[0].Partitions[0]
				if p.ErrorCode != 0 {
					t.Fatalf("ListOffsets: %v", kerr.ErrorForCode(p.ErrorCode))
				}
				return p.Offset
			}

			for i, opt := range tt.refused {
				if code, _ := replicaFetch(opt); code != kerr.TopicAuthorizationFailed.Code {
					t.Fatalf("refused connection %d: replica fetch answered %v, want TOPIC_AUTHORIZATION_FAILED", i, kerr.ErrorForCode(code))
				}
				if code := replicaEpochs(opt); code != kerr.TopicAuthorizationFailed.Code {
					t.Fatalf("refused connection %d: OffsetForLeaderEpoch as a replica answered %v, want TOPIC_AUTHORIZATION_FAILED", i, kerr.ErrorForCode(code))
				}
				if hw := consumerHighWatermark(); hw != 0 {
					t.Fatalf("high watermark %d after a refused replica fetch, want 0 (replica 2 has fetched nothing)", hw)
				}
			}
			if now, _ := n.Store.State().Topic("t"); len(now.Partitions[0].ISR) != 2 {
				t.Fatalf("ISR %v after refused replica fetches, want [1 2]", now.Partitions[0].ISR)
			}
			if len(tt.acls) > 0 {
				if err := n.Store.CreateACLs(ctx, tt.acls); err != nil {
					t.Fatal(err)
				}
			}
			if code := replicaEpochs(tt.allowed); code != 0 {
				t.Fatalf("OffsetForLeaderEpoch as the broker: %v", kerr.ErrorForCode(code))
			}
			if code, hw := replicaFetch(tt.allowed); code != 0 || hw != 1 {
				t.Fatalf("replica fetch as the broker: %v, high watermark %d; want no error and 1", kerr.ErrorForCode(code), hw)
			}
			if hw := consumerHighWatermark(); hw != 1 {
				t.Fatalf("high watermark %d after the broker's fetch, want 1", hw)
			}
		})
	}
}

// TestSSLPrincipalMappingRules: with --ssl-principal-mapping-rules a client
// certificate's subject becomes the principal its first matching rule
// names; a certificate no rule applies to is refused (the connection is
// closed), as in Kafka.
func TestSSLPrincipalMappingRules(t *testing.T) {
	ca := authntest.NewCA(t, "ca")
	mapping, err := authn.ParsePrincipalMapping(`RULE:^CN=([^,]*),OU=Services$/$1/L`)
	if err != nil {
		t.Fatal(err)
	}
	n := brokertest.Start(t, interBrokerMTLS(t, ca), func(c *broker.Config) { c.SSLPrincipalMapping = mapping })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dial := func(subject pkix.Name) *kgo.Client {
		pair := ca.KeyPair(t, subject)
		return n.Client(kgo.DialTLSConfig(&tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{pair}}), kgo.RetryTimeout(time.Second))
	}
	if err := dial(pkix.Name{CommonName: "Billing", OrganizationalUnit: []string{"Services"}}).Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if ps := n.Server.ConnectionPrincipals(); !slices.Contains(ps, authn.User("billing")) {
		t.Fatalf("principals %v, want User:billing", ps)
	}
	shortCtx, cancelShort := context.WithTimeout(ctx, 5*time.Second)
	defer cancelShort()
	if err := dial(pkix.Name{CommonName: "alice"}).Ping(shortCtx); err == nil {
		t.Fatal("a certificate no mapping rule applies to was served")
	}
}

// TestBrokerPrincipalNeedsTheInterBrokerMechanism: a connection is the
// broker principal only when it authenticated as the inter-broker user
// with the inter-broker mechanism, as the brokers' own clients do. A
// user of the same name in another mechanism — here a SCRAM credential
// for "broker", which any client may add without an authorizer (or an
// OAUTHBEARER token whose subject is "broker") — is not a broker: its
// replica requests are refused.
func TestBrokerPrincipalNeedsTheInterBrokerMechanism(t *testing.T) {
	n := brokertest.Start(t, interBrokerSASL(t), func(c *broker.Config) {
		c.SASLMechanisms = []string{"PLAIN", "SCRAM-SHA-256"}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alice := n.Client(kgo.SASL(plain.Auth{User: "alice", Pass: "alice-secret"}.AsMechanism()))
	createTopic(t, alice, "t", 1, nil)
	altered, err := kadm.NewClient(alice).AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{User: "broker", Mechanism: kadm.ScramSha256, Iterations: 4096, Password: "alice-chose-it"}})
	if err != nil || altered.Error() != nil {
		t.Fatalf("AlterUserScramCredentials: %v %v", err, altered.Error())
	}
	replicaEpochs := func(opt kgo.Opt) int16 {
		t.Helper()
		req := kmsg.NewPtrOffsetForLeaderEpochRequest()
		req.ReplicaID = 2
		req.Topics = []kmsg.OffsetForLeaderEpochRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetForLeaderEpochRequestTopicPartition{{Partition: 0, CurrentLeaderEpoch: -1, LeaderEpoch: 0}}}}
		return request[*kmsg.OffsetForLeaderEpochResponse](t, n.Client(opt), req).Topics[0].Partitions[0].ErrorCode
	}
	if code := replicaEpochs(kgo.SASL(scram.Auth{User: "broker", Pass: "alice-chose-it"}.AsSha256Mechanism())); code != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("OffsetForLeaderEpoch as replica 2 from User:broker by SCRAM: %v, want TOPIC_AUTHORIZATION_FAILED", kerr.ErrorForCode(code))
	}
	if code := replicaEpochs(kgo.SASL(plain.Auth{User: "broker", Pass: "broker-secret"}.AsMechanism())); code != 0 {
		t.Fatalf("OffsetForLeaderEpoch as replica 2 from the broker (PLAIN): %v", kerr.ErrorForCode(code))
	}
}
