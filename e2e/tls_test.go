//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509/pkix"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-log/strata/broker/authn/authntest"
)

// tlsFlags are the serve flags of an SSL listener named listener with the
// node identity files.
func tlsFlags(listener string, files authntest.Files, clientAuth string) []string {
	return []string{"--listener-security-protocol-map", listener + ":SSL", "--ssl-cert-file", files.Cert,
		"--ssl-key-file", files.Key, "--ssl-ca-file", files.CA, "--ssl-client-auth", clientAuth}
}

// TestTLSClients: kcat (librdkafka) and franz-go produce and consume over
// an SSL listener with mutual TLS; a client without a certificate is
// refused.
func TestTLSClients(t *testing.T) {
	requireTool(t, "kcat")
	dir := t.TempDir()
	ca := authntest.NewCA(t, "strata-e2e-ca")
	// The listener is also the inter-broker one: with client certificates
	// brokers prove who they are by their node certificates.
	node := ca.WriteNodeFiles(t, dir, 1, pkix.Name{CommonName: "broker-1"})
	clientCert, clientKey := ca.Issue(t, pkix.Name{CommonName: "kcat-user"})
	certPath, keyPath := filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key")
	if err := os.WriteFile(certPath, clientCert, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, clientKey, 0o600); err != nil {
		t.Fatal(err)
	}
	b := startBroker(t, tlsFlags("CLIENT", node, "required")...)
	topic := uniqueTopic(t)
	ctx := testContext(t, time.Minute)

	kcatTLS := []string{"-b", b.addr, "-X", "security.protocol=SSL", "-X", "ssl.ca.location=" + node.CA,
		"-X", "ssl.certificate.location=" + certPath, "-X", "ssl.key.location=" + keyPath}
	var in strings.Builder
	for i := range 20 {
		fmt.Fprintf(&in, "kcat-tls-%02d\n", i)
	}
	runCmd(t, []byte(in.String()), 60*time.Second, "kcat", append(kcatTLS, "-P", "-t", topic)...)
	out := string(runCmd(t, nil, 60*time.Second, "kcat", append(kcatTLS, "-C", "-t", topic, "-o", "beginning", "-e", "-f", "%s\n")...))
	if lines := strings.Fields(out); len(lines) != 20 || lines[0] != "kcat-tls-00" || lines[19] != "kcat-tls-19" {
		t.Fatalf("kcat over TLS consumed:\n%s", out)
	}

	pair := ca.KeyPair(t, pkix.Name{CommonName: "franz-user"})
	cl := newClient(t, b.addr, kgo.DialTLSConfig(&tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{pair}}),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("franz-tls")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(got) < 21 {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	if got[20] != "franz-tls" {
		t.Fatalf("franz-go over TLS consumed %q last", got[20])
	}

	// Without a client certificate (ssl.client.auth=required) the
	// handshake fails: no metadata, no topic names.
	noCert := newClient(t, b.addr, kgo.DialTLSConfig(&tls.Config{RootCAs: ca.Pool()}), kgo.RetryTimeout(2*time.Second))
	shortCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := noCert.Ping(shortCtx); err == nil {
		t.Fatal("a client without a certificate was served")
	}
	// Nor does a plaintext client get an answer.
	plain := newClient(t, b.addr, kgo.RetryTimeout(2*time.Second))
	shortCtx2, cancel2 := context.WithTimeout(ctx, 5*time.Second)
	defer cancel2()
	if err := plain.Ping(shortCtx2); err == nil {
		t.Fatal("a plaintext client was served by the SSL listener")
	}
}

// TestTLSInterBrokerListener: three nodes replicate over an SSL
// inter-broker listener with mutual TLS; acks=all produces to a topic with
// min.insync.replicas=3 succeed only when both followers fetch over it.
func TestTLSInterBrokerListener(t *testing.T) {
	ca := authntest.NewCA(t, "strata-e2e-ca")
	c := startClusterWith(t, 3, func(id int32, b *brokerProcess) (string, []string) {
		dir := t.TempDir()
		files := ca.WriteNodeFiles(t, dir, id, pkix.Name{CommonName: fmt.Sprintf("broker-%d", id)})
		internal := freePort(t)
		return "", append([]string{"--listeners", "CLIENT=" + b.addr + ",INTERNAL=" + internal, "--inter-broker-listener", "INTERNAL"},
			tlsFlags("INTERNAL", files, "required")...)
	})
	ctx := testContext(t, 2*time.Minute)
	topic := uniqueTopic(t)
	adm := c.admin()
	if resp, err := adm.CreateTopic(ctx, 3, 3, map[string]*string{"min.insync.replicas": kadm.StringPtr("3")}, topic); err != nil || resp.Err != nil {
		t.Fatalf("create: %v %v", err, resp.Err)
	}
	cl := c.client(t, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DisableIdempotentWrite())
	for i := range 30 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
			t.Fatalf("acks=all produce %d over an SSL inter-broker listener: %v", i, err)
		}
	}
	described, err := adm.ListTopics(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range described[topic].Partitions {
		if len(p.ISR) != 3 {
			t.Fatalf("partition %d ISR %v, want all 3 replicas", p.Partition, p.ISR)
		}
	}
}
