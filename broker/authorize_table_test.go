package broker

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-log/strata/authz"
)

// TestServedAPIsHaveRequirements: every served API is in Kafka's table of
// required operations (authz.APIRequirements), except those Kafka serves
// to anyone, so a new handler is not added without deciding what it needs.
func TestServedAPIsHaveRequirements(t *testing.T) {
	open := map[int16]bool{kmsg.ApiVersions.Int16(): true, kmsg.SASLHandshake.Int16(): true, kmsg.SASLAuthenticate.Int16(): true}
	for _, a := range servedAPIs() {
		if _, ok := authz.APIRequirements[a.key]; !ok && !open[a.key] {
			t.Errorf("%s (key %d) is served but has no entry in authz.APIRequirements", kmsg.NameForKey(a.key), a.key)
		}
	}
}
