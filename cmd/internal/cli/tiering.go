package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/strata-log/strata/broker"
	"github.com/strata-log/strata/cmd/internal/node"
)

const tieringUsage = `Usage: strata tiering <command> [flags]

Commands (each talks to one broker's admin listener, --admin):
  status     the tiered partitions this broker hosts: remote and local offsets
             and bytes, upload backlog (where it leads), bytes in the bucket
  scrub      compare the object store with the cluster's manifest: objects no
             manifest entry names, entries whose objects are missing, .log objects
             of the wrong size; exit code 1 when anything is found
  recover    disaster recovery: rebuild every topic found in the object store
             (the broker's --object-store) into this cluster, keeping topic ids
             and offsets, so consumers can replay all history. Recovered topics get
             remote.storage.enable=true and retention.ms=-1: set their retention
             afterwards. Safe to run again.

Flags:
`

// runTiering runs the tiering subcommands against a broker's admin listener.
func runTiering(args []string, stdout, stderr io.Writer) error {
	sub, a, err := parseAdminCommand("tiering", tieringUsage, "status, scrub, recover", 30*time.Minute, args, stderr, nil)
	if err != nil {
		return err
	}
	admin, output := &a.admin, &a.output
	switch sub {
	case "status":
		var all []broker.PartitionStatus
		if _, err := a.getJSON("/v1/partitions", &all); err != nil {
			return err
		}
		var tiered []broker.PartitionStatus
		var inBucket, backlog int64
		for _, p := range all {
			if p.Tiered || p.RemoteSegments > 0 {
				tiered = append(tiered, p)
				inBucket += p.RemoteBytes
				backlog += p.TieringLagBytes
			}
		}
		if *output == "json" {
			return json.NewEncoder(stdout).Encode(map[string]any{"partitions": tiered, "bucket_bytes": inBucket, "backlog_bytes": backlog})
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TOPIC\tPARTITION\tLEADS\tREMOTE OFFSETS\tREMOTE BYTES\tSEGMENTS\tLOCAL OFFSETS\tLOCAL BYTES\tBACKLOG BYTES")
		for _, p := range tiered {
			remote := "-"
			if p.RemoteStart >= 0 {
				remote = fmt.Sprintf("%d-%d", p.RemoteStart, p.RemoteEnd)
			}
			fmt.Fprintf(tw, "%s\t%d\t%t\t%s\t%d\t%d\t%d-%d\t%d\t%d\n", p.Topic, p.Partition, p.Leading, remote, p.RemoteBytes, p.RemoteSegments, p.LocalStart, p.LocalEnd, p.LocalBytes, p.TieringLagBytes)
		}
		fmt.Fprintf(tw, "\n%d tiered partitions here; %d bytes of them in the bucket; %d bytes waiting to be uploaded\n", len(tiered), inBucket, backlog)
		return tw.Flush()
	case "scrub":
		var result node.ScrubResult
		body, err := a.callJSON(http.MethodPost, "/v1/tiering/scrub", &result)
		if err != nil {
			return err
		}
		if *output == "json" {
			stdout.Write(body)
		} else {
			r := result.Report
			fmt.Fprintf(stdout, "%d objects checked: %d orphaned, %d missing, %d of the wrong size\n", r.Objects, len(r.Orphans), len(r.Missing), len(r.SizeMismatches))
			for _, key := range r.Orphans {
				fmt.Fprintf(stdout, "ORPHAN     %s\n", key)
			}
			for _, m := range r.Missing {
				fmt.Fprintf(stdout, "MISSING    %s (segment %d..%d of %s)\n", m.Key, m.Segment.BaseOffset, m.Segment.LastOffset, m.Partition)
			}
			for _, key := range r.SizeMismatches {
				fmt.Fprintf(stdout, "WRONG SIZE %s\n", key)
			}
		}
		if !result.Clean {
			return errors.New("the object store and the manifest disagree (see above)")
		}
		return nil
	case "recover":
		resp, err := a.do(http.MethodPost, "/v1/tiering/recover", nil)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			body, _ := io.ReadAll(resp.Body)
			return fmt.Errorf("%s: %s %s", *admin, resp.Status, bytes.TrimSpace(body))
		}
		scanner := bufio.NewScanner(resp.Body)
		scanner.Buffer(make([]byte, 64<<10), 1<<20)
		for scanner.Scan() {
			var line node.RecoverLine
			if err := json.Unmarshal(scanner.Bytes(), &line); err != nil {
				return fmt.Errorf("%s: unexpected answer: %w", *admin, err)
			}
			if *output == "json" {
				fmt.Fprintln(stdout, scanner.Text())
			}
			switch {
			case line.Error != "":
				return fmt.Errorf("recovery failed: %s (fix the cause and run it again: it resumes)", line.Error)
			case line.Finished:
				if *output == "table" {
					fmt.Fprintln(stdout, "recovery finished")
				}
				return nil
			case line.RecoverProgress != nil && *output == "table":
				p := line.RecoverProgress
				what := fmt.Sprintf("%d segments imported, offsets %d..%d", p.Segments, p.FirstOffset, p.NextOffset)
				if p.Skipped != "" {
					what = "skipped: " + p.Skipped
				}
				fmt.Fprintf(stdout, "%s %s-%d: %s\n", progressBar(p.Done, p.Total), p.Topic, p.Partition, what)
			}
		}
		if err := scanner.Err(); err != nil {
			return fmt.Errorf("%s: %w", *admin, err)
		}
		return errors.New("the broker ended the recovery without a result; see its log, then run it again (it resumes)")
	default:
		return usageErrorf("unknown subcommand %q (status, scrub, recover)", sub)
	}
}

// progressBar draws done of total as [#####-----] done/total.
func progressBar(done, total int) string {
	const width = 20
	filled := width
	if total > 0 {
		filled = done * width / total
	}
	return fmt.Sprintf("[%s%s] %d/%d", strings.Repeat("#", filled), strings.Repeat("-", width-filled), done, total)
}
