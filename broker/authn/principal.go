// Package authn is how a Kafka connection proves who it is: the security
// protocol of each listener (Kafka's PLAINTEXT, SSL, SASL_PLAINTEXT,
// SASL_SSL), TLS with certificates reloaded from their files, and the
// principal a connection acts as.
package authn

// Principal is who a connection acts as, in Kafka's KafkaPrincipal form
// "Type:Name": "User:alice" after SASL, "User:CN=alice,O=example" from a
// client certificate with mutual TLS (Kafka's default DN mapping: the
// subject's distinguished name), User:ANONYMOUS otherwise.
type Principal struct {
	Type string // "User"
	Name string
}

// UserType is the principal type of users, Kafka's only built-in one.
const UserType = "User"

// Anonymous is the principal of a connection that has not authenticated
// (PLAINTEXT, SSL without a client certificate).
var Anonymous = Principal{Type: UserType, Name: "ANONYMOUS"}

// User is the principal of the user name.
func User(name string) Principal { return Principal{Type: UserType, Name: name} }

// String is Kafka's form, "User:alice".
func (p Principal) String() string { return p.Type + ":" + p.Name }
