//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/strata-log/strata/broker/authn/authntest"
)

// The real-client matrix of issue 17 over TLS and SASL, against one broker
// with three listeners: CLIENT (SASL_SSL: PLAIN users from a file,
// SCRAM-SHA-512 users in the metadata quorum), MTLS (SSL, a client
// certificate's subject is the principal) and INTERNAL (PLAINTEXT, the
// inter-broker listener), run with --authorizer acl so every client acts
// as its own principal and needs its ACLs.

// securedBroker is the broker of the matrix and what its clients need.
type securedBroker struct {
	*brokerProcess
	mtls      string // the SSL listener's address (b.addr is the SASL_SSL one)
	ca        *authntest.CA
	caPEM     string // path of the CA certificate clients trust
	dir       string
	superUser *kadm.Client // User:admin, a super user, over SASL_SSL/PLAIN
}

// Users of the PLAIN users file; admin is the super user.
const securedPlainUsers = "admin:admin-secret\nalice:alice-secret\nbob:bob-secret\n"

// startSecuredBroker starts the matrix's broker and creates its SCRAM
// users with AlterUserScramCredentials (KIP-554) as the super user.
func startSecuredBroker(t *testing.T, scramUsers map[string]string) *securedBroker {
	t.Helper()
	dir := t.TempDir()
	ca := authntest.NewCA(t, "strata-e2e-ca")
	node := ca.WriteFiles(t, dir, pkix.Name{CommonName: "broker-1"})
	users := filepath.Join(dir, "plain-users")
	if err := os.WriteFile(users, []byte(securedPlainUsers), 0o600); err != nil {
		t.Fatal(err)
	}
	b := &brokerProcess{dataDir: filepath.Join(dir, "data"), addr: freePort(t), admin: freePort(t), ctrl: freePort(t),
		logPath: filepath.Join(dir, "strata.log")}
	mtls, internal := freePort(t), freePort(t)
	b.extra = []string{"--listeners", "CLIENT=" + b.addr + ",MTLS=" + mtls + ",INTERNAL=" + internal, "--inter-broker-listener", "INTERNAL",
		"--listener-security-protocol-map", "CLIENT:SASL_SSL,MTLS:SSL",
		"--ssl-cert-file", node.Cert, "--ssl-key-file", node.Key, "--ssl-ca-file", node.CA,
		// requested, not required: the setting is the broker's, and SASL_SSL
		// clients have no certificate; the SSL listener's clients present one.
		"--ssl-client-auth", "requested",
		"--sasl-enabled-mechanisms", "PLAIN,SCRAM-SHA-512", "--sasl-plain-users-file", users,
		"--authorizer", "acl", "--super-users", "User:admin",
		"--group-initial-rebalance-delay-ms", "0"}
	t.Cleanup(func() {
		b.kill()
		if t.Failed() {
			logTail(t, b.logPath)
		}
	})
	if err := b.start(); err != nil {
		t.Fatal(err)
	}
	sb := &securedBroker{brokerProcess: b, mtls: mtls, ca: ca, caPEM: node.CA, dir: dir}
	sb.superUser = kadm.NewClient(sb.client(t, plain.Auth{User: "admin", Pass: "admin-secret"}.AsMechanism()))
	ctx := testContext(t, 30*time.Second)
	var upserts []kadm.UpsertSCRAM
	for user, password := range scramUsers {
		upserts = append(upserts, kadm.UpsertSCRAM{User: user, Mechanism: kadm.ScramSha512, Iterations: 4096, Password: password})
	}
	if altered, err := sb.superUser.AlterUserSCRAMs(ctx, nil, upserts); err != nil || altered.Error() != nil {
		t.Fatalf("AlterUserScramCredentials: %v %v", err, altered.Error())
	}
	return sb
}

// client is a franz-go client over SASL_SSL with mechanism.
func (sb *securedBroker) client(t *testing.T, mechanism sasl.Mechanism, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	return newClient(t, sb.addr, append([]kgo.Opt{kgo.DialTLSConfig(&tls.Config{RootCAs: sb.ca.Pool()}), kgo.SASL(mechanism)}, opts...)...)
}

// allow grants principal ALL on the topics and groups named by prefix.
func (sb *securedBroker) allow(t *testing.T, principal, prefix string) {
	t.Helper()
	acls := kadm.NewACLs().Allow(principal).Topics(prefix).Groups(prefix).Operations(kadm.OpAll).ResourcePatternType(kadm.ACLPatternPrefixed)
	results, err := sb.superUser.CreateACLs(testContext(t, 30*time.Second), acls)
	if err != nil || len(results) == 0 {
		t.Fatalf("CreateACLs for %s: %v %+v", principal, err, results)
	}
	for _, r := range results {
		if r.Err != nil {
			t.Fatalf("CreateACLs for %s: %v", principal, r.Err)
		}
	}
}

// clientFiles issues a client certificate for cn and writes it with its
// key (client.crt, client.key) to a directory of its own.
func (sb *securedBroker) clientFiles(t *testing.T, cn string) (cert, key string) {
	t.Helper()
	dir := filepath.Join(sb.dir, cn)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	files := sb.ca.WriteFiles(t, dir, pkix.Name{CommonName: cn})
	return files.Cert, files.Key
}

// librdkafkaConfig is the librdkafka configuration of a matrix cell:
// SASL_SSL with mechanism and user "name", or SSL with a client
// certificate for CN=name when mechanism is "mTLS".
func (sb *securedBroker) librdkafkaConfig(t *testing.T, mechanism, name, password string) map[string]string {
	conf := map[string]string{"ssl.ca.location": sb.caPEM}
	if mechanism == "mTLS" {
		cert, key := sb.clientFiles(t, name)
		conf["bootstrap.servers"], conf["security.protocol"] = sb.mtls, "SSL"
		conf["ssl.certificate.location"], conf["ssl.key.location"] = cert, key
		return conf
	}
	conf["bootstrap.servers"], conf["security.protocol"], conf["sasl.mechanisms"] = sb.addr, "SASL_SSL", mechanism
	conf["sasl.username"], conf["sasl.password"] = name, password
	return conf
}

// confluentMatrixScript: confluent-kafka-python creates a topic of two
// partitions (AdminClient), finds it in the cluster's metadata, produces
// ten records, consumes them in a consumer group and commits, and prints
// them.
const confluentMatrixScript = `
import json, sys, time
from confluent_kafka import Producer, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
conf, topic, group = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
def fail(msg):
    print(msg, file=sys.stderr)
    sys.exit(1)
admin = AdminClient(conf)
for f in admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)]).values():
    f.result(30)
md = admin.list_topics(timeout=30)
if topic not in md.topics or len(md.topics[topic].partitions) != 2:
    fail("list_topics: %s" % sorted(md.topics))
p = Producer(dict(conf, **{"message.timeout.ms": 20000}))
errors = []
def report(err, msg):
    if err is not None:
        errors.append(str(err))
for i in range(10):
    p.produce(topic, value=("confluent-%d" % i).encode(), partition=i % 2, on_delivery=report)
left = p.flush(30)
if left or errors:
    fail("produce: %d unflushed, errors %s" % (left, errors[:3]))
c = Consumer(dict(conf, **{"group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False}))
c.subscribe([topic])
got = []
deadline = time.time() + 40
while len(got) < 10 and time.time() < deadline:
    m = c.poll(0.5)
    if m is None:
        continue
    if m.error():
        fail("consume: %s" % m.error())
    got.append(m.value().decode())
c.commit(asynchronous=False)
committed = c.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=10)
c.close()
if sum(tp.offset for tp in committed) != 10:
    fail("committed %s" % committed)
print("\n".join(sorted(got)))
`

// kafkaPythonMatrixScript: kafka-python over SASL_SSL/SCRAM-SHA-512
// creates a topic (KafkaAdminClient), lists and describes it, produces ten
// records, consumes them in a consumer group and commits.
const kafkaPythonMatrixScript = `
import sys
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
addr, topic, group, ca, user, password = sys.argv[1:7]
def fail(msg):
    print(msg, file=sys.stderr)
    sys.exit(1)
conf = dict(bootstrap_servers=addr, security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
            sasl_plain_username=user, sasl_plain_password=password, ssl_cafile=ca)
admin = KafkaAdminClient(**conf)
admin.create_topics([NewTopic(topic, 2, 1)])
if topic not in admin.list_topics():
    fail("list_topics lacks %s" % topic)
described = admin.describe_topics([topic])
if len(described) != 1 or described[0]["error_code"] != 0 or len(described[0]["partitions"]) != 2:
    fail("describe_topics: %s" % described)
admin.close()
p = KafkaProducer(**conf)
for i in range(10):
    p.send(topic, value=("kafka-python-%d" % i).encode(), partition=i % 2).get(timeout=30)
p.close()
c = KafkaConsumer(topic, group_id=group, auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=40000, **conf)
got = []
for m in c:
    got.append(m.value.decode())
    if len(got) == 10:
        break
c.commit()
committed = [c.committed(TopicPartition(topic, p)) or 0 for p in (0, 1)]
c.close()
if sum(committed) != 10:
    fail("committed %s" % committed)
print("\n".join(sorted(got)))
`

// wantValues checks that out lists prefix-0 .. prefix-9, in any order.
func wantValues(t *testing.T, who, out, prefix string) {
	t.Helper()
	lines := strings.Fields(out)
	seen := map[string]bool{}
	for _, l := range lines {
		seen[l] = true
	}
	for i := range 10 {
		if !seen[fmt.Sprintf("%s-%d", prefix, i)] {
			t.Fatalf("%s consumed %d records, lacks %s-%d:\n%s", who, len(lines), prefix, i, out)
		}
	}
}

// TestClientsSecurityMatrix: kcat and confluent-kafka-python over
// SASL_SSL with SCRAM-SHA-512 and with PLAIN, and over SSL with a client
// certificate; sarama and kafka-python over SASL_SSL/SCRAM-SHA-512: each
// produces, consumes in a consumer group and (where the client has an
// admin API) creates, lists and describes a topic, as its own principal
// under --authorizer acl. Then the negative paths: a wrong password is
// SASL_AUTHENTICATION_FAILED for confluent-kafka-python and sarama, and a
// connection closed while authenticating for kafka-python (SaslHandshake
// v0, as with Kafka); an authenticated principal
// without ACLs learns no topic name; an ACL revoked mid-session refuses
// the next produce and fetch of a connection that stays open.
func TestClientsSecurityMatrix(t *testing.T) {
	requireTool(t, "kcat")
	requireTool(t, "/usr/bin/python3")
	scramUsers := map[string]string{"app": "app-secret", "mallory": "mallory-secret", "revoked": "revoked-secret"}
	sb := startSecuredBroker(t, scramUsers)
	// Each principal of the matrix may use the topics and groups of its
	// own prefix; mallory and bob (PLAIN) have no ACL at all.
	for principal, prefix := range map[string]string{"User:app": "app-", "User:alice": "alice-", "User:CN=kcat-mtls": "kcat-mtls-",
		"User:CN=confluent-mtls": "confluent-mtls-"} {
		sb.allow(t, principal, prefix)
	}

	t.Run("matrix", func(t *testing.T) {
		cells := []struct{ mechanism, user, password, prefix string }{
			{"SCRAM-SHA-512", "app", "app-secret", "app-"},
			{"PLAIN", "alice", "alice-secret", "alice-"},
			{"mTLS", "", "", ""},
		}
		for _, cell := range cells {
			t.Run("confluent-kafka-python/"+cell.mechanism, func(t *testing.T) {
				t.Parallel()
				user, prefix := cell.user, cell.prefix
				if cell.mechanism == "mTLS" {
					user, prefix = "confluent-mtls", "confluent-mtls-"
				}
				conf, err := json.Marshal(sb.librdkafkaConfig(t, cell.mechanism, user, cell.password))
				if err != nil {
					t.Fatal(err)
				}
				topic := prefix + "confluent-" + strings.ToLower(cell.mechanism)
				out := string(runCmd(t, nil, 90*time.Second, "/usr/bin/python3", "-c", confluentMatrixScript, string(conf), topic, prefix+"group"))
				wantValues(t, "confluent-kafka-python", out, "confluent")
			})
			t.Run("kcat/"+cell.mechanism, func(t *testing.T) {
				t.Parallel()
				user, prefix := cell.user, cell.prefix
				if cell.mechanism == "mTLS" {
					user, prefix = "kcat-mtls", "kcat-mtls-"
				}
				var args []string
				for k, v := range sb.librdkafkaConfig(t, cell.mechanism, user, cell.password) {
					if k == "bootstrap.servers" {
						args = append(args, "-b", v)
						continue
					}
					args = append(args, "-X", k+"="+v)
				}
				topic := prefix + "kcat-" + strings.ToLower(cell.mechanism)
				var in strings.Builder
				for i := range 10 {
					fmt.Fprintf(&in, "kcat-%d\n", i)
				}
				// Auto-created (CREATE is in the principal's ALL).
				runCmd(t, []byte(in.String()), 60*time.Second, "kcat", append(args, "-P", "-t", topic)...)
				md := string(runCmd(t, nil, 30*time.Second, "kcat", append(args, "-L", "-t", topic)...))
				if !strings.Contains(md, fmt.Sprintf("topic %q with 1 partitions", topic)) {
					t.Fatalf("kcat -L:\n%s", md)
				}
				out := string(runCmd(t, nil, 60*time.Second, "kcat", append(args, "-G", prefix+"group", "-o", "beginning", "-e", "-f", "%s\n", topic)...))
				wantValues(t, "kcat in a consumer group", out, "kcat")
			})
		}
		t.Run("kafka-python/SCRAM-SHA-512", func(t *testing.T) {
			t.Parallel()
			out := string(runCmd(t, nil, 90*time.Second, "/usr/bin/python3", "-c", kafkaPythonMatrixScript, sb.addr, "app-kafka-python", "app-kafka-python-group",
				sb.caPEM, "app", "app-secret"))
			wantValues(t, "kafka-python", out, "kafka-python")
		})
		t.Run("sarama/SCRAM-SHA-512", func(t *testing.T) {
			t.Parallel()
			saramaMatrix(t, sb, "app", "app-secret", "app-sarama")
		})
	})

	t.Run("wrong-password", func(t *testing.T) {
		t.Run("confluent-kafka-python", func(t *testing.T) {
			t.Parallel()
			conf, err := json.Marshal(sb.librdkafkaConfig(t, "SCRAM-SHA-512", "app", "wrong"))
			if err != nil {
				t.Fatal(err)
			}
			out := string(runCmd(t, nil, 60*time.Second, "/usr/bin/python3", "-c", confluentWrongPasswordScript, string(conf)))
			if !strings.HasPrefix(out, "_AUTHENTICATION") || !strings.Contains(out, "Authentication failed") {
				t.Fatalf("confluent-kafka-python with a wrong password reported:\n%s", out)
			}
			if strings.Contains(out, "app-") {
				t.Fatalf("a client that failed authentication learned a topic name:\n%s", out)
			}
		})
		t.Run("kafka-python", func(t *testing.T) {
			t.Parallel()
			// kafka-python 2.0 authenticates after SaslHandshake v0, with
			// raw SASL tokens (KIP-43): on a failure Kafka, and Strata,
			// close the connection, as there is no response to carry
			// SASL_AUTHENTICATION_FAILED. The client sees the close while
			// authenticating and has no broker to talk to.
			out := string(runCmd(t, nil, 60*time.Second, "/usr/bin/python3", "-c", kafkaPythonWrongPasswordScript, sb.addr, sb.caPEM, "app", "wrong"))
			if !strings.Contains(out, "<authenticating>") || !strings.Contains(out, "NoBrokersAvailable") {
				t.Fatalf("kafka-python with a wrong password reported:\n%s", out)
			}
		})
		t.Run("sarama", func(t *testing.T) {
			t.Parallel()
			cfg := saramaSCRAMConfig(sb, "app", "wrong")
			_, err := sarama.NewClient([]string{sb.addr}, cfg)
			if !errors.Is(err, sarama.ErrSASLAuthenticationFailed) {
				t.Fatalf("sarama with a wrong password: %v, want SASL_AUTHENTICATION_FAILED", err)
			}
		})
	})

	t.Run("no-acl-principal", func(t *testing.T) {
		ctx := testContext(t, 30*time.Second)
		if resp, err := sb.superUser.CreateTopic(ctx, 1, 1, nil, "app-secret-plans"); err != nil || resp.Err != nil {
			t.Fatalf("create: %v %v", err, resp.Err)
		}
		all, err := sb.superUser.ListTopics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		names := all.Names()
		if !slices.Contains(names, "app-secret-plans") {
			t.Fatalf("the super user lists %v", names)
		}
		// Over the wire, as the client receives them: a principal no
		// ACL names gets a Metadata response without any topic name,
		// whether it authenticated with SASL or with a certificate.
		bobPlain := append([]byte{0}, "bob\x00bob-secret"...)
		for who, conn := range map[string]*rawConn{
			"User:bob (SASL_SSL/PLAIN)": sb.dialSASLPlain(t, bobPlain),
			"User:CN=stranger (mTLS)":   sb.dialMTLS(t, "stranger"),
		} {
			req := kmsg.NewPtrMetadataRequest()
			req.Version = 12
			corr := conn.send(req)
			got, body, err := conn.readFrame()
			if err != nil || got != corr {
				t.Fatalf("%s: Metadata: %v (correlation %d, want %d)", who, err, got, corr)
			}
			for _, name := range names {
				if bytes.Contains(body, []byte(name)) {
					t.Fatalf("%s: the Metadata response holds %q:\n%q", who, name, body)
				}
			}
			// Named topics: refused, existing or not.
			req = kmsg.NewPtrMetadataRequest()
			req.Version = 12
			for _, name := range []string{"app-secret-plans", "app-no-such-topic"} {
				rt := kmsg.NewMetadataRequestTopic()
				rt.Topic = kmsg.StringPtr(name)
				req.Topics = append(req.Topics, rt)
			}
			resp := conn.roundTrip(req).(*kmsg.MetadataResponse)
			for _, topic := range resp.Topics {
				if topic.ErrorCode != kerr.TopicAuthorizationFailed.Code || len(topic.Partitions) != 0 {
					t.Fatalf("%s: Metadata of %s: error %d, %d partitions; want TOPIC_AUTHORIZATION_FAILED for both", who, *topic.Topic, topic.ErrorCode, len(topic.Partitions))
				}
			}
		}
		// Produce as a SCRAM user no ACL names: Kafka's error, with sarama.
		producer, err := sarama.NewSyncProducer([]string{sb.addr}, saramaSCRAMConfig(sb, "mallory", "mallory-secret"))
		if err != nil {
			t.Fatal(err)
		}
		defer producer.Close()
		if _, _, err := producer.SendMessage(&sarama.ProducerMessage{Topic: "app-secret-plans", Value: sarama.StringEncoder("v")}); !errors.Is(err, sarama.ErrTopicAuthorizationFailed) {
			t.Fatalf("sarama produce as User:mallory: %v, want TOPIC_AUTHORIZATION_FAILED", err)
		}
	})

	t.Run("revoked-mid-session", func(t *testing.T) {
		ctx := testContext(t, 60*time.Second)
		topic := "revoked-topic"
		if resp, err := sb.superUser.CreateTopic(ctx, 1, 1, nil, topic); err != nil || resp.Err != nil {
			t.Fatalf("create: %v %v", err, resp.Err)
		}
		grant := kadm.NewACLs().Allow("User:revoked").Topics(topic).Operations(kadm.OpWrite, kadm.OpRead).ResourcePatternType(kadm.ACLPatternLiteral)
		if results, err := sb.superUser.CreateACLs(ctx, grant); err != nil || results[0].Err != nil {
			t.Fatalf("CreateACLs: %v %+v", err, results)
		}
		var dials atomic.Int32
		dialer := &tls.Dialer{Config: &tls.Config{RootCAs: sb.ca.Pool()}}
		countingDial := kgo.Dialer(func(ctx context.Context, network, host string) (net.Conn, error) {
			dials.Add(1)
			return dialer.DialContext(ctx, network, host)
		})
		mechanism := scram.Auth{User: "revoked", Pass: "revoked-secret"}.AsSha512Mechanism()
		producer := newClient(t, sb.addr, countingDial, kgo.SASL(mechanism), kgo.DefaultProduceTopic(topic), kgo.RecordRetries(1))
		consumer := newClient(t, sb.addr, countingDial, kgo.SASL(mechanism), kgo.FetchMaxWait(200*time.Millisecond),
			kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
		if err := producer.ProduceSync(ctx, &kgo.Record{Value: []byte("before")}).FirstErr(); err != nil {
			t.Fatalf("produce before the revocation: %v", err)
		}
		fs := consumer.PollRecords(ctx, 1)
		if err := fs.Err0(); err != nil || fs.NumRecords() != 1 {
			t.Fatalf("fetch before the revocation: %v, %d records", err, fs.NumRecords())
		}
		connected := dials.Load()

		revoke := kadm.NewACLs().Allow("User:revoked").AllowHosts().Topics(topic).Operations(kadm.OpWrite, kadm.OpRead).ResourcePatternType(kadm.ACLPatternLiteral)
		results, err := sb.superUser.DeleteACLs(ctx, revoke)
		if err != nil {
			t.Fatal(err)
		}
		deleted := 0
		for _, r := range results {
			if r.Err != nil {
				t.Fatalf("DeleteACLs: %v", r.Err)
			}
			deleted += len(r.Deleted)
		}
		if deleted != 2 {
			t.Fatalf("DeleteACLs deleted %d ACLs, want 2: %+v", deleted, results)
		}
		if err := producer.ProduceSync(ctx, &kgo.Record{Value: []byte("after")}).FirstErr(); !errors.Is(err, kerr.TopicAuthorizationFailed) {
			t.Fatalf("produce after the revocation: %v, want TOPIC_AUTHORIZATION_FAILED", err)
		}
		for {
			fs := consumer.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatal("no fetch error after the revocation")
			}
			if fs.NumRecords() != 0 {
				t.Fatalf("fetched %d records after the revocation", fs.NumRecords())
			}
			if err := fs.Err0(); err != nil {
				if !errors.Is(err, kerr.TopicAuthorizationFailed) {
					t.Fatalf("fetch after the revocation: %v, want TOPIC_AUTHORIZATION_FAILED", err)
				}
				break
			}
		}
		if now := dials.Load(); now != connected {
			t.Fatalf("the clients dialed %d connections after the revocation: the refusals must come on the authenticated ones", now-connected)
		}
	})
}

// confluentWrongPasswordScript prints the first error librdkafka reports
// (name, then message) for a client whose authentication fails.
const confluentWrongPasswordScript = `
import json, sys, time
from confluent_kafka import Producer
conf = json.loads(sys.argv[1])
errors = []
p = Producer(dict(conf, **{"error_cb": lambda e: errors.append(e)}))
deadline = time.time() + 30
while not errors and time.time() < deadline:
    p.poll(0.2)
if errors:
    print("%s %s" % (errors[0].name(), errors[0].str()))
`

// kafkaPythonWrongPasswordScript prints the exception kafka-python raises
// when its authentication fails, and what it logged while authenticating.
const kafkaPythonWrongPasswordScript = `
import logging, sys
from kafka import KafkaAdminClient
addr, ca, user, password = sys.argv[1:5]
class Collect(logging.Handler):
    def emit(self, record):
        if "<authenticating>" in record.getMessage():
            print("log: %s" % record.getMessage())
logging.getLogger("kafka").addHandler(Collect())
logging.getLogger("kafka").setLevel(logging.INFO)
try:
    KafkaAdminClient(bootstrap_servers=addr, security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
                     sasl_plain_username=user, sasl_plain_password=password, ssl_cafile=ca, request_timeout_ms=10000)
    print("connected")
except Exception as e:
    print("%s: %s" % (type(e).__name__, e))
`

// saramaSCRAMConfig is a sarama configuration for SASL_SSL with
// SCRAM-SHA-512 as user.
func saramaSCRAMConfig(sb *securedBroker, user, password string) *sarama.Config {
	cfg := saramaConfig(sarama.V3_6_0_0)
	cfg.Net.TLS.Enable = true
	cfg.Net.TLS.Config = &tls.Config{RootCAs: sb.ca.Pool()}
	cfg.Net.SASL.Enable = true
	cfg.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA512
	cfg.Net.SASL.User, cfg.Net.SASL.Password = user, password
	cfg.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &franzSCRAMClient{} }
	cfg.Metadata.Retry.Max = 0
	cfg.Producer.Return.Successes = true
	cfg.Producer.Retry.Max = 0
	return cfg
}

// franzSCRAMClient is sarama's SCRAMClient over franz-go's SCRAM-SHA-512
// client, so the test needs no other SCRAM implementation.
type franzSCRAMClient struct {
	user, password string
	session        sasl.Session
	done           bool
}

func (c *franzSCRAMClient) Begin(user, password, _ string) error {
	c.user, c.password = user, password
	return nil
}

// Step answers the server's challenge: "" asks for the client-first
// message.
func (c *franzSCRAMClient) Step(challenge string) (string, error) {
	if c.session == nil {
		session, first, err := scram.Auth{User: c.user, Pass: c.password}.AsSha512Mechanism().Authenticate(context.Background(), "")
		c.session = session
		return string(first), err
	}
	done, next, err := c.session.Challenge([]byte(challenge))
	c.done = done
	return string(next), err
}

func (c *franzSCRAMClient) Done() bool { return c.done }

// saramaMatrix: sarama as user creates topic with its ClusterAdmin, lists
// and describes it, produces ten records and consumes them in a group.
func saramaMatrix(t *testing.T, sb *securedBroker, user, password, topic string) {
	useSaramaLog(t)
	cfg := saramaSCRAMConfig(sb, user, password)
	admin, err := sarama.NewClusterAdmin([]string{sb.addr}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 2, ReplicationFactor: 1}, false); err != nil {
		t.Fatalf("sarama CreateTopic: %v", err)
	}
	listed, err := admin.ListTopics()
	if err != nil || listed[topic].NumPartitions != 2 {
		t.Fatalf("sarama ListTopics: %v %+v", err, listed)
	}
	described, err := admin.DescribeTopics([]string{topic})
	if err != nil || len(described) != 1 || described[0].Err != sarama.ErrNoError || len(described[0].Partitions) != 2 {
		t.Fatalf("sarama DescribeTopics: %v %+v", err, described)
	}
	producer, err := sarama.NewSyncProducer([]string{sb.addr}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	for i := range 10 {
		msg := &sarama.ProducerMessage{Topic: topic, Partition: int32(i % 2), Value: sarama.StringEncoder(fmt.Sprintf("sarama-%d", i))}
		if _, _, err := producer.SendMessage(msg); err != nil {
			t.Fatalf("sarama produce: %v", err)
		}
	}
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	group, err := sarama.NewConsumerGroup([]string{sb.addr}, topic+"-group", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer group.Close()
	handler := &saramaGroupHandler{seen: map[string]int{}, want: 10, done: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	consumed := make(chan error, 1)
	go func() {
		for ctx.Err() == nil {
			if err := group.Consume(ctx, []string{topic}, handler); err != nil && ctx.Err() == nil {
				consumed <- err
				return
			}
		}
		consumed <- nil
	}()
	select {
	case <-handler.done:
	case err := <-consumed:
		t.Fatalf("sarama group consume: %v", err)
	case <-ctx.Done():
		t.Fatalf("sarama group consumed %d of 10 records", handler.total)
	}
	cancel()
	<-consumed
	handler.mu.Lock()
	defer handler.mu.Unlock()
	for i := range 10 {
		if handler.seen[fmt.Sprintf("sarama-%d", i)] == 0 {
			t.Fatalf("sarama group did not consume sarama-%d: %v", i, handler.seen)
		}
	}
}

// dialSASLPlain opens a raw SASL_SSL connection authenticated with the
// PLAIN token (SaslHandshake v1, SaslAuthenticate v2).
func (sb *securedBroker) dialSASLPlain(t *testing.T, token []byte) *rawConn {
	t.Helper()
	conn, err := tls.Dial("tcp", sb.addr, &tls.Config{RootCAs: sb.ca.Pool()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	r := &rawConn{tb: t, conn: conn}
	handshake := kmsg.NewPtrSASLHandshakeRequest()
	handshake.Version, handshake.Mechanism = 1, "PLAIN"
	if resp := r.roundTrip(handshake).(*kmsg.SASLHandshakeResponse); resp.ErrorCode != 0 {
		t.Fatalf("SaslHandshake: error %d", resp.ErrorCode)
	}
	auth := kmsg.NewPtrSASLAuthenticateRequest()
	auth.Version, auth.SASLAuthBytes = 2, token
	if resp := r.roundTrip(auth).(*kmsg.SASLAuthenticateResponse); resp.ErrorCode != 0 {
		t.Fatalf("SaslAuthenticate: error %d", resp.ErrorCode)
	}
	return r
}

// dialMTLS opens a raw connection to the SSL listener with a client
// certificate for CN=cn.
func (sb *securedBroker) dialMTLS(t *testing.T, cn string) *rawConn {
	t.Helper()
	conn, err := tls.Dial("tcp", sb.mtls, &tls.Config{RootCAs: sb.ca.Pool(), Certificates: []tls.Certificate{sb.ca.KeyPair(t, pkix.Name{CommonName: cn})}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rawConn{tb: t, conn: conn}
}
