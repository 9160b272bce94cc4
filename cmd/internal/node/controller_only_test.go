package node

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestControllerOnlyNodeRefusesBrokerRoutes: on a node without a broker
// (--process-roles controller) the admin routes that need one answer 409
// Conflict, saying so and where to turn, and do nothing else.
func TestControllerOnlyNodeRefusesBrokerRoutes(t *testing.T) {
	n := &Node{}
	for _, route := range []struct {
		name    string
		handler http.HandlerFunc
		instead string
	}{
		{"partitions", n.handlePartitions, "ask a broker"},
		{"scrub", n.handleScrub, "ask a broker"},
		{"recover", n.handleRecover, "ask a broker"},
		{"confirm clock", n.handleConfirmClock, "nothing deletes by the clock here"},
	} {
		w := httptest.NewRecorder()
		route.handler(w, httptest.NewRequest(http.MethodPost, "/", nil))
		want := "this node runs no broker (--process-roles controller): " + route.instead
		if got := strings.TrimSpace(w.Body.String()); w.Code != http.StatusConflict || got != want {
			t.Errorf("%s: %d %q, want %d %q", route.name, w.Code, got, http.StatusConflict, want)
		}
	}
}
