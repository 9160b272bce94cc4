package authn

import (
	"context"
	"encoding/base64"
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// TestScramRFC7677Vector: the SCRAM-SHA-256 exchange of RFC 7677 section 3,
// byte for byte.
func TestScramRFC7677Vector(t *testing.T) {
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	cred, err := ScramCredentialWithSalt(ScramSHA256, "pencil", salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewScramServer(ScramSHA256, func(user string) (ScramCredential, bool) { return cred, user == "user" })
	if err != nil {
		t.Fatal(err)
	}
	srv.nonce = func() string { return "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0" }
	first, done, _, err := srv.Step([]byte("n,,n=user,r=rOprNGfwEbeRWgbNEkqO"))
	if want := "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"; err != nil || done || string(first) != want {
		t.Fatalf("server-first %q (%v), want %q", first, err, want)
	}
	final, done, p, err := srv.Step([]byte("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="))
	if want := "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="; err != nil || !done || string(final) != want {
		t.Fatalf("server-final %q (%v), want %q", final, err, want)
	}
	if p != User("user") {
		t.Fatalf("principal %v", p)
	}
	// A client-final whose nonce does not end with the server's fails.
	srv, _ = NewScramServer(ScramSHA256, func(user string) (ScramCredential, bool) { return cred, user == "user" })
	srv.nonce = func() string { return "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0" }
	srv.Step([]byte("n,,n=user,r=rOprNGfwEbeRWgbNEkqO"))
	if _, _, _, err := srv.Step([]byte("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k1,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")); !errors.Is(err, ErrScramFailed) {
		t.Fatalf("wrong nonce: %v", err)
	}
}

// exchange drives franz-go's SCRAM client against srv.
func exchange(t *testing.T, client sasl.Mechanism, srv *ScramServer) (Principal, error) {
	t.Helper()
	sess, msg, err := client.Authenticate(context.Background(), "127.0.0.1:9092")
	if err != nil {
		t.Fatal(err)
	}
	for {
		reply, done, p, err := srv.Step(msg)
		if err != nil {
			return Principal{}, err
		}
		clientDone, next, err := sess.Challenge(reply)
		if err != nil {
			t.Fatalf("the client refused the server's message %q: %v", reply, err)
		}
		if done {
			if !clientDone {
				t.Fatal("the server finished before the client")
			}
			return p, nil
		}
		msg = next
	}
}

func TestScramWithFranzGoClient(t *testing.T) {
	creds := map[string]ScramCredential{}
	for _, m := range []ScramMechanism{ScramSHA256, ScramSHA512} {
		c, err := NewScramCredential(m, "s3cret,=x", MinScramIterations)
		if err != nil {
			t.Fatal(err)
		}
		creds[string(m)] = c
	}
	for _, tc := range []struct {
		mech   ScramMechanism
		client sasl.Mechanism
		ok     bool
	}{
		{ScramSHA256, scram.Auth{User: "ad=m,in", Pass: "s3cret,=x"}.AsSha256Mechanism(), true},
		{ScramSHA512, scram.Auth{User: "ad=m,in", Pass: "s3cret,=x"}.AsSha512Mechanism(), true},
		{ScramSHA512, scram.Auth{User: "ad=m,in", Pass: "wrong"}.AsSha512Mechanism(), false},
		{ScramSHA512, scram.Auth{User: "nobody", Pass: "s3cret,=x"}.AsSha512Mechanism(), false},
		// A SCRAM-SHA-256 credential does not authenticate SCRAM-SHA-512.
		{ScramSHA512, scram.Auth{User: "only256", Pass: "s3cret,=x"}.AsSha512Mechanism(), false},
	} {
		srv, err := NewScramServer(tc.mech, func(user string) (ScramCredential, bool) {
			switch user {
			case "ad=m,in":
				return creds[string(tc.mech)], true
			case "only256":
				return creds[string(ScramSHA256)], true
			}
			return ScramCredential{}, false
		})
		if err != nil {
			t.Fatal(err)
		}
		p, err := exchange(t, tc.client, srv)
		if tc.ok && (err != nil || p != User("ad=m,in")) {
			t.Fatalf("%s: principal %v, err %v", tc.mech, p, err)
		}
		if !tc.ok && !errors.Is(err, ErrScramFailed) {
			t.Fatalf("%s: err %v, want ErrScramFailed", tc.mech, err)
		}
	}
}

func TestScramRefusesWeakCredentialsAndBadMessages(t *testing.T) {
	if _, err := NewScramCredential(ScramSHA512, "pw", 1000); err == nil {
		t.Fatal("1000 iterations accepted")
	}
	if _, err := NewScramCredential("SCRAM-MD5", "pw", 4096); err == nil {
		t.Fatal("an unknown mechanism accepted")
	}
	for _, msg := range []string{"", "p=tls-unique,,n=u,r=abc", "n,,r=abc", "n,,n=u", "n,a=other,n=u,r=abc", "n,,n=bad=esc,r=abc"} {
		srv, _ := NewScramServer(ScramSHA256, func(string) (ScramCredential, bool) { return ScramCredential{}, false })
		if _, _, _, err := srv.Step([]byte(msg)); !errors.Is(err, ErrScramFailed) {
			t.Errorf("client-first %q: err %v", msg, err)
		}
	}
}
