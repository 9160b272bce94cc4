package metadata

import (
	"bytes"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
)

// TestExpectedElectionLoggedAtInfo: Raft's warning that a follower stands
// for election is logged at INFO once when this node stands on purpose
// (a sole voter), through loggers derived with With and Named too, and at
// WARN otherwise; other warnings keep their level.
func TestExpectedElectionLoggedAtInfo(t *testing.T) {
	var out bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var expected atomic.Bool
	raftLogger := newRaftLogger(logger, &expected).With("node", 1).Named("raft")
	levelOf := func(log func()) string {
		t.Helper()
		out.Reset()
		log()
		line := out.String()
		_, rest, ok := strings.Cut(line, "level=")
		if !ok {
			t.Fatalf("no level in %q", line)
		}
		level, _, _ := strings.Cut(rest, " ")
		return level
	}
	if got := levelOf(func() { raftLogger.Warn(raftElectionWarning) }); got != "WARN" {
		t.Errorf("election not expected: %s, want WARN", got)
	}
	expected.Store(true)
	if got := levelOf(func() { raftLogger.Warn("failed to contact") }); got != "WARN" {
		t.Errorf("another warning while an election is expected: %s, want WARN", got)
	}
	if got := levelOf(func() { raftLogger.Warn(raftElectionWarning) }); got != "INFO" {
		t.Errorf("the expected election: %s, want INFO", got)
	}
	if got := levelOf(func() { raftLogger.Warn(raftElectionWarning) }); got != "WARN" {
		t.Errorf("a later election: %s, want WARN (only the expected one is INFO)", got)
	}
}
