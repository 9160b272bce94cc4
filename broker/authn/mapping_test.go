package authn

import (
	"errors"
	"testing"
)

// TestPrincipalMapping: Kafka's ssl.principal.mapping.rules, with the
// rules and names of Kafka's documentation (security.html, "Customizing
// SSL User Name"), the first matching rule winning, L/U, escapes, Java's
// $n back references, DEFAULT, and names no rule applies to.
func TestPrincipalMapping(t *testing.T) {
	// Kafka's documented example rules.
	documented := `RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,
		RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L,
		RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L,
		DEFAULT`
	tests := []struct {
		name, rules, dn, want string
		noRule                bool
	}{
		{name: "documented service user", rules: documented,
			dn: "CN=serviceuser,OU=ServiceUsers,O=Unknown,L=Unknown,ST=Unknown,C=Unknown", want: "serviceuser"},
		{name: "documented admin user", rules: documented,
			dn: "CN=adminUser,OU=Admin,O=Unknown,L=Unknown,ST=Unknown,C=Unknown", want: "adminuser@admin"},
		{name: "documented third rule", rules: documented, dn: "OU=Other,CN=Broker.One", want: "broker.one"},
		{name: "documented falls to DEFAULT", rules: documented, dn: "OU=NoCommonName", want: "OU=NoCommonName"},
		{name: "empty is DEFAULT", rules: "", dn: "CN=alice,O=example", want: "CN=alice,O=example"},
		{name: "upper", rules: "RULE:^CN=([^,]*).*$/$1/U", dn: "CN=alice,O=example", want: "ALICE"},
		{name: "first match wins", rules: "RULE:^CN=([^,]*),O=a$/a-$1/,RULE:^CN=([^,]*).*$/any-$1/", dn: "CN=x,O=a", want: "a-x"},
		{name: "second rule", rules: "RULE:^CN=([^,]*),O=a$/a-$1/,RULE:^CN=([^,]*).*$/any-$1/", dn: "CN=x,O=b", want: "any-x"},
		{name: "whole name must match", rules: "RULE:CN=([^,]*)/$1/", dn: "CN=alice,O=example", noRule: true},
		{name: "no rule, no DEFAULT", rules: "RULE:^CN=admin$/root/", dn: "CN=alice", noRule: true},
		{name: "escaped slash", rules: `RULE:^CN=([^,]*),O=a\/b$/$1\/x/`, dn: "CN=u,O=a/b", want: "u/x"},
		{name: "escaped dollar", rules: `RULE:^CN=([^,]*)$/\$$1/`, dn: "CN=u", want: "$u"},
		{name: "back reference past the groups is literal", rules: `RULE:^CN=([^,]*)$/$1$2/`, dn: "CN=u", want: "u$2"},
		{name: "two-digit reference reads one digit", rules: `RULE:^CN=([^,]*)$/$10/`, dn: "CN=u", want: "u0"},
		{name: "group 0 is the whole name", rules: `RULE:^CN=.*$/$0!/`, dn: "CN=u", want: "CN=u!"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParsePrincipalMapping(tt.rules)
			if err != nil {
				t.Fatal(err)
			}
			got, err := m.Name(tt.dn)
			if tt.noRule {
				if !errors.Is(err, ErrNoMappingRule) {
					t.Fatalf("Name(%q) = %q, %v; want ErrNoMappingRule", tt.dn, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Name(%q) = %q, %v; want %q", tt.dn, got, err, tt.want)
			}
		})
	}
}

// TestPrincipalMappingRefusesBadRules: a rule that is not DEFAULT or
// RULE:pattern/replacement/[LU], or whose pattern does not compile, is
// refused at start with the rule named.
func TestPrincipalMappingRefusesBadRules(t *testing.T) {
	for _, rules := range []string{
		"DEFAULTS",
		"RULE:^CN=(.*)$/$1",
		"RULE:^CN=(.*)$/$1/X",
		"RULE:^CN=(.*$/$1/",
		"DEFAULT,,DEFAULT",
		"rule:^CN=(.*)$/$1/",
	} {
		if _, err := ParsePrincipalMapping(rules); err == nil {
			t.Errorf("ParsePrincipalMapping(%q) accepted", rules)
		}
	}
}
