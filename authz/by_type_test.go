package authz

import "testing"

// TestAuthorizeByResourceType: Kafka's authorizeByResourceType (KIP-679),
// which InitProducerId asks for WRITE on any topic.
func TestAuthorizeByResourceType(t *testing.T) {
	tests := []struct {
		name     string
		bindings []Binding
		authz    Authorizer
		host     string
		want     bool
	}{
		{"no acl", nil, Authorizer{}, "h", false},
		{"no acl of the type, allow everyone", []Binding{allow("User:bob", OpRead, ResourceGroup, PatternLiteral, "g")}, Authorizer{AllowEveryoneIfNoACLFound: true}, "h", true},
		// Kafka first asks about a topic no binding names: the topics
		// without ACLs are open to everyone, so WRITE on one is allowed.
		{"acls of the type for others, allow everyone", []Binding{allow("User:bob", OpWrite, ResourceTopic, PatternLiteral, "t")}, Authorizer{AllowEveryoneIfNoACLFound: true}, "h", true},
		{"an acl on every name of the type for others, allow everyone", []Binding{allow("User:bob", OpWrite, ResourceTopic, PatternLiteral, "*")}, Authorizer{AllowEveryoneIfNoACLFound: true}, "h", false},
		{"every name allowed, a prefix denied", []Binding{allow("User:alice", OpWrite, ResourceTopic, PatternLiteral, "*"), deny("User:alice", OpWrite, ResourceTopic, PatternPrefixed, "h")}, Authorizer{}, "h", true},
		{"super user", nil, Authorizer{SuperUsers: map[string]bool{"User:alice": true}}, "h", true},
		{"one literal topic", []Binding{allow("User:alice", OpWrite, ResourceTopic, PatternLiteral, "t")}, Authorizer{}, "h", true},
		{"one prefixed topic", []Binding{allow("User:alice", OpWrite, ResourceTopic, PatternPrefixed, "orders-")}, Authorizer{}, "h", true},
		{"ALL", []Binding{allow("User:alice", OpAll, ResourceTopic, PatternLiteral, "t")}, Authorizer{}, "h", true},
		{"User:*", []Binding{allow("User:*", OpWrite, ResourceTopic, PatternLiteral, "t")}, Authorizer{}, "h", true},
		{"other operation", []Binding{allow("User:alice", OpRead, ResourceTopic, PatternLiteral, "t")}, Authorizer{}, "h", false},
		{"other type", []Binding{allow("User:alice", OpWrite, ResourceTransactionalID, PatternLiteral, "t")}, Authorizer{}, "h", false},
		{"other host", []Binding{{Pattern{ResourceTopic, "t", PatternLiteral}, Entry{"User:alice", "10.0.0.1", OpWrite, PermissionAllow}}}, Authorizer{}, "10.0.0.2", false},
		{"literal denied", []Binding{allow("User:alice", OpWrite, ResourceTopic, PatternLiteral, "t"), deny("User:alice", OpWrite, ResourceTopic, PatternLiteral, "t")}, Authorizer{}, "h", false},
		{"literal denied by a prefix", []Binding{allow("User:alice", OpWrite, ResourceTopic, PatternLiteral, "orders-eu"), deny("User:*", OpWrite, ResourceTopic, PatternPrefixed, "orders")}, Authorizer{}, "h", false},
		{"prefix denied by a shorter prefix", []Binding{allow("User:alice", OpWrite, ResourceTopic, PatternPrefixed, "orders-"), deny("User:alice", OpAll, ResourceTopic, PatternPrefixed, "ord")}, Authorizer{}, "h", false},
		{"a longer denied prefix leaves the rest", []Binding{allow("User:alice", OpWrite, ResourceTopic, PatternPrefixed, "orders-"), deny("User:alice", OpWrite, ResourceTopic, PatternPrefixed, "orders-eu")}, Authorizer{}, "h", true},
		{"another topic still allowed", []Binding{allow("User:alice", OpWrite, ResourceTopic, PatternLiteral, "t"), allow("User:alice", OpWrite, ResourceTopic, PatternLiteral, "u"), deny("User:alice", OpWrite, ResourceTopic, PatternLiteral, "t")}, Authorizer{}, "h", true},
		{"deny of every topic", []Binding{allow("User:alice", OpWrite, ResourceTopic, PatternLiteral, "t"), deny("User:alice", OpWrite, ResourceTopic, PatternLiteral, "*")}, Authorizer{}, "h", false},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			got := test.authz.AuthorizeByResourceType(test.bindings, Request{"User:alice", test.host, OpWrite, Resource{Type: ResourceTopic}})
			if got != test.want {
				t.Fatalf("AuthorizeByResourceType = %t, want %t", got, test.want)
			}
		})
	}
}
