package tiering

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/uuid"

	"github.com/strata-log/strata/metadata"
)

// PartitionObjects is what the bucket holds under one partition's prefix,
// sorted by the kind of name: what a cleanup of orphans compares with the
// partition's manifest.
type PartitionObjects struct {
	// Segments maps each segment id found to the keys of its objects.
	Segments map[uuid.UUID][]string
	// Snapshots are the manifest snapshot objects, lowest epoch first.
	Snapshots []SnapshotObject
	// Temporary are files a file:// bucket writes an object to before
	// renaming it ("<object>.<hex>.tmp"), left by a write that never
	// finished (the writer died).
	Temporary []string
	// Others are names this package does not write.
	Others []string
}

// ListPartition lists the objects under the partition's prefix.
func (t *Tier) ListPartition(ctx context.Context, p metadata.TopicPartition) (PartitionObjects, error) {
	objects := PartitionObjects{Segments: map[uuid.UUID][]string{}}
	err := t.bucket.Iter(ctx, t.layout.partitionPrefix(p), func(key string, _ int64) error {
		if _, id, _, ok := parseSegmentObject(key); ok {
			objects.Segments[id] = append(objects.Segments[id], key)
		} else if epoch, ok := parseManifestSnapshotObject(key); ok {
			objects.Snapshots = append(objects.Snapshots, SnapshotObject{Key: key, Epoch: epoch})
		} else if isTemporary(key) {
			objects.Temporary = append(objects.Temporary, key)
		} else {
			objects.Others = append(objects.Others, key)
		}
		return nil
	})
	if err != nil {
		return PartitionObjects{}, fmt.Errorf("tiering: list %s: %w", p, err)
	}
	slices.SortFunc(objects.Snapshots, func(a, b SnapshotObject) int { return cmp.Compare(a.Epoch, b.Epoch) })
	return objects, nil
}

// isTemporary reports whether key is fileblob's temporary file of an object
// this package writes: "<object>.<hex digits>.tmp".
func isTemporary(key string) bool {
	stem, found := strings.CutSuffix(key, ".tmp")
	if !found {
		return false
	}
	dot := strings.LastIndexByte(stem, '.')
	if dot < 0 || dot == len(stem)-1 || strings.Trim(stem[dot+1:], "0123456789abcdef") != "" {
		return false
	}
	object := stem[:dot]
	_, _, _, segment := parseSegmentObject(object)
	_, snapshot := parseManifestSnapshotObject(object)
	return segment || snapshot
}

// DeleteObjects deletes the keys, each with the upload retry policy; a
// missing one counts as deleted. For removing orphans the caller found
// with ListPartition: segments are deleted through DeleteSegment.
func (t *Tier) DeleteObjects(ctx context.Context, keys []string) error {
	for _, key := range keys {
		if err := t.deleteObject(ctx, key); err != nil {
			return fmt.Errorf("tiering: delete %s: %w", key, err)
		}
	}
	return nil
}

// MultipartAborter is a Bucket with multipart uploads (S3): a writer that
// dies or is paused mid-upload leaves its parts stored, and billed, until
// the upload is aborted.
type MultipartAborter interface {
	// AbortMultipartUploads aborts the multipart uploads of keys under
	// prefix started before startedBefore and returns how many it
	// aborted.
	AbortMultipartUploads(ctx context.Context, prefix string, startedBefore time.Time) (int, error)
}

// AbortMultipartUploads aborts the multipart uploads under the partition's
// prefix started before startedBefore, when the bucket has multipart
// uploads (0 otherwise). Only the partition's uploader may call it: an
// upload it aborts fails (and is retried, if its writer is still the
// leader).
func (t *Tier) AbortMultipartUploads(ctx context.Context, p metadata.TopicPartition, startedBefore time.Time) (int, error) {
	aborter, ok := t.bucket.(MultipartAborter)
	if !ok {
		return 0, nil
	}
	return aborter.AbortMultipartUploads(ctx, t.layout.partitionPrefix(p), startedBefore)
}

var (
	_ MultipartAborter = (*BlobBucket)(nil)
	_ MultipartAborter = (*MetricsBucket)(nil)
)

// AbortMultipartUploads implements MultipartAborter: on S3 it lists the
// multipart uploads under prefix (ListMultipartUploads, through the
// gocloud bucket's S3 client) and aborts those initiated before
// startedBefore; other stores have none.
func (b *BlobBucket) AbortMultipartUploads(ctx context.Context, prefix string, startedBefore time.Time) (int, error) {
	var client *s3.Client
	if b.s3Bucket == "" || !b.bucket.As(&client) {
		return 0, nil
	}
	aborted := 0
	input := &s3.ListMultipartUploadsInput{Bucket: &b.s3Bucket, Prefix: &prefix}
	for {
		page, err := client.ListMultipartUploads(ctx, input)
		if err != nil {
			return aborted, b.classify("list multipart uploads", prefix, err)
		}
		for _, upload := range page.Uploads {
			if upload.Key == nil || upload.UploadId == nil || upload.Initiated == nil || !upload.Initiated.Before(startedBefore) {
				continue
			}
			_, err := client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &b.s3Bucket, Key: upload.Key, UploadId: upload.UploadId})
			var missing interface{ ErrorCode() string }
			if err != nil && !(errors.As(err, &missing) && missing.ErrorCode() == "NoSuchUpload") {
				return aborted, b.classify("abort multipart upload", *upload.Key, err)
			}
			aborted++
		}
		if page.IsTruncated == nil || !*page.IsTruncated {
			return aborted, nil
		}
		input.KeyMarker, input.UploadIdMarker = page.NextKeyMarker, page.NextUploadIdMarker
	}
}

// AbortMultipartUploads implements MultipartAborter for the bucket it
// wraps (nothing when that one has no multipart uploads).
func (m *MetricsBucket) AbortMultipartUploads(ctx context.Context, prefix string, startedBefore time.Time) (int, error) {
	aborter, ok := m.bucket.(MultipartAborter)
	if !ok {
		return 0, nil
	}
	n, err := aborter.AbortMultipartUploads(ctx, prefix, startedBefore)
	return n, m.failed(err)
}
