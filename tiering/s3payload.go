package tiering

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"strconv"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// unsignedPayload is SigV4's payload hash for a body left out of the
// signature.
const unsignedPayload = "UNSIGNED-PAYLOAD"

// unsignedUploads makes the S3 client send object and part uploads with
// UNSIGNED-PAYLOAD over plain HTTP too, as the SDK does over HTTPS: over
// HTTP it would otherwise read every body once more, before sending it, to
// hash it with SHA-256 for the signature (the costliest pass of an upload
// on a 2-core broker). The body's integrity is still checked by the
// server: the SDK sends its CRC-32 (x-amz-checksum-crc32, computed in the
// same pass as before, without the SHA-256) unless checksums were turned
// off (AWS_REQUEST_CHECKSUM_CALCULATION=when_required). The headers and
// the rest of the request stay signed.
func unsignedUploads(stack *middleware.Stack) error {
	return stack.Finalize.Add(middleware.FinalizeMiddlewareFunc("StrataUnsignedUploadPayload",
		func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			switch awsmiddleware.GetOperationName(ctx) {
			case "PutObject", "UploadPart":
				if v4.GetPayloadHash(ctx) == "" {
					ctx = v4.SetPayloadHash(ctx, unsignedPayload)
				}
			}
			return next.HandleFinalize(ctx, in)
		}), middleware.Before)
}

// The CRC-32 of an upload goes in a trailer, computed while the body is
// sent. Over plain HTTP the SDK puts it in a header instead (it sends
// trailers over HTTPS only), which needs the whole body read once before
// it is sent: a second pass over every uploaded byte. The body is
// aws-chunked (one chunk, the SDK's layout over HTTPS):
//
//	<size in hex>\r\n
//	<body>\r\n
//	0\r\n
//	x-amz-checksum-crc32:<base64 of the big-endian CRC-32>\r\n
//	\r\n
//
// with Content-Encoding: aws-chunked, X-Amz-Decoded-Content-Length: size,
// X-Amz-Trailer: x-amz-checksum-crc32 and the payload hash
// STREAMING-UNSIGNED-PAYLOAD-TRAILER. The server computes the CRC-32 of
// what it received and refuses the object when the trailer differs, as it
// does with the header. It is what the SDK sends to S3 over HTTPS, and
// versitygw accepts it over HTTP (the tests); a server without aws-chunked
// trailers would refuse the uploads.
const (
	streamingUnsignedPayloadTrailer = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
	crc32TrailerName                = "x-amz-checksum-crc32"
)

// crc32Trailer is the option of one PutObject or UploadPart call that
// sends its body's CRC-32 as a trailer (see above) instead of the SDK's
// header; sum holds the CRC-32 once the body was sent. Over HTTPS the SDK
// would send the same trailer itself; one way for both keeps it simple.
// The body must be seekable (every upload body is a section of a file or
// of memory): a retry sends it again from its start.
type crc32Trailer struct {
	sum atomic.Pointer[string] // base64, as S3 prints it
}

func (c *crc32Trailer) option(o *s3.Options) {
	// The SDK would add its own checksum to every upload; the trailer
	// replaces it.
	o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
	o.APIOptions = append(o.APIOptions, func(stack *middleware.Stack) error {
		// After the retry middleware: each attempt encodes the body
		// afresh, after the SDK rewound it.
		return stack.Finalize.Insert(middleware.FinalizeMiddlewareFunc("StrataCRC32Trailer", c.handle), "Retry", middleware.After)
	})
}

func (c *crc32Trailer) handle(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
	req, ok := in.Request.(*smithyhttp.Request)
	if !ok {
		return middleware.FinalizeOutput{}, middleware.Metadata{}, fmt.Errorf("tiering: CRC-32 trailer: unknown request type %T", in.Request)
	}
	stream, length := req.GetStream(), req.ContentLength
	if stream == nil || length <= 0 {
		// An empty body: its checksum in the header, as the SDK does.
		sum := crc32Base64(0)
		c.sum.Store(&sum)
		req.Header.Set(crc32TrailerName, sum)
		return next.HandleFinalize(ctx, in)
	}
	encoded := newCRC32Chunked(stream, length, func(sum string) { c.sum.Store(&sum) })
	req, err := req.SetStream(encoded)
	if err != nil {
		return middleware.FinalizeOutput{}, middleware.Metadata{}, fmt.Errorf("tiering: CRC-32 trailer: %w", err)
	}
	req.ContentLength = encoded.length
	req.Header.Set("Content-Encoding", "aws-chunked")
	req.Header.Set("X-Amz-Decoded-Content-Length", strconv.FormatInt(length, 10))
	req.Header.Set("X-Amz-Trailer", crc32TrailerName)
	req.Header.Set("X-Amz-Sdk-Checksum-Algorithm", "CRC32") // as the SDK sends with its trailer
	in.Request = req
	return next.HandleFinalize(v4.SetPayloadHash(ctx, streamingUnsignedPayloadTrailer), in)
}

func crc32Base64(sum uint32) string {
	return base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, sum))
}

// crc32Chunked is a body of length bytes aws-chunked with its CRC-32 in a
// trailer (see above), computed as the body is read.
type crc32Chunked struct {
	body   io.Reader
	left   int64 // of the body
	crc    uint32
	head   []byte // what is left to read of the chunk header; then of the end
	ended  bool
	done   func(sum string)
	length int64 // encoded
}

func newCRC32Chunked(body io.Reader, length int64, done func(sum string)) *crc32Chunked {
	head := []byte(strconv.FormatInt(length, 16) + "\r\n")
	// "\r\n0\r\n" + name + ":" + 8 base64 characters + "\r\n\r\n"
	tail := int64(2 + 3 + len(crc32TrailerName) + 1 + 8 + 4)
	return &crc32Chunked{body: body, left: length, head: head, done: done, length: int64(len(head)) + length + tail}
}

func (c *crc32Chunked) Read(p []byte) (int, error) {
	if len(c.head) > 0 {
		n := copy(p, c.head)
		c.head = c.head[n:]
		return n, nil
	}
	if c.left > 0 {
		n, err := c.body.Read(p[:min(int64(len(p)), c.left)])
		c.crc = crc32.Update(c.crc, crc32.IEEETable, p[:n])
		c.left -= int64(n)
		switch {
		case err == io.EOF && c.left > 0:
			return n, io.ErrUnexpectedEOF
		case err != nil && err != io.EOF:
			return n, err
		}
		return n, nil
	}
	if !c.ended {
		c.ended = true
		sum := crc32Base64(c.crc)
		c.done(sum)
		c.head = []byte("\r\n0\r\n" + crc32TrailerName + ":" + sum + "\r\n\r\n")
		return c.Read(p)
	}
	return 0, io.EOF
}
