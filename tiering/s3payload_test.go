package tiering_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/strata-log/strata/tiering"
	"github.com/strata-log/strata/tiering/tieringtest"
)

// Segment uploads to an S3 server over plain HTTP are not hashed for the
// signature (unsigned, as over HTTPS) but still carry a checksum the
// server checks, in a trailer; the objects read back byte for byte.
func TestUploadsOverHTTPAreUnsignedWithChecksum(t *testing.T) {
	server := s3Server(t)
	target, err := url.Parse(server.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	type put struct{ payloadHash, checksum, trailer string }
	var mu sync.Mutex
	var puts []put
	proxy := httputil.NewSingleHostReverseProxy(target)
	director := proxy.Director
	proxy.Director = func(r *http.Request) {
		if r.Method == http.MethodPut && r.ContentLength != 0 {
			checksum := ""
			for name, values := range r.Header {
				if strings.HasPrefix(strings.ToLower(name), "x-amz-checksum-") {
					checksum = name + ": " + values[0]
				}
			}
			mu.Lock()
			puts = append(puts, put{payloadHash: r.Header.Get("X-Amz-Content-Sha256"), checksum: checksum, trailer: r.Header.Get("X-Amz-Trailer")})
			mu.Unlock()
		}
		director(r)
	}
	front := &http.Server{Handler: proxy}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go front.Serve(listener)
	t.Cleanup(func() { front.Close() })

	name := fmt.Sprintf("strata-test-%d-%d", os.Getpid(), bucketCounter.Add(1))
	rawURL := fmt.Sprintf("s3://%s?endpoint=http://%s&region=%s&use_path_style=true", name, listener.Addr(), tieringtest.S3Region)
	if err := tiering.CreateBucket(context.Background(), rawURL); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	bucket := openBucket(t, rawURL)
	local := buildLocalLog(t, 250, 512<<10, 0, 7)
	tier := newTier(t, tiering.Config{Bucket: bucket, UploadPartBytes: 5 << 20})
	segments := local.uploadAll(t, tier)
	// Parts of a multipart upload too.
	file, _ := uploadFile(t, 11<<20)
	if err := bucket.Upload(context.Background(), "multipart.log", io.NewSectionReader(file, 0, 11<<20), 5<<20); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(puts) < len(segments)+3 {
		t.Fatalf("%d uploads went through the proxy, want at least %d", len(puts), len(segments)+3)
	}
	if len(puts) == 0 {
		t.Fatal("no upload went through the proxy")
	}
	for _, p := range puts {
		// The CRC-32 in a trailer (TestS3UploadReadsEachByteOnce).
		if p.payloadHash != "STREAMING-UNSIGNED-PAYLOAD-TRAILER" {
			t.Fatalf("upload sent with x-amz-content-sha256 %q, want STREAMING-UNSIGNED-PAYLOAD-TRAILER", p.payloadHash)
		}
		if p.trailer != "x-amz-checksum-crc32" || p.checksum != "" {
			t.Fatalf("upload sent with checksum header %q and trailer %q, want a CRC-32 trailer the server checks", p.checksum, p.trailer)
		}
	}
	reader := newTier(t, tiering.Config{Bucket: bucket})
	for i, remote := range segments {
		got, err := readBytes(reader, context.Background(), testPartition, remote, remote.BaseOffset, 64<<10)
		if want := local.localRead(t, local.sealed[i], remote.BaseOffset, 64<<10); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("segment %d read back: %v, %s", i, err, describeDiff(got, want))
		}
	}
}
