package tiering

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"
)

// SizedReaderAt is an upload body read in place: a sealed segment's file
// (io.SectionReader) or bytes in memory (bytes.Reader). An S3 bucket
// sends each part as a section of it, without copying the part into a
// buffer first.
type SizedReaderAt interface {
	io.ReaderAt
	Size() int64
}

// s3PartConcurrency is how many parts of one object are sent at once (the
// AWS transfer manager's default).
const s3PartConcurrency = 5

// s3AbortTimeout bounds the abort of a failed multipart upload, which runs
// even when the upload's context was cancelled.
const s3AbortTimeout = 30 * time.Second

// s3Uploader uploads objects to S3 from an io.ReaderAt: one PutObject up
// to partSize bytes, else a multipart upload whose parts are sections of
// the body, s3PartConcurrency at a time. Bodies are seekable, so the SDK
// computes each request's CRC-32 by reading the section (no copy), sends
// it with UNSIGNED-PAYLOAD (unsignedUploads), and retries a request by
// seeking back. A multipart upload that fails is aborted; one left by a
// crash is aborted by the orphan sweep (AbortMultipartUploads).
//
// The AWS transfer manager (what gocloud's s3blob writer uses) would read
// each part into a part-sized buffer, and the first part into a growing
// one: fresh memory per segment, which on a small VM costs as much CPU as
// the upload itself.
type s3Uploader struct {
	client *s3.Client
	bucket string
	// checksum is the algorithm of the checksum every request carries;
	// "" when the client computes checksums only where required
	// (AWS_REQUEST_CHECKSUM_CALCULATION=when_required).
	checksum s3types.ChecksumAlgorithm
	// trailer: the CRC-32 of object and part uploads goes in a trailer
	// computed while the body is sent (crc32Trailer), over plain HTTP
	// too, where the SDK would read each body once more first to put it
	// in a header. Set with checksum.
	trailer bool
}

func newS3Uploader(client *s3.Client, bucket string, calculation aws.RequestChecksumCalculation) *s3Uploader {
	u := &s3Uploader{client: client, bucket: bucket}
	if calculation != aws.RequestChecksumCalculationWhenRequired {
		u.checksum, u.trailer = s3types.ChecksumAlgorithmCrc32, true
	}
	return u
}

const uploadContentType = "application/octet-stream"

func (u *s3Uploader) upload(ctx context.Context, key string, body SizedReaderAt, partSize int64) error {
	size := body.Size()
	if size <= partSize {
		input := &s3.PutObjectInput{
			Bucket: &u.bucket, Key: &key, Body: io.NewSectionReader(body, 0, size), ContentLength: aws.Int64(size),
			ContentType: aws.String(uploadContentType), ChecksumAlgorithm: u.checksum,
		}
		var options []func(*s3.Options)
		if u.trailer {
			input.ChecksumAlgorithm, options = "", []func(*s3.Options){(&crc32Trailer{}).option}
		}
		_, err := u.client.PutObject(ctx, input, options...)
		return err
	}
	created, err := u.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket: &u.bucket, Key: &key, ContentType: aws.String(uploadContentType), ChecksumAlgorithm: u.checksum,
	})
	if err != nil {
		return err
	}
	parts, err := u.uploadParts(ctx, key, created.UploadId, body, size, partSize)
	if err == nil {
		_, err = u.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
			Bucket: &u.bucket, Key: &key, UploadId: created.UploadId,
			MultipartUpload: &s3types.CompletedMultipartUpload{Parts: parts},
		})
	}
	if err != nil {
		abortCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s3AbortTimeout)
		defer cancel()
		_, abortErr := u.client.AbortMultipartUpload(abortCtx, &s3.AbortMultipartUploadInput{Bucket: &u.bucket, Key: &key, UploadId: created.UploadId})
		var missing interface{ ErrorCode() string }
		if abortErr != nil && !(errors.As(abortErr, &missing) && missing.ErrorCode() == "NoSuchUpload") {
			return fmt.Errorf("%w (aborting the multipart upload failed too, the orphan sweep retries: %v)", err, abortErr)
		}
	}
	return err
}

// uploadParts sends the parts of body, partSize bytes each (the last one
// shorter), and returns them in part-number order for the completion.
func (u *s3Uploader) uploadParts(ctx context.Context, key string, uploadID *string, body io.ReaderAt, size, partSize int64) ([]s3types.CompletedPart, error) {
	parts := make([]s3types.CompletedPart, (size+partSize-1)/partSize)
	// A failed part stops the parts not yet started; those in flight are
	// not cancelled but finish, so that the abort that follows comes
	// after the server is done with every part (S3 may keep a part whose
	// upload was still in progress at the abort, and versitygw did: a
	// multipart upload left behind under load).
	var group errgroup.Group
	group.SetLimit(s3PartConcurrency)
	var failed atomic.Bool
	for i := range parts {
		if failed.Load() || ctx.Err() != nil {
			break
		}
		number := int32(i + 1)
		offset := int64(i) * partSize
		length := min(partSize, size-offset)
		group.Go(func() (err error) {
			defer func() {
				if err != nil {
					failed.Store(true)
				}
			}()
			if failed.Load() {
				return nil // a part failed: send no more
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			input := &s3.UploadPartInput{
				Bucket: &u.bucket, Key: &key, UploadId: uploadID, PartNumber: &number,
				Body: io.NewSectionReader(body, offset, length), ContentLength: aws.Int64(length), ChecksumAlgorithm: u.checksum,
			}
			var options []func(*s3.Options)
			trailer := &crc32Trailer{}
			if u.trailer {
				input.ChecksumAlgorithm, options = "", []func(*s3.Options){trailer.option}
			}
			out, err := u.client.UploadPart(ctx, input, options...)
			if err != nil {
				return fmt.Errorf("part %d: %w", number, err)
			}
			sum := out.ChecksumCRC32
			if sum == nil && u.trailer {
				sum = trailer.sum.Load() // the server did not echo it
			}
			parts[i] = s3types.CompletedPart{PartNumber: &number, ETag: out.ETag, ChecksumCRC32: sum}
			return nil
		})
	}
	if err := group.Wait(); err != nil {
		return nil, err
	}
	return parts, ctx.Err() // cancelled before every part was started
}
