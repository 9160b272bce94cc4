package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/strata-log/strata/tiering"
)

const bucketUsage = `Usage: strata bucket create --object-store URL [flags]

Creates the object-store bucket tiered topics go to (an existing bucket of
yours is fine), retrying while the store is not reachable yet (e.g. MinIO
starting next to it in docker compose). Credentials come from the standard
AWS chain: best a shared credentials file only this user can read
(AWS_SHARED_CREDENTIALS_FILE=FILE, mode 0600, see SECURITY.md), else
AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, profiles or instance roles.

Flags:
`

// runBucket runs `strata bucket create`.
func runBucket(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		fmt.Fprint(stderr, bucketUsage)
		if len(args) > 0 && (args[0] == "--help" || args[0] == "-h") {
			return pflag.ErrHelp
		}
		return usageErrorf("missing subcommand (create)")
	}
	fs := pflag.NewFlagSet("bucket create", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	store := fs.String("object-store", "", "the bucket: s3://BUCKET?endpoint=...&region=...&use_path_style=true or file:///dir")
	timeout := fs.Duration("timeout", 2*time.Minute, "keep retrying this long")
	fs.Usage = func() { fmt.Fprintf(stderr, "%s%s", bucketUsage, fs.FlagUsages()) }
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if !strings.HasPrefix(*store, "s3://") && !strings.HasPrefix(*store, "file://") {
		return usageErrorf("--object-store %q: want s3://bucket?endpoint=...&region=...&use_path_style=true or file:///dir", tiering.RedactURL(*store))
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	for attempt := 1; ; attempt++ {
		err := tiering.CreateBucket(ctx, *store)
		if err == nil {
			fmt.Fprintf(stdout, "bucket %s ready\n", tiering.RedactURL(*store))
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w (gave up after %v: check the endpoint, the credentials and that the store is up)", err, *timeout)
		}
		fmt.Fprintf(stderr, "attempt %d: %v; retrying\n", attempt, err)
		select {
		case <-ctx.Done():
		case <-time.After(min(time.Duration(attempt)*time.Second, 5*time.Second)):
		}
	}
}
