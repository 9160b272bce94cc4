//go:build e2e

package e2e

import (
	"crypto/tls"
	"crypto/x509/pkix"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-log/strata/broker/authn/authntest"
)

// adminGet GETs path from b's admin listener, over HTTPS when b.adminTLS
// is set.
func (b *brokerProcess) adminGet(path string) (*http.Response, error) {
	if b.adminTLS == nil {
		return http.Get("http://" + b.admin + path)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: b.adminTLS}}
	return client.Get("https://" + b.admin + path)
}

// TestControllerTLSCluster: three nodes whose controller ports are mutual
// TLS with node certificates (CONTROLLER:SSL) and whose admin listeners
// are HTTPS with an admin token (or a client certificate) form a quorum, take acks=all writes, and
// fail over when a partition leader is killed; the admin port refuses an
// unauthenticated /v1/cluster and answers /healthz, and `strata cluster
// status` works with --admin-ca-file and --admin-token-file (here from
// the environment).
func TestControllerTLSCluster(t *testing.T) {
	dir := t.TempDir()
	ca := authntest.NewCA(t, "strata-e2e-ca")
	caFile := filepath.Join(dir, "ca.crt")
	tokenFile := filepath.Join(dir, "admin-token")
	const token = "e2e-controller-tls-admin-token"
	for path, data := range map[string][]byte{caFile: ca.PEM, tokenFile: []byte(token + "\n")} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// What strata cluster (the harness's c.status) reads; strata serve
	// reads STRATA_ADMIN_TOKEN_FILE too, as --admin-token-file.
	t.Setenv("STRATA_ADMIN_CA_FILE", caFile)
	t.Setenv("STRATA_ADMIN_TOKEN_FILE", tokenFile)
	c := startClusterWith(t, 3, func(id int32, b *brokerProcess) (string, []string) {
		files := ca.WriteNodeFiles(t, t.TempDir(), id, pkix.Name{CommonName: fmt.Sprintf("node-%d", id)})
		b.adminTLS = &tls.Config{RootCAs: ca.Pool()}
		return "", []string{"--listener-security-protocol-map", "CONTROLLER:SSL",
			"--ssl-cert-file", files.Cert, "--ssl-key-file", files.Key, "--ssl-ca-file", files.CA,
			"--admin-ssl", "--admin-ssl-client-auth", "requested", "--admin-token-file", tokenFile}
	})

	t.Run("admin port", func(t *testing.T) {
		b := c.nodes[1]
		resp, err := b.adminGet("/v1/cluster")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET /v1/cluster without the token: %s, want 401", resp.Status)
		}
		resp, err = b.adminGet("/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET /healthz: %s, want 200", resp.Status)
		}
		// A client certificate signed by the node's CA stands for the
		// token (--admin-ssl-client-auth requested).
		operator := ca.KeyPair(t, pkix.Name{CommonName: "operator"})
		withCert := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{operator}}}}
		resp, err = withCert.Get("https://" + b.admin + "/v1/cluster")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET /v1/cluster with a client certificate: %s, want 200", resp.Status)
		}
		// Plain HTTP gets no answer from the HTTPS listener.
		if resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + b.admin + "/v1/cluster"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Error("GET /v1/cluster over plain HTTP answered 200")
			}
		}
	})

	ctx := testContext(t, 2*time.Minute)
	topic := uniqueTopic(t)
	if resp, err := c.admin().CreateTopic(ctx, 1, 3, nil, topic); err != nil || resp.Err != nil {
		t.Fatalf("create %s: %v %v", topic, err, resp.Err)
	}
	produce := func(cl *kgo.Client, from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: fmt.Appendf(nil, "record-%02d", i)}).FirstErr(); err != nil {
				t.Fatalf("acks=all produce %d: %v", i, err)
			}
		}
	}
	produce(c.client(t, kgo.RequiredAcks(kgo.AllISRAcks())), 0, 20)

	described, err := c.admin().ListTopics(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	leader := described[topic].Partitions[0].Leader
	c.nodes[leader].kill()
	t.Logf("killed node %d, the partition's leader", leader)
	survivors := newClient(t, c.seeds(leader)[0], kgo.SeedBrokers(c.seeds(leader)...), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	produce(survivors, 20, 40)
	var got []string
	for len(got) < 40 {
		fetches := survivors.PollFetches(ctx)
		if err := fetches.Err0(); err != nil {
			t.Fatalf("consume after failover (%d records so far): %v", len(got), err)
		}
		fetches.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	if len(got) != 40 || got[0] != "record-00" || got[39] != "record-39" {
		t.Fatalf("consumed %d records: %s", len(got), strings.Join(got, " "))
	}
	// The controllers never refused each other: every refusal would be a
	// misconfiguration the log names.
	for id, b := range c.nodes {
		if b.logContains("controller connection refused") {
			t.Errorf("node %d refused a controller connection; see %s", id, b.logPath)
		}
	}
}
