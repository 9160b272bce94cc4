package metadata

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"strings"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
)

// slogAdapter lets hashicorp/raft and raft-wal log through a *slog.Logger.
// Levels map one to one (Trace becomes slog.LevelDebug-4); the slog handler
// decides what is printed, so SetLevel is ignored.
type slogAdapter struct {
	logger *slog.Logger
	name   string
	// implied are the key/value pairs added with With.
	implied []any
	// expectedElection, when set and true, has the next "heartbeat
	// timeout reached, starting election" warning logged at INFO: this
	// node stands on purpose (Store.standAtOnceIfSoleVoter).
	expectedElection *atomic.Bool
}

// raftElectionWarning is what hashicorp/raft logs, at WARN, when a
// follower stands for election.
const raftElectionWarning = "heartbeat timeout reached, starting election"

var _ hclog.Logger = (*slogAdapter)(nil)

// newHCLogger adapts logger for hashicorp libraries, naming the component.
func newHCLogger(logger *slog.Logger, name string) hclog.Logger {
	return &slogAdapter{logger: logger.With("subsystem", name), name: name}
}

// newRaftLogger is newHCLogger for Raft itself, which logs the election
// this node starts on purpose at INFO while expected is true.
func newRaftLogger(logger *slog.Logger, expected *atomic.Bool) hclog.Logger {
	return &slogAdapter{logger: logger.With("subsystem", "raft"), name: "raft", expectedElection: expected}
}

func discardHCLogger() hclog.Logger { return hclog.NewNullLogger() }

const slogLevelTrace = slog.LevelDebug - 4

func toSlogLevel(level hclog.Level) slog.Level {
	switch level {
	case hclog.Trace:
		return slogLevelTrace
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

func (a *slogAdapter) Log(level hclog.Level, message string, args ...any) {
	if level == hclog.Off {
		return
	}
	if level == hclog.Warn && message == raftElectionWarning && a.expectedElection != nil && a.expectedElection.CompareAndSwap(true, false) {
		level = hclog.Info
	}
	for i, arg := range args {
		// hclog.Fmt values carry a format and its arguments.
		if f, ok := arg.(hclog.Format); ok && len(f) > 0 {
			if format, ok := f[0].(string); ok {
				args[i] = fmt.Sprintf(format, f[1:]...)
			}
		}
	}
	a.logger.Log(context.Background(), toSlogLevel(level), message, args...)
}

func (a *slogAdapter) Trace(message string, args ...any) { a.Log(hclog.Trace, message, args...) }
func (a *slogAdapter) Debug(message string, args ...any) { a.Log(hclog.Debug, message, args...) }
func (a *slogAdapter) Info(message string, args ...any)  { a.Log(hclog.Info, message, args...) }
func (a *slogAdapter) Warn(message string, args ...any)  { a.Log(hclog.Warn, message, args...) }
func (a *slogAdapter) Error(message string, args ...any) { a.Log(hclog.Error, message, args...) }

func (a *slogAdapter) enabled(level hclog.Level) bool {
	return a.logger.Enabled(context.Background(), toSlogLevel(level))
}

func (a *slogAdapter) IsTrace() bool { return a.enabled(hclog.Trace) }
func (a *slogAdapter) IsDebug() bool { return a.enabled(hclog.Debug) }
func (a *slogAdapter) IsInfo() bool  { return a.enabled(hclog.Info) }
func (a *slogAdapter) IsWarn() bool  { return a.enabled(hclog.Warn) }
func (a *slogAdapter) IsError() bool { return a.enabled(hclog.Error) }

func (a *slogAdapter) ImpliedArgs() []any { return a.implied }

func (a *slogAdapter) With(args ...any) hclog.Logger {
	return &slogAdapter{
		logger:           a.logger.With(args...),
		name:             a.name,
		implied:          append(append([]any(nil), a.implied...), args...),
		expectedElection: a.expectedElection,
	}
}

func (a *slogAdapter) Name() string { return a.name }

func (a *slogAdapter) Named(name string) hclog.Logger {
	if a.name != "" {
		name = a.name + "." + name
	}
	return a.ResetNamed(name)
}

func (a *slogAdapter) ResetNamed(name string) hclog.Logger {
	return &slogAdapter{logger: a.logger.With("subsystem", name), name: name, implied: a.implied, expectedElection: a.expectedElection}
}

func (a *slogAdapter) SetLevel(hclog.Level) {}

func (a *slogAdapter) GetLevel() hclog.Level {
	for _, level := range []hclog.Level{hclog.Trace, hclog.Debug, hclog.Info, hclog.Warn, hclog.Error} {
		if a.enabled(level) {
			return level
		}
	}
	return hclog.Off
}

func (a *slogAdapter) StandardLogger(options *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(a.StandardWriter(options), "", 0)
}

func (a *slogAdapter) StandardWriter(options *hclog.StandardLoggerOptions) io.Writer {
	level := hclog.Info
	if options != nil && options.ForceLevel != hclog.NoLevel {
		level = options.ForceLevel
	}
	return &slogLineWriter{adapter: a, level: level}
}

// slogLineWriter logs each Write as one message.
type slogLineWriter struct {
	adapter *slogAdapter
	level   hclog.Level
}

func (w *slogLineWriter) Write(data []byte) (int, error) {
	w.adapter.Log(w.level, strings.TrimRight(string(data), "\n"))
	return len(data), nil
}
