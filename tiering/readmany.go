package tiering

import (
	"context"
	"sync"

	"github.com/strata-log/strata/metadata"
)

// ReadRequest is one partition's part of a fetch served from the remote
// tier.
type ReadRequest struct {
	Partition metadata.TopicPartition
	Segment   metadata.SegmentManifest
	Offset    int64
	MaxBytes  int
}

// ReadResult is the answer to one ReadRequest: Data or Err, never both.
type ReadResult struct {
	Data []byte
	Err  error
}

// ReadMany serves the requests (typically the partitions of one Fetch)
// concurrently, at most Config.ReadConcurrency at once, and returns the
// results in request order. Each result is as Read's.
func (t *Tier) ReadMany(ctx context.Context, requests []ReadRequest) []ReadResult {
	results := make([]ReadResult, len(requests))
	slots := make(chan struct{}, t.config.ReadConcurrency)
	var wait sync.WaitGroup
	for i, request := range requests {
		slots <- struct{}{}
		wait.Add(1)
		go func() {
			defer wait.Done()
			defer func() { <-slots }()
			results[i].Data, results[i].Err = t.Read(ctx, request.Partition, request.Segment, request.Offset, request.MaxBytes)
		}()
	}
	wait.Wait()
	return results
}
