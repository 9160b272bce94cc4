package metadata

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// fsm is the Raft state machine holding the metadata State.
//
// Threading contract (hashicorp/raft's): Apply, ApplyBatch, Snapshot and
// Restore are called one at a time from Raft's FSM goroutine; Persist of a
// snapshot runs on another goroutine concurrently with later Applies. Readers
// on any goroutine call state and changed, which only load an atomic pointer:
// every published State is immutable, so Snapshot captures one in O(1) and
// Persist streams it while Apply builds new versions next to it.
type fsm struct {
	// published is the current State and the channel closed when it is
	// replaced. Only the FSM goroutine stores it (publish).
	published atomic.Pointer[publication]
	logger    *slog.Logger

	// resultsMu guards results: the results of the latest command entries
	// by log index. Apply is deterministic, so every node computes the same
	// result for an entry; a node that forwarded a proposal to the leader
	// reads the result here once it has applied the entry itself.
	resultsMu sync.Mutex
	results   map[uint64]applyResult

	// halted is the committed entry this node cannot apply, set once by
	// the FSM goroutine; haltedSignal is closed when it is. From then on
	// nothing more is applied or snapshotted: the node must stop.
	halted       atomic.Pointer[UnappliableEntryError]
	haltedSignal chan struct{}
}

// UnappliableEntryError is a committed metadata log entry that this node
// cannot decode: a newer build's command without the ignore-unknown bit, or
// a corrupt entry. Applying anything after it could diverge from the other
// nodes, so the node stops; it stops again at the same entry after a
// restart, until it is upgraded, or wiped and rejoined from the quorum.
type UnappliableEntryError struct {
	Index   uint64
	Type    uint8
	Version uint8
	Err     error
}

func (e *UnappliableEntryError) Error() string {
	return fmt.Sprintf("metadata: committed log entry %d (command type %d, version %d) cannot be applied by this build: %v", e.Index, e.Type, e.Version, e.Err)
}

func (e *UnappliableEntryError) Unwrap() error { return e.Err }

// keptResults is how many command results the fsm remembers.
const keptResults = 4096

// publication pairs a State with the channel that is closed when a newer
// State replaces it.
type publication struct {
	state   *State
	changed chan struct{}
}

// applyResult is what Apply returns to the proposer through the ApplyFuture.
type applyResult struct {
	value any
	err   error
}

var (
	_ raft.BatchingFSM = (*fsm)(nil)
	_ raft.FSMSnapshot = (*fsmSnapshot)(nil)
)

func newFSM(logger *slog.Logger) *fsm {
	f := &fsm{logger: logger, results: map[uint64]applyResult{}, haltedSignal: make(chan struct{})}
	f.published.Store(&publication{state: emptyState(), changed: make(chan struct{})})
	return f
}

// state returns the current State.
func (f *fsm) state() *State { return f.published.Load().state }

// watch returns the current State and a channel closed once a newer State
// is published.
func (f *fsm) watch() (*State, <-chan struct{}) {
	current := f.published.Load()
	return current.state, current.changed
}

func (f *fsm) publish(state *State) {
	previous := f.published.Swap(&publication{state: state, changed: make(chan struct{})})
	close(previous.changed)
}

// Apply applies one committed log entry.
func (f *fsm) Apply(log *raft.Log) any {
	return f.ApplyBatch([]*raft.Log{log})[0]
}

// ApplyBatch applies committed log entries in order and publishes the
// resulting State once. Entries that are not commands (configuration
// changes, no-ops) only advance the applied index.
func (f *fsm) ApplyBatch(logs []*raft.Log) []any {
	state := f.state()
	results := make([]any, len(logs))
	halted := f.halted.Load()
	for i, log := range logs {
		if halted != nil {
			results[i] = applyResult{err: halted}
			continue
		}
		if log.Type != raft.LogCommand {
			state = state.withAppliedIndex(log.Index)
			continue
		}
		var result applyResult
		state, result = f.applyCommand(state, log.Index, log.Data)
		results[i] = result
		errors.As(result.err, &halted)
		f.resultsMu.Lock()
		f.results[log.Index] = result
		if len(f.results) > 2*keptResults {
			for index := range f.results {
				if index+keptResults < log.Index {
					delete(f.results, index)
				}
			}
		}
		f.resultsMu.Unlock()
	}
	f.publish(state)
	// Signal the halt only once the state before the entry is published:
	// whoever sees the halt reads that state.
	if halted != nil && f.halted.CompareAndSwap(nil, halted) {
		close(f.haltedSignal)
	}
	return results
}

// result returns the result of the command entry at index, if it is among
// the latest keptResults applied here.
func (f *fsm) result(index uint64) (applyResult, bool) {
	f.resultsMu.Lock()
	defer f.resultsMu.Unlock()
	r, ok := f.results[index]
	return r, ok
}

// applyCommand applies one command entry to state. A command that the state
// rejects yields an error result and the unchanged state (at the new index).
// Data that does not decode is a newer node's command without the
// ignore-unknown bit, or corruption: continuing could diverge from the other
// nodes, so the fsm halts (UnappliableEntryError) with the state before it.
func (f *fsm) applyCommand(state *State, index uint64, data []byte) (*State, applyResult) {
	cmd, err := decodeCommand(data)
	var unknown *errUnknownCommand
	if errors.As(err, &unknown) && unknown.ignoreUnknown {
		f.logger.Warn("metadata: skipping unknown command", "index", index, "type", unknown.typ, "version", unknown.version)
		return state.withAppliedIndex(index), applyResult{err: unknown}
	}
	if err != nil {
		halt := &UnappliableEntryError{Index: index, Err: err}
		if len(data) > 0 {
			halt.Type = data[0] &^ commandIgnoreUnknown
		}
		if len(data) > 1 {
			halt.Version = data[1]
		}
		f.logger.Error("metadata: stopping: a committed log entry cannot be applied by this build (upgrade this node, or wipe its data dir and let it rejoin from the quorum)", "index", index, "type", halt.Type, "version", halt.Version, "error", err)
		return state, applyResult{err: halt}
	}
	builder := newStateBuilder(state, index)
	value, err := cmd.apply(builder)
	if err != nil {
		return state.withAppliedIndex(index), applyResult{err: err}
	}
	return builder.build(index), applyResult{value: value}
}

// Snapshot captures the current State; Persist writes it out. A halted fsm
// takes none: Raft would label it with the index of the entry that was not
// applied, and the entry would be gone from the log after a restart.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	if halted := f.halted.Load(); halted != nil {
		return nil, halted
	}
	return &fsmSnapshot{state: f.state()}, nil
}

// Restore replaces the State with the one in snapshot.
func (f *fsm) Restore(snapshot io.ReadCloser) error {
	defer snapshot.Close()
	state, err := readSnapshot(snapshot)
	if err != nil {
		return fmt.Errorf("metadata: restore snapshot: %w", err)
	}
	f.publish(state)
	return nil
}

// fsmSnapshot is one captured State. Persist may run concurrently with
// Apply: the State it streams is immutable.
type fsmSnapshot struct {
	state *State
}

// Persist streams the captured State into sink.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := writeSnapshot(sink, s.state); err != nil {
		cancelErr := sink.Cancel()
		return errors.Join(fmt.Errorf("metadata: persist snapshot: %w", err), cancelErr)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("metadata: persist snapshot: close sink: %w", err)
	}
	return nil
}

// Release frees nothing: the State is garbage collected when unreferenced.
func (s *fsmSnapshot) Release() {}
