package broker

import (
	"fmt"

	"github.com/strata-log/strata/internal/fdlimit"
)

// File descriptors a partition needs. A partition keeps three files open
// per segment (the log, its offset index and its time index); a new one
// has one segment. Opening it also uses a few for a moment
// (partition.metadata through a temporary file, the directory for fsync),
// which fdReserve covers.
const fdsPerPartition = 3

// fdReserve is kept free of partitions for what the node cannot do
// without: the metadata log and its Raft connections, the admin listener,
// object-store connections, the descriptors that opening, rolling and
// compacting segments use for a moment, and accepting a connection.
const fdReserve = 64

// fileBudget tells how many partitions this node's file descriptors can
// still hold. The zero value reads the process's limit and open
// descriptors; tests replace both.
type fileBudget struct {
	limit func() (uint64, bool)
	open  func() (int, bool)
}

func (b fileBudget) read() (limit uint64, open int, ok bool) {
	limitFn, openFn := b.limit, b.open
	if limitFn == nil {
		limitFn = fdlimit.Limit
	}
	if openFn == nil {
		openFn = fdlimit.Open
	}
	limit, ok = limitFn()
	if !ok {
		return 0, 0, false
	}
	open, ok = openFn()
	return limit, open, ok
}

// fdCheck is what the file budget says about new partitions.
type fdCheck struct {
	known     bool // false where descriptors cannot be counted: no bound
	limit     uint64
	open      int
	reserved  int // kept free for connections and the node's own needs
	available int // descriptors partitions may still use
}

// partitions is how many more partitions fit.
func (c fdCheck) partitions() int { return max(c.available, 0) / fdsPerPartition }

// check computes the budget, keeping reserved descriptors free beside
// fdReserve.
func (b fileBudget) check(reserved int) fdCheck {
	limit, open, ok := b.read()
	if !ok {
		return fdCheck{}
	}
	reserved += fdReserve
	return fdCheck{known: true, limit: limit, open: open, reserved: reserved,
		available: int(min(limit, 1<<40)) - open - reserved}
}

// admit checks that n more partitions fit, returning a message for the
// client and the operator when they do not.
func (c fdCheck) admit(nodeID int32, n int) (bool, string) {
	if !c.known || n <= c.partitions() {
		return true, ""
	}
	return false, fmt.Sprintf("broker %d cannot hold %d more partitions: each keeps at least %d files open, and of its file descriptor limit of %d (RLIMIT_NOFILE) %d are open and %d are kept for connections and the controller, which leaves room for %d; raise the limit (ulimit -n, systemd LimitNOFILE=) or create fewer partitions",
		nodeID, n, fdsPerPartition, c.limit, c.open, c.reserved, c.partitions())
}

// admissionCheck is the budget for partitions a client asks for: beside
// fdReserve it keeps room for the connections max.connections still
// allows (at most half the limit), so that new partitions never take the
// descriptors clients will connect with.
func (s *Server) admissionCheck() fdCheck {
	limit, _, ok := s.partitions.cfg.files.read()
	if !ok {
		return fdCheck{}
	}
	connections := min(uint64(s.cfg.MaxConnections), limit/2)
	reserved := max(int(connections)-int(s.connLimits.open.Load()), 0)
	return s.partitions.cfg.files.check(reserved)
}
