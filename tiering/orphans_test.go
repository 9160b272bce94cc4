package tiering_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/minio/minio-go/v7"

	"github.com/strata-log/strata/tiering"
)

// TestAbortMultipartUploads: on a real S3 server, the multipart upload a
// writer left behind (it died or was paused after uploading a part) is
// listed under the partition's prefix and aborted once it is older than
// the given time; a newer one, and one of another partition, stay. Stores
// without multipart uploads abort nothing.
func TestAbortMultipartUploads(t *testing.T) {
	server := s3Server(t)
	name := fmt.Sprintf("strata-test-%d-%d", os.Getpid(), bucketCounter.Add(1))
	url := server.URL(name)
	ctx := context.Background()
	if err := tiering.CreateBucket(ctx, url); err != nil {
		t.Fatal(err)
	}
	tier := newTier(t, tiering.Config{Bucket: openBucket(t, url)})
	core := minio.Core{Client: minioClient(t, server)}
	partitionPrefix := fmt.Sprintf("%s-%x/%d/", testPartition.Topic, testPartition.TopicID[:], testPartition.Partition)
	start := func(key string) string {
		t.Helper()
		id, err := core.NewMultipartUpload(ctx, name, key, minio.PutObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := core.PutObjectPart(ctx, name, key, id, 1, bytes.NewReader(bytes.Repeat([]byte("x"), 5<<20)), 5<<20, minio.PutObjectPartOptions{}); err != nil {
			t.Fatal(err)
		}
		return id
	}
	abandoned := partitionPrefix + "00000000000000000000-" + uuid.NewString() + ".log"
	start(abandoned)
	other := fmt.Sprintf("%s-%x/%d/00000000000000000000-%s.log", testPartition.Topic, testPartition.TopicID[:], testPartition.Partition+1, uuid.NewString())
	start(other)
	uploads := func() []string {
		t.Helper()
		result, err := core.ListMultipartUploads(ctx, name, "", "", "", "", 1000)
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, upload := range result.Uploads {
			keys = append(keys, upload.Key)
		}
		return keys
	}

	if n, err := tier.AbortMultipartUploads(ctx, testPartition, time.Now().Add(-time.Hour)); err != nil || n != 0 {
		t.Fatalf("uploads started within the last hour: %d aborted (%v), want 0", n, err)
	}
	if n, err := tier.AbortMultipartUploads(ctx, testPartition, time.Now().Add(time.Minute)); err != nil || n != 1 {
		t.Fatalf("aborted %d (%v), want the partition's one", n, err)
	}
	if left := uploads(); len(left) != 1 || left[0] != other || strings.HasPrefix(left[0], partitionPrefix) {
		t.Fatalf("multipart uploads left: %v, want only the other partition's %s", left, other)
	}

	mem := newTier(t, tiering.Config{Bucket: openBucket(t, "mem://")})
	if n, err := mem.AbortMultipartUploads(ctx, testPartition, time.Now()); err != nil || n != 0 {
		t.Fatalf("memory bucket: %d, %v", n, err)
	}
}
