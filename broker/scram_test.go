package broker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/strata-log/strata/broker"
	"github.com/strata-log/strata/broker/authn"
	"github.com/strata-log/strata/broker/brokertest"
)

// TestSCRAMUsersManagedWithKIP554: users created with
// AlterUserScramCredentials (through a PLAINTEXT listener) authenticate
// with franz-go's SCRAM client on a SASL listener; a wrong password, a
// deleted user and the other mechanism are refused.
func TestSCRAMUsersManagedWithKIP554(t *testing.T) {
	n := brokertest.Start(t, func(c *broker.Config) {
		c.Listeners[0].SecurityProtocol = authn.SASLPlaintext
		c.Listeners = append(c.Listeners, broker.Listener{Name: "INTERNAL", Address: "127.0.0.1:0"})
		c.InterBrokerListener = "INTERNAL"
		c.SASLMechanisms = []string{"SCRAM-SHA-512", "SCRAM-SHA-256"}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adminCl, err := kgo.NewClient(kgo.SeedBrokers(n.Server.Addr("INTERNAL").String()))
	if err != nil {
		t.Fatal(err)
	}
	defer adminCl.Close()
	adm := kadm.NewClient(adminCl)
	altered, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{
		{User: "admin", Mechanism: kadm.ScramSha512, Iterations: 4096, Password: "s3cret"},
		{User: "weak", Mechanism: kadm.ScramSha512, Iterations: 4096, Password: "x"},
	})
	if err != nil || altered.Error() != nil {
		t.Fatalf("AlterUserScramCredentials: %v %v", err, altered.Error())
	}
	// Bad requests get Kafka's codes and change nothing.
	altered, err = adm.AlterUserSCRAMs(ctx, []kadm.DeleteSCRAM{{User: "nobody", Mechanism: kadm.ScramSha256}}, []kadm.UpsertSCRAM{
		{User: "few", Mechanism: kadm.ScramSha256, Iterations: 4096, Salt: []byte("salt"), SaltedPassword: make([]byte, 32)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(altered["nobody"].Err, kerr.ResourceNotFound) || altered["few"].Err != nil {
		t.Fatalf("altered %+v: want RESOURCE_NOT_FOUND for nobody, few created", altered)
	}
	described, err := adm.DescribeUserSCRAMs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := described["admin"]; len(d.CredInfos) != 1 || d.CredInfos[0].Mechanism != kadm.ScramSha512 || d.CredInfos[0].Iterations != 4096 {
		t.Fatalf("described %+v", described)
	}
	if described, _ := adm.DescribeUserSCRAMs(ctx, "ghost"); !errors.Is(described["ghost"].Err, kerr.ResourceNotFound) {
		t.Fatalf("describe ghost: %+v", described)
	}

	cl := n.Client(kgo.SASL(scram.Auth{User: "admin", Pass: "s3cret"}.AsSha512Mechanism()), kgo.AllowAutoTopicCreation())
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "t", Value: []byte("scram")}).FirstErr(); err != nil {
		t.Fatalf("produce as a SCRAM user: %v", err)
	}
	for name, mech := range map[string]kgo.Opt{
		"wrong password":  kgo.SASL(scram.Auth{User: "admin", Pass: "guess"}.AsSha512Mechanism()),
		"other mechanism": kgo.SASL(scram.Auth{User: "admin", Pass: "s3cret"}.AsSha256Mechanism()),
		"unknown user":    kgo.SASL(scram.Auth{User: "ghost", Pass: "s3cret"}.AsSha512Mechanism()),
	} {
		bad := n.Client(mech, kgo.RetryTimeout(time.Second))
		if err := bad.Ping(ctx); !errors.Is(err, kerr.SaslAuthenticationFailed) {
			t.Fatalf("%s: %v, want SASL_AUTHENTICATION_FAILED", name, err)
		}
	}
	if altered, err := adm.AlterUserSCRAMs(ctx, []kadm.DeleteSCRAM{{User: "weak", Mechanism: kadm.ScramSha512}}, nil); err != nil || altered.Error() != nil {
		t.Fatalf("delete: %v %v", err, altered.Error())
	}
	gone := n.Client(kgo.SASL(scram.Auth{User: "weak", Pass: "x"}.AsSha512Mechanism()), kgo.RetryTimeout(time.Second))
	if err := gone.Ping(ctx); !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Fatalf("deleted user: %v, want SASL_AUTHENTICATION_FAILED", err)
	}
}
