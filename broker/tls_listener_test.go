package broker_test

import (
	"context"
	"crypto/tls"
	"crypto/x509/pkix"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-log/strata/broker"
	"github.com/strata-log/strata/broker/authn"
	"github.com/strata-log/strata/broker/authn/authntest"
	"github.com/strata-log/strata/broker/brokertest"
	"github.com/strata-log/strata/metadata/metadatatest"
)

// startSSL starts a broker whose CLIENT listener is SSL with clientAuth,
// serving its node certificate (with client certificates, brokers prove
// who they are by it).
func startSSL(t *testing.T, ca *authntest.CA, clientAuth authn.ClientAuth) *brokertest.Node {
	t.Helper()
	files := ca.WriteNodeFiles(t, t.TempDir(), metadatatest.NodeID, pkix.Name{CommonName: "broker-1"})
	id, err := authn.NewTLS(authn.TLSFiles{CertFile: files.Cert, KeyFile: files.Key, CAFile: files.CA, ClientAuth: clientAuth}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return brokertest.Start(t, func(c *broker.Config) {
		c.Listeners[0].SecurityProtocol = authn.SSL
		c.TLS = id
	})
}

func produceOne(ctx context.Context, cl *kgo.Client, topic string) error {
	return cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("over tls")}).FirstErr()
}

func TestSSLListenerServesTLSClients(t *testing.T) {
	ca := authntest.NewCA(t, "ca")
	n := startSSL(t, ca, authn.ClientAuthNone)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := n.Client(kgo.DialTLSConfig(&tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"}), kgo.AllowAutoTopicCreation(),
		kgo.ConsumeTopics("t"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err := produceOne(ctx, cl, "t"); err != nil {
		t.Fatal(err)
	}
	fs := cl.PollRecords(ctx, 1)
	if err := fs.Err0(); err != nil {
		t.Fatal(err)
	}
	if got := fs.Records(); len(got) != 1 || string(got[0].Value) != "over tls" {
		t.Fatalf("consumed %v", got)
	}
	if ps := n.Server.ConnectionPrincipals(); len(ps) == 0 || slices.ContainsFunc(ps, func(p authn.Principal) bool { return p != authn.Anonymous }) {
		t.Fatalf("principals %v, want only User:ANONYMOUS without client certificates", ps)
	}

	// The registration tells the cluster the listener's protocol.
	if b, ok := n.Store.State().Broker(metadatatest.NodeID); !ok || len(b.Endpoints) != 1 || b.Endpoints[0].SecurityProtocol != "SSL" {
		t.Fatalf("registered endpoints %+v, want CLIENT as SSL", b.Endpoints)
	}

	// A plaintext client gets no Kafka answer from an SSL listener.
	plain := n.Client(kgo.RequestRetries(0), kgo.RetryTimeout(time.Second), kgo.DialTimeout(2*time.Second))
	shortCtx, cancelShort := context.WithTimeout(ctx, 5*time.Second)
	defer cancelShort()
	if err := plain.Ping(shortCtx); err == nil {
		t.Fatal("a plaintext client was served by an SSL listener")
	}
}

func TestSSLListenerRequiredClientAuth(t *testing.T) {
	ca := authntest.NewCA(t, "ca")
	n := startSSL(t, ca, authn.ClientAuthRequired)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	noCert := n.Client(kgo.DialTLSConfig(&tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"}), kgo.RetryTimeout(time.Second))
	shortCtx, cancelShort := context.WithTimeout(ctx, 5*time.Second)
	defer cancelShort()
	if err := noCert.Ping(shortCtx); err == nil {
		t.Fatal("a client without a certificate was served with ssl.client.auth=required")
	}
	alice := ca.KeyPair(t, pkix.Name{CommonName: "alice"})
	cl := n.Client(kgo.DialTLSConfig(&tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", Certificates: []tls.Certificate{alice}}), kgo.AllowAutoTopicCreation())
	if err := produceOne(ctx, cl, "t"); err != nil {
		t.Fatal(err)
	}
	if ps := n.Server.ConnectionPrincipals(); !slices.Contains(ps, authn.User("CN=alice")) {
		t.Fatalf("principals %v, want User:CN=alice", ps)
	}
}
