package tiering_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	cryptorand "crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/big"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/strata-log/strata/tiering"
	"github.com/strata-log/strata/tiering/tieringtest"
)

// uploadFile writes size random bytes to a file and returns it open.
func uploadFile(t *testing.T, size int) (*os.File, []byte) {
	t.Helper()
	data := make([]byte, size)
	random := rand.New(rand.NewPCG(uint64(size), 7))
	for i := 0; i+8 <= len(data); i += 8 {
		v := random.Uint64()
		for j := range 8 {
			data[i+j] = byte(v >> (8 * j))
		}
	}
	path := filepath.Join(t.TempDir(), "segment.log")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	file, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { file.Close() })
	return file, data
}

// allocatedBy returns the bytes of heap the calling goroutine's fn (and
// the goroutines it waits for) allocates.
func allocatedBy(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// A segment uploaded to S3 from its file is sent part by part from the
// file: the heap allocated per uploaded MiB is a small fraction of one
// part buffer (the transfer manager behind gocloud's writer allocated a
// part-sized buffer per part in flight and a growing one for the first
// part: over 1 MiB per MiB). The object reads back byte for byte, in 4
// parts.
func TestS3UploadFromFileAllocatesNoPartBuffers(t *testing.T) {
	server := s3Server(t)
	name := fmt.Sprintf("strata-test-%d-%d", os.Getpid(), bucketCounter.Add(1))
	rawURL := server.URL(name)
	if err := tiering.CreateBucket(context.Background(), rawURL); err != nil {
		t.Fatal(err)
	}
	bucket := openBucket(t, rawURL)
	const size, partSize = 32 << 20, 8 << 20
	file, data := uploadFile(t, size)
	ctx := context.Background()
	upload := func(key string) {
		if err := bucket.Upload(ctx, key, io.NewSectionReader(file, 0, size), partSize); err != nil {
			t.Fatalf("upload %s: %v", key, err)
		}
	}
	upload("warm-up") // the SDK's lazily built state
	allocated := allocatedBy(func() { upload("segment.log") })
	perMiB := allocated / (size >> 20)
	t.Logf("allocated %d bytes uploading %d MiB: %d bytes per MiB", allocated, size>>20, perMiB)
	if perMiB > 64<<10 {
		t.Fatalf("allocated %d bytes per uploaded MiB, want at most 64 KiB (one part buffer is %d bytes)", perMiB, partSize)
	}

	client := minioClient(t, server)
	object, err := client.GetObject(ctx, name, "segment.log", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer object.Close()
	got, err := io.ReadAll(object)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("object read back: %v, %d bytes, equal %v", err, len(got), bytes.Equal(got, data))
	}
	info, err := object.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(info.ETag, "-4") {
		t.Fatalf("object ETag %q, want a multipart upload of 4 parts", info.ETag)
	}
}

// A multipart upload whose part fails is aborted: no upload is left in
// the bucket, and the error is retriable.
func TestS3UploadPartFailureAbortsTheUpload(t *testing.T) {
	server := s3Server(t)
	target, err := url.Parse(server.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var aborts, parts int
	proxy := httputil.NewSingleHostReverseProxy(target)
	front := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		query := r.URL.Query()
		mu.Lock()
		switch {
		case r.Method == http.MethodDelete && query.Has("uploadId"):
			aborts++
		case r.Method == http.MethodPut && query.Get("partNumber") != "":
			parts++
			if query.Get("partNumber") == "2" {
				mu.Unlock()
				io.Copy(io.Discard, r.Body)
				w.WriteHeader(http.StatusForbidden)
				io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>injected</Message></Error>`)
				return
			}
		}
		mu.Unlock()
		proxy.ServeHTTP(w, r)
	})}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go front.Serve(listener)
	t.Cleanup(func() { front.Close() })

	name := fmt.Sprintf("strata-test-%d-%d", os.Getpid(), bucketCounter.Add(1))
	rawURL := strings.Replace(server.URL(name), server.Endpoint, "http://"+listener.Addr().String(), 1)
	if err := tiering.CreateBucket(context.Background(), rawURL); err != nil {
		t.Fatal(err)
	}
	bucket := openBucket(t, rawURL)
	const size, partSize = 20 << 20, 5 << 20
	file, _ := uploadFile(t, size)
	err = bucket.Upload(context.Background(), "segment.log", io.NewSectionReader(file, 0, size), partSize)
	if !errors.Is(err, tiering.ErrUnavailable) {
		t.Fatalf("upload with a failing part: %v, want ErrUnavailable", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if aborts != 1 || parts == 0 {
		t.Fatalf("%d aborts after %d part requests, want 1 abort", aborts, parts)
	}
	client := minioClient(t, server)
	for upload := range client.ListIncompleteUploads(context.Background(), name, "", true) {
		if upload.Err != nil {
			t.Fatal(upload.Err)
		}
		t.Fatalf("multipart upload %s of %s left in the bucket", upload.UploadID, upload.Key)
	}
}

// BenchmarkS3Upload uploads a 64 MiB segment file to versitygw in 8 MiB
// parts: "in-place" as the tier does (parts are sections of the file),
// "writer" through gocloud's writer (the reader hides io.ReaderAt: the
// transfer manager copies each part into a buffer, the path before). It
// reports this process's CPU time per MiB (versitygw's is not counted).
func BenchmarkS3Upload(b *testing.B) {
	server := s3Server(b)
	name := fmt.Sprintf("strata-test-%d-%d", os.Getpid(), bucketCounter.Add(1))
	rawURL := server.URL(name)
	if err := tiering.CreateBucket(context.Background(), rawURL); err != nil {
		b.Fatal(err)
	}
	bucket := openBucket(b, rawURL)
	const size, partSize = 64 << 20, 8 << 20
	path := filepath.Join(b.TempDir(), "segment.log")
	if err := os.WriteFile(path, bytes.Repeat([]byte("strata-segment!\n"), size/16), 0o600); err != nil {
		b.Fatal(err)
	}
	file, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer file.Close()
	for _, c := range []struct {
		name string
		body func() io.Reader
	}{
		{"in-place", func() io.Reader { return io.NewSectionReader(file, 0, size) }},
		{"writer", func() io.Reader { return struct{ io.Reader }{io.NewSectionReader(file, 0, size)} }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(size)
			b.ReportAllocs()
			start := cpuTime()
			for i := 0; b.Loop(); i++ {
				if err := bucket.Upload(context.Background(), fmt.Sprintf("segment-%d.log", i%2), c.body(), partSize); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((cpuTime()-start).Milliseconds())/float64(b.N*(size>>20)), "cpu-ms/MiB")
		})
	}
}

// cpuTime is this process's user + system CPU time.
func cpuTime() time.Duration {
	var usage syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &usage)
	return time.Duration(usage.Utime.Nano() + usage.Stime.Nano())
}

// Bucket requests reuse connections: 20 uploads (single PUTs and a
// multipart one) and 20 HEADs, one after the other, go over one
// connection (two allowed) counted by a TCP relay in front of the
// server. This needs the server's keep-alive (versitygw closes every
// connection after one request unless started with --keep-alive: every
// request then paid a TCP connection on both sides) and a client that
// drains each response.
func TestS3RequestsReuseConnections(t *testing.T) {
	server := s3Server(t)
	target := strings.TrimPrefix(server.Endpoint, "http://")
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { listener.Close() })
	var mu sync.Mutex
	connections := 0
	go func() {
		for {
			client, err := listener.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			connections++
			mu.Unlock()
			go func() {
				defer client.Close()
				upstream, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer upstream.Close()
				go io.Copy(upstream, client)
				io.Copy(client, upstream)
			}()
		}
	}()
	name := fmt.Sprintf("strata-test-%d-%d", os.Getpid(), bucketCounter.Add(1))
	rawURL := strings.Replace(server.URL(name), target, listener.Addr().String(), 1)
	if err := tiering.CreateBucket(context.Background(), rawURL); err != nil {
		t.Fatal(err)
	}
	bucket := openBucket(t, rawURL)
	ctx := context.Background()
	data := bytes.Repeat([]byte("strata-segment!\n"), (12<<20)/16)
	mu.Lock()
	connections = 0
	mu.Unlock()
	for i := range 20 {
		size := []int{100, 1 << 20, len(data)}[i%3] // the last: 2 parts of 8 MiB
		if err := bucket.Upload(ctx, fmt.Sprint("object-", i), bytes.NewReader(data[:size]), 8<<20); err != nil {
			t.Fatal(err)
		}
		if got, err := bucket.Size(ctx, fmt.Sprint("object-", i)); err != nil || got != int64(size) {
			t.Fatalf("size of object-%d: %d, %v; want %d", i, got, err, size)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if connections > 2 {
		t.Fatalf("%d connections for 20 uploads and 20 HEADs, want at most 2 (a connection per request: keep-alive off?)", connections)
	}
}

// frontS3 puts an HTTP handler in front of the test server and returns
// the URL of a new bucket through it; handle sees each request and may
// pass it on with proxy.
func frontS3(t *testing.T, handle func(w http.ResponseWriter, r *http.Request, proxy http.Handler)) (bucketURL, bucketName string) {
	t.Helper()
	server := s3Server(t)
	target, err := url.Parse(server.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	front := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handle(w, r, proxy) })}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go front.Serve(listener)
	t.Cleanup(func() { front.Close() })
	bucketName = fmt.Sprintf("strata-test-%d-%d", os.Getpid(), bucketCounter.Add(1))
	bucketURL = strings.Replace(server.URL(bucketName), server.Endpoint, "http://"+listener.Addr().String(), 1)
	if err := tiering.CreateBucket(context.Background(), bucketURL); err != nil {
		t.Fatal(err)
	}
	return bucketURL, bucketName
}

// countingReaderAt counts the bytes read from a SizedReaderAt (an upload
// body, which the bucket reads with ReadAt only).
type countingReaderAt struct {
	tiering.SizedReaderAt
	read atomic.Int64
}

func (c *countingReaderAt) Read([]byte) (int, error) {
	return 0, errors.New("an upload body read with Read, not ReadAt")
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.SizedReaderAt.ReadAt(p, off)
	c.read.Add(int64(n))
	return n, err
}

// Over plain HTTP an upload's CRC-32 goes in a trailer computed while the
// body is sent, so every byte is read from the file once (the SDK's
// header checksum read each body once more before sending it: 2 reads per
// byte). Each object and part PUT is aws-chunked with the CRC-32 trailer
// and no checksum header, and the objects read back byte for byte with
// the CRC-32 the server computed equal to the data's.
func TestS3UploadReadsEachByteOnce(t *testing.T) {
	var mu sync.Mutex
	var puts []http.Header
	rawURL, name := frontS3(t, func(w http.ResponseWriter, r *http.Request, proxy http.Handler) {
		if r.Method == http.MethodPut && strings.Count(strings.Trim(r.URL.Path, "/"), "/") > 0 { // objects and parts, not the bucket
			mu.Lock()
			puts = append(puts, r.Header.Clone())
			mu.Unlock()
		}
		proxy.ServeHTTP(w, r)
	})
	bucket := openBucket(t, rawURL)
	ctx := context.Background()
	client := minioClient(t, s3Server(t))
	for _, c := range []struct {
		key        string
		size, part int
	}{{"single.log", 3 << 20, 8 << 20}, {"multipart.log", 21 << 20, 8 << 20}} {
		file, data := uploadFile(t, c.size)
		info, err := file.Stat()
		if err != nil {
			t.Fatal(err)
		}
		body := &countingReaderAt{SizedReaderAt: io.NewSectionReader(file, 0, info.Size())}
		if err := bucket.Upload(ctx, c.key, body, c.part); err != nil {
			t.Fatalf("upload %s: %v", c.key, err)
		}
		if got := body.read.Load(); got != int64(c.size) {
			t.Errorf("upload %s read %d bytes of its %d-byte body: %.1f reads per byte, want 1", c.key, got, c.size, float64(got)/float64(c.size))
		}
		object, err := client.GetObject(ctx, name, c.key, minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(object)
		object.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s read back: %v, %d bytes, equal %v", c.key, err, len(got), bytes.Equal(got, data))
		}
	}
	single, err := client.StatObject(ctx, name, "single.log", minio.StatObjectOptions{Checksum: true})
	if err != nil {
		t.Fatal(err)
	}
	_, data := uploadFile(t, 3<<20)
	if want := base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, crc32.ChecksumIEEE(data))); single.ChecksumCRC32 != want {
		t.Errorf("single.log: the server's CRC-32 %q, want %q", single.ChecksumCRC32, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(puts) != 4 { // one PUT, three parts
		t.Fatalf("%d object and part PUTs, want 4", len(puts))
	}
	for i, h := range puts {
		if h.Get("X-Amz-Trailer") != "x-amz-checksum-crc32" || h.Get("X-Amz-Content-Sha256") != "STREAMING-UNSIGNED-PAYLOAD-TRAILER" ||
			h.Get("Content-Encoding") != "aws-chunked" || h.Get("X-Amz-Checksum-Crc32") != "" {
			t.Errorf("PUT %d: trailer %q, payload hash %q, encoding %q, checksum header %q; want the CRC-32 in an aws-chunked trailer", i,
				h.Get("X-Amz-Trailer"), h.Get("X-Amz-Content-Sha256"), h.Get("Content-Encoding"), h.Get("X-Amz-Checksum-Crc32"))
		}
	}
}

// flipByte flips the bits of one byte of a body, at position at.
type flipByte struct {
	io.ReadCloser
	at, read int64
}

func (f *flipByte) Read(p []byte) (int, error) {
	n, err := f.ReadCloser.Read(p)
	if f.at >= f.read && f.at < f.read+int64(n) {
		p[f.at-f.read] ^= 0xff
	}
	f.read += int64(n)
	return n, err
}

// An upload whose bytes change on the way (one byte of each object and
// part PUT's body flipped by a proxy) is refused by the bucket: the CRC-32
// it carries no longer matches, no object is left, and no multipart
// upload either.
func TestS3UploadCorruptedOnTheWayIsRefused(t *testing.T) {
	rawURL, name := frontS3(t, func(w http.ResponseWriter, r *http.Request, proxy http.Handler) {
		if r.Method == http.MethodPut && r.ContentLength > 4096 {
			r.Body = &flipByte{ReadCloser: r.Body, at: 4000}
		}
		proxy.ServeHTTP(w, r)
	})
	bucket := openBucket(t, rawURL)
	ctx := context.Background()
	for _, c := range []struct {
		key        string
		size, part int
	}{{"single.log", 1 << 20, 8 << 20}, {"multipart.log", 12 << 20, 8 << 20}} {
		file, _ := uploadFile(t, c.size)
		if err := bucket.Upload(ctx, c.key, io.NewSectionReader(file, 0, int64(c.size)), c.part); err == nil {
			t.Fatalf("upload of %s with a byte changed on the way succeeded", c.key)
		} else {
			t.Logf("%s: %v", c.key, err)
		}
		if _, err := bucket.Size(ctx, c.key); !errors.Is(err, tiering.ErrNotFound) {
			t.Fatalf("%s after the refused upload: %v, want ErrNotFound", c.key, err)
		}
	}
	client := minioClient(t, s3Server(t))
	for upload := range client.ListIncompleteUploads(ctx, name, "", true) {
		if upload.Err != nil {
			t.Fatal(upload.Err)
		}
		t.Fatalf("multipart upload %s of %s left in the bucket", upload.UploadID, upload.Key)
	}
}

// Over HTTPS too (the production setting) uploads carry their CRC-32 in a
// trailer the server accepts: empty, small, single-PUT and multipart
// objects read back byte for byte, each body read once.
func TestS3UploadsOverHTTPS(t *testing.T) {
	if _, err := tieringtest.VersityGWBinary(); err != nil {
		s3Server(t) // skips or fails as the other S3 tests do
	}
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), cryptorand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	template := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign}
	certificate, err := x509.CreateCertificate(cryptorand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyBytes, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certificate}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyBytes}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "s3"), 0o700); err != nil {
		t.Fatal(err)
	}
	server, err := tieringtest.StartS3ServerTLS(filepath.Join(dir, "s3"), certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	tieringtest.SetCredentialsEnv()
	t.Setenv("AWS_CA_BUNDLE", certFile)
	rawURL := server.URL("strata-tls")
	ctx := context.Background()
	if err := tiering.CreateBucket(ctx, rawURL); err != nil {
		t.Fatalf("create bucket: %v\n%s", err, server.Output())
	}
	bucket := openBucket(t, rawURL)
	for _, size := range []int{0, 100, 3 << 20, 21 << 20} {
		file, data := uploadFile(t, max(size, 1))
		data = data[:size]
		body := &countingReaderAt{SizedReaderAt: io.NewSectionReader(file, 0, int64(size))}
		key := fmt.Sprint("object-", size)
		if err := bucket.Upload(ctx, key, body, 8<<20); err != nil {
			t.Fatalf("upload of %d bytes over HTTPS: %v", size, err)
		}
		if got := body.read.Load(); got != int64(size) {
			t.Errorf("upload of %d bytes read %d from its body, want each byte once", size, got)
		}
		reader, err := bucket.Get(ctx, key, 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(reader)
		reader.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s read back: %v, %d bytes, equal %v", key, err, len(got), bytes.Equal(got, data))
		}
	}
}
