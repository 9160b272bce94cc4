package tiering

import (
	"context"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/smithy-go/middleware"
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
