// Command strata-lazyfs mounts a lost-page-cache file system (package
// internal/lazyfs): a pass-through of --backing at --mount that can forget,
// on command, everything not fsynced, as a power loss would. The nemesis
// mounts one per broker data directory and drives it over --control, a
// Unix socket taking one command per line (see internal/lazyfs's package
// doc for the commands and the semantics).
//
// It prints "ready" on stdout once mounted. SIGTERM and SIGINT unmount and
// exit 0; every other exit path it controls unmounts too. If it is killed,
// run `fusermount3 -uz MOUNT`.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/strata-log/strata/internal/lazyfs"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "strata-lazyfs:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	flags := pflag.NewFlagSet("strata-lazyfs", pflag.ContinueOnError)
	backing := flags.String("backing", "", "directory holding the files (required)")
	mount := flags.String("mount", "", "empty directory to mount the lost-page-cache view on (required)")
	control := flags.String("control", "", "Unix socket for commands: drop | enospc on|off | fsync-delay MS | fsync-error on|off | stats (required)")
	debug := flags.Bool("debug", false, "log every FUSE request")
	flags.Usage = func() {
		fmt.Fprintf(os.Stderr, `Usage: strata-lazyfs --backing DIR --mount DIR --control SOCKET

Mounts DIR as a pass-through of --backing that keeps what was not fsynced
undoable: the control command "drop" returns every file to its content and
length at its last fsync and undoes creates, renames and unlinks not followed
by an fsync of their directory, as a power loss would. Prints "ready" once
mounted; SIGTERM/SIGINT unmount and exit 0.

Control commands (one per line, answered with one line):
  drop             forget everything not durable          -> ok | error: <text>
  enospc on|off    growing writes/creates/fallocate fail  -> ok
  fsync-delay MS   every fsync takes at least MS ms       -> ok
  fsync-error on|off  every fsync fails with EIO          -> ok
  stats            counters                               -> fsyncs=N dir_fsyncs=N ...

Flags:
%s`, flags.FlagUsages())
	}
	if err := flags.Parse(args); err != nil {
		return err
	}
	if flags.NArg() != 0 {
		flags.Usage()
		return fmt.Errorf("unexpected arguments: %v", flags.Args())
	}
	if *backing == "" || *mount == "" || *control == "" {
		flags.Usage()
		return errors.New("--backing, --mount and --control are required")
	}
	if entries, err := os.ReadDir(*mount); err != nil {
		return fmt.Errorf("mount point: %w", err)
	} else if len(entries) != 0 {
		return fmt.Errorf("mount point %s is not empty", *mount)
	}

	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	lfs, err := lazyfs.New(lazyfs.Config{Backing: *backing, Logger: logger})
	if err != nil {
		return err
	}
	m, err := lazyfs.MountFS(lfs, *mount, *debug)
	if err != nil {
		return err
	}
	unmount := func() error {
		if err := m.Unmount(); err != nil {
			return fmt.Errorf("unmount %s: %w", *mount, err)
		}
		return nil
	}
	server, err := lazyfs.ServeControl(*control, m, logger)
	if err != nil {
		return errors.Join(err, unmount())
	}
	defer server.Close()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	stopped := make(chan struct{})
	go func() { m.Wait(); close(stopped) }()
	fmt.Println("ready")
	logger.Info("strata-lazyfs: mounted", "backing", *backing, "mount", *mount, "control", *control)

	select {
	case <-ctx.Done():
		logger.Info("strata-lazyfs: signal, unmounting")
		return unmount()
	case <-stopped:
		logger.Info("strata-lazyfs: unmounted from outside (fusermount3 -u), exiting")
		return nil
	}
}
