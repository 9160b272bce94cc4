package tiering

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	gcaws "gocloud.dev/aws"
	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	_ "gocloud.dev/blob/memblob" // mem:// URLs
	"gocloud.dev/blob/s3blob"
	"gocloud.dev/gcerrors"

	"github.com/strata-log/strata/internal/fsperm"
)

// BucketReader is the read side of an object store, as the remote reader and
// the scrub need it. Implementations classify errors: a missing object is
// reported as an error wrapping ErrNotFound, a store that cannot be reached
// or answers with a failure as one wrapping ErrUnavailable, and a cancelled
// context as the context's error.
type BucketReader interface {
	// Get returns length bytes of key starting at offset; length < 0 reads
	// to the end of the object. The caller closes the reader.
	Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)
	// Size returns the object's size in bytes.
	Size(ctx context.Context, key string) (int64, error)
	// Iter calls fn for every object whose key starts with prefix, in
	// lexical key order; an error from fn stops the iteration and is
	// returned.
	Iter(ctx context.Context, prefix string, fn func(key string, size int64) error) error
}

// Bucket is an object store the tier reads and writes. Error classification
// is the same as BucketReader's; Delete of a missing object succeeds.
type Bucket interface {
	BucketReader
	// Upload streams r into key, replacing any object of that name. Large
	// objects go up in parts (multipart upload on S3), partSize bytes each.
	// An r that is a SizedReaderAt is uploaded whole, from its byte 0
	// (read with ReadAt, possibly more than once), so that parts need no
	// buffer.
	Upload(ctx context.Context, key string, r io.Reader, partSize int) error
	// Delete removes key; a missing key is not an error.
	Delete(ctx context.Context, key string) error
}

// Sentinel errors. Errors returned by this package wrap them; compare with
// errors.Is.
var (
	// ErrNotFound: the object (or segment, or manifest) does not exist.
	ErrNotFound = errors.New("tiering: not found")
	// ErrUnavailable: the object store could not be reached or failed the
	// request. Retriable: the data is fine, ask again later.
	ErrUnavailable = errors.New("tiering: object store unavailable")
	// ErrOffsetOutOfRange: the offset is not inside the remote segment.
	ErrOffsetOutOfRange = errors.New("tiering: offset out of range")
	// ErrInvalidConfig: a Config field is out of range.
	ErrInvalidConfig = errors.New("tiering: invalid config")
	// ErrClosed: the Tier was closed.
	ErrClosed = errors.New("tiering: closed")
	// ErrBusy: a read refused at once because Config.ReaderMaxPendingTasks
	// reads already wait for a reader thread. Retriable; it also has the
	// method RemoteReadQueueFull() bool, which callers that do not import
	// this package test for.
	ErrBusy error = busyError{}
)

type busyError struct{}

func (busyError) Error() string {
	return "tiering: remote reads at their limit (remote.log.reader.max.pending.tasks waiting for remote.log.reader.threads); ask again"
}

// RemoteReadQueueFull marks ErrBusy.
func (busyError) RemoteReadQueueFull() bool { return true }

// CorruptError reports bytes from the store that do not have the format
// this package writes (a record batch failing its CRC, a manifest with a
// bad checksum, an index pointing outside its segment). Never retriable by
// waiting: the object is wrong. Classify with IsCorrupt.
type CorruptError struct {
	Key    string // object holding the bad bytes
	Offset int64  // byte offset in the object, -1 when not meaningful
	Reason string
}

func (e *CorruptError) Error() string {
	if e.Offset >= 0 {
		return fmt.Sprintf("tiering: corrupt object %s at byte %d: %s", e.Key, e.Offset, e.Reason)
	}
	return fmt.Sprintf("tiering: corrupt object %s: %s", e.Key, e.Reason)
}

// IsCorrupt reports whether err (or an error it wraps) is a *CorruptError.
func IsCorrupt(err error) bool {
	var corrupt *CorruptError
	return errors.As(err, &corrupt)
}

// IsRetriable reports whether err says the store is unavailable (or the
// readers busy), so the same request may succeed later.
func IsRetriable(err error) bool { return errors.Is(err, ErrUnavailable) || errors.Is(err, ErrBusy) }

func corruptf(key string, offset int64, format string, args ...any) error {
	return &CorruptError{Key: key, Offset: offset, Reason: fmt.Sprintf(format, args...)}
}

// BlobBucket is a Bucket on a gocloud.dev/blob bucket (s3blob, fileblob,
// memblob). Safe for concurrent use.
type BlobBucket struct {
	bucket *blob.Bucket
	url    string
	redact redactor
	// files makes a file:// bucket's writes durable; nil for other
	// schemes.
	files *fileSyncer
	// s3Bucket is the bucket name of an s3:// bucket, "" for other
	// schemes (multipart uploads are S3's).
	s3Bucket string
	// s3 uploads bodies read in place (SizedReaderAt) to an s3://
	// bucket; nil for other schemes.
	s3 *s3Uploader
}

var _ Bucket = (*BlobBucket)(nil)

// OpenBucket opens the object store named by rawURL:
//
//	s3://bucket?endpoint=http://host:port&region=us-east-1&use_path_style=true
//	file:///dir            (file:///dir?create_dir=true creates dir)
//	mem://                 (in memory, for tests)
//
// S3 credentials come from the standard AWS chain: the shared credentials
// file (AWS_SHARED_CREDENTIALS_FILE, default ~/.aws/credentials; the way
// SECURITY.md recommends), AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY,
// profiles, instance roles. Errors never show the URL's query (the
// endpoint, a profile), the endpoint's host or any user info: they reach
// logs and clients (see redactor). The caller closes the bucket.
func OpenBucket(ctx context.Context, rawURL string) (*BlobBucket, error) {
	var bucket *blob.Bucket
	var uploader *s3Uploader
	redact := newRedactor(rawURL)
	u, err := url.Parse(rawURL)
	if err == nil && u.Scheme == "s3" {
		// Opened here rather than by s3blob's URL opener so that the
		// client is the one CreateBucket uses, without the SDK's log line
		// for every ranged GET that carries no checksum.
		var client *s3.Client
		var config aws.Config
		if client, config, err = s3ClientFromURL(ctx, u); err == nil {
			bucket, err = s3blob.OpenBucket(ctx, client, u.Host, &s3blob.Options{RequestChecksumCalculation: config.RequestChecksumCalculation})
			uploader = newS3Uploader(client, u.Host, config.RequestChecksumCalculation)
		}
	} else if err == nil {
		bucket, err = blob.OpenBucket(ctx, fileBucketURL(u).String())
	}
	if err != nil {
		return nil, fmt.Errorf("tiering: open bucket %s: %w", RedactURL(rawURL), redact.error(err))
	}
	b := &BlobBucket{bucket: bucket, url: RedactURL(rawURL), redact: redact}
	switch u.Scheme {
	case fileblob.Scheme:
		b.files = newFileSyncer(fileBucketDir(u))
	case "s3":
		b.s3Bucket, b.s3 = u.Host, uploader
	}
	return b, nil
}

// fileBucketURL adjusts the URL of a file:// bucket, unless it sets these
// parameters itself:
//   - dir_file_mode: directories are created 0700 (fileblob's default is
//     0777 less the umask): the bucket holds every tiered record;
//   - no_tmp_dir: an object is written to a temporary file next to its
//     final name and renamed (fileblob's default writes in os.TempDir,
//     whose rename fails when the bucket is on another file system, such
//     as the network mount --object-store-shared declares);
//   - metadata=skip: no ".attrs" sidecar file per object, which fileblob
//     writes in place, not atomically, so a power loss could leave a torn
//     one that fails every read of the object (sidecars written before
//     are still read and deleted).
func fileBucketURL(u *url.URL) *url.URL {
	if u.Scheme != fileblob.Scheme {
		return u
	}
	query := u.Query()
	if !query.Has("dir_file_mode") {
		query.Set("dir_file_mode", fmt.Sprintf("%#o", fsperm.Dir))
	}
	if !query.Has("no_tmp_dir") {
		query.Set("no_tmp_dir", "true")
	}
	if !query.Has("metadata") {
		query.Set("metadata", string(fileblob.MetadataDontWrite))
	}
	adjusted := *u
	adjusted.RawQuery = query.Encode()
	return &adjusted
}

// fileBucketDir is the directory of a file:// URL, as fileblob reads it
// (host "." for a relative path).
func fileBucketDir(u *url.URL) string {
	dir := u.Path
	if u.Host == "." {
		dir = strings.TrimPrefix(dir, "/")
	}
	return filepath.Clean(filepath.FromSlash(dir))
}

// NewBlobBucket wraps an already opened gocloud bucket; closing the
// BlobBucket closes it.
func NewBlobBucket(bucket *blob.Bucket) *BlobBucket {
	return &BlobBucket{bucket: bucket, url: "blob"}
}

// CreateBucket creates the bucket or directory named by rawURL (see
// OpenBucket) if it does not exist yet: CreateBucket on S3 (an existing
// bucket owned by the caller is fine), a directory tree for file://, nothing
// for mem://.
func CreateBucket(ctx context.Context, rawURL string) (err error) {
	redact := newRedactor(rawURL)
	defer func() { err = redact.error(err) }()
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("tiering: create bucket: %w", err)
	}
	switch u.Scheme {
	case "mem":
		return nil
	case fileblob.Scheme:
		if err := os.MkdirAll(filepath.FromSlash(u.Path), fsperm.Dir); err != nil {
			return fmt.Errorf("tiering: create bucket %s: %w", RedactURL(rawURL), err)
		}
		return nil
	case "s3":
		client, _, err := s3ClientFromURL(ctx, u)
		if err != nil {
			return fmt.Errorf("tiering: create bucket %s: %w", RedactURL(rawURL), err)
		}
		_, err = client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &u.Host})
		var owned *s3types.BucketAlreadyOwnedByYou
		if err != nil && !errors.As(err, &owned) {
			return fmt.Errorf("tiering: create bucket %s: %w", RedactURL(rawURL), err)
		}
		return nil
	default:
		return fmt.Errorf("tiering: create bucket %s: unsupported scheme %q", RedactURL(rawURL), u.Scheme)
	}
}

// s3ClientFromURL builds the S3 client for an s3:// URL with s3blob's URL
// parameters (endpoint, region, use_path_style, disable_https, profile,
// anonymous, …; not accelerate, ssetype, kmskeyid).
func s3ClientFromURL(ctx context.Context, u *url.URL) (*s3.Client, aws.Config, error) {
	query := u.Query()
	options := []func(*s3.Options){func(o *s3.Options) {
		o.DisableLogOutputChecksumValidationSkipped = true
		// Reads check every batch they return (CRC-32C, framing, offsets),
		// so the SDK's own CRC-32 of each GET body would be a second pass
		// over every byte: validate only where an API requires it.
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		o.APIOptions = append(o.APIOptions, unsignedUploads)
	}}
	for _, key := range []string{"use_path_style", "s3ForcePathStyle"} {
		if value := query.Get(key); value != "" {
			query.Del(key)
			pathStyle, err := strconv.ParseBool(value)
			if err != nil {
				return nil, aws.Config{}, fmt.Errorf("invalid %s: %w", key, err)
			}
			options = append(options, func(o *s3.Options) { o.UsePathStyle = pathStyle })
		}
	}
	if value := query.Get("disable_https"); value != "" {
		query.Del("disable_https")
		disable, err := strconv.ParseBool(value)
		if err != nil {
			return nil, aws.Config{}, fmt.Errorf("invalid disable_https: %w", err)
		}
		options = append(options, func(o *s3.Options) { o.EndpointOptions.DisableHTTPS = disable })
	}
	for _, key := range []string{"accelerate", "ssetype", "kmskeyid"} {
		if query.Has(key) {
			return nil, aws.Config{}, fmt.Errorf("URL parameter %s is not supported", key)
		}
	}
	config, err := gcaws.V2ConfigFromURLParams(ctx, query)
	if err != nil {
		return nil, aws.Config{}, err
	}
	return s3.NewFromConfig(config, options...), config, nil
}

// RedactURL drops the query, which may name endpoints or profiles that do
// not belong in error messages or logs, and any user info
// (s3://user:password@bucket): what is left is the scheme, the bucket and
// the path.
func RedactURL(rawURL string) string {
	if i := strings.IndexByte(rawURL, '?'); i >= 0 {
		rawURL = rawURL[:i]
	}
	if scheme, rest, found := strings.Cut(rawURL, "://"); found {
		host, path, _ := strings.Cut(rest, "/")
		if at := strings.LastIndexByte(host, '@'); at >= 0 {
			rest = host[at+1:]
			if path != "" || strings.HasSuffix(rawURL, "/") {
				rest += "/" + path
			}
			rawURL = scheme + "://" + rest
		}
	}
	return rawURL
}

// redactor takes out of error text what an object-store URL must not show
// there: the object store's errors (the AWS SDK's, net/http's) name the
// endpoint's URL and host, and a configuration error may echo a query
// parameter (a profile name) or user info. Such text reaches the log and,
// through the admin API and Kafka error messages, clients. The bucket name
// and object keys stay: they are what an operator needs to act.
type redactor struct {
	// replacements are {old, new} pairs, longest old first; each old is
	// replaced only where it stands as a whole name (not inside a longer
	// host name or object key).
	replacements [][2]string
}

// endpointPlaceholder replaces the endpoint in error text.
const endpointPlaceholder = "<endpoint>"

func newRedactor(rawURL string) redactor {
	var r redactor
	add := func(secret, placeholder string) {
		if secret != "" {
			r.replacements = append(r.replacements, [2]string{secret, placeholder})
		}
	}
	addUserInfo := func(user *url.Userinfo) {
		if user == nil {
			return
		}
		add(user.String(), "<redacted>")
		add(user.Username(), "<redacted>")
		if password, ok := user.Password(); ok {
			add(password, "<redacted>")
		}
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		// Unparsable: nothing in it can be told apart, so all of it goes.
		add(rawURL, RedactURL(rawURL))
		if i := strings.IndexByte(rawURL, '?'); i >= 0 {
			add(rawURL[i+1:], "<redacted>")
		}
		return r.sorted()
	}
	add(rawURL, RedactURL(rawURL))
	add(u.RawQuery, "<redacted>")
	addUserInfo(u.User)
	for key, values := range u.Query() {
		for _, value := range values {
			if key == "endpoint" {
				add(value, endpointPlaceholder)
				if endpoint, err := url.Parse(value); err == nil {
					addUserInfo(endpoint.User)
					add(endpoint.Host, endpointPlaceholder)
					add(endpoint.Hostname(), endpointPlaceholder)
				}
				continue
			}
			// Switches and numbers say nothing, and the region is
			// needed to make sense of an error; the rest (a profile,
			// a parameter this code does not know) may be private.
			if _, err := strconv.ParseFloat(value, 64); err == nil || key == "region" {
				continue
			}
			if _, err := strconv.ParseBool(value); err == nil {
				continue
			}
			add(value, "<redacted>")
		}
	}
	return r.sorted()
}

// sorted orders the replacements longest first, so that a URL is replaced
// whole before its host is.
func (r redactor) sorted() redactor {
	slices.SortStableFunc(r.replacements, func(a, b [2]string) int { return len(b[0]) - len(a[0]) })
	return r
}

// text returns s with every secret replaced.
func (r redactor) text(s string) string {
	for _, replacement := range r.replacements {
		s = replaceWholeNames(s, replacement[0], replacement[1])
	}
	return s
}

// error returns err with redacted text; errors.Is and errors.As still see
// everything it wraps (ErrNotFound, ErrUnavailable, the SDK's types).
func (r redactor) error(err error) error {
	if err == nil || len(r.replacements) == 0 {
		return err
	}
	text := r.text(err.Error())
	if text == err.Error() {
		return err
	}
	return &redactedError{text: text, err: err}
}

type redactedError struct {
	text string
	err  error
}

func (e *redactedError) Error() string { return e.text }
func (e *redactedError) Unwrap() error { return e.err }

// replaceWholeNames replaces old in s where the characters on both sides
// cannot continue a host name or key (letters, digits, '-', '.', '_').
func replaceWholeNames(s, old, replacement string) string {
	var out strings.Builder
	for {
		i := strings.Index(s, old)
		if i < 0 {
			out.WriteString(s)
			return out.String()
		}
		end := i + len(old)
		whole := (i == 0 || !isNameByte(s[i-1])) && (end == len(s) || !isNameByte(s[end]))
		out.WriteString(s[:i])
		if whole {
			out.WriteString(replacement)
		} else {
			out.WriteString(old)
		}
		s = s[end:]
	}
}

func isNameByte(c byte) bool {
	return c == '-' || c == '.' || c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// Close closes the underlying gocloud bucket.
func (b *BlobBucket) Close() error { return b.bucket.Close() }

// classify maps a gocloud error to this package's sentinels.
func (b *BlobBucket) classify(op, key string, err error) error {
	if err == nil {
		return nil
	}
	code := gcerrors.Code(err)
	err = b.redact.error(err)
	switch code {
	case gcerrors.NotFound:
		return fmt.Errorf("%s %s/%s: %w: %w", op, b.url, key, ErrNotFound, err)
	case gcerrors.Canceled:
		if errors.Is(err, context.Canceled) {
			return fmt.Errorf("%s %s/%s: %w", op, b.url, key, err)
		}
	}
	return fmt.Errorf("%s %s/%s: %w: %w", op, b.url, key, ErrUnavailable, err)
}

// Get implements BucketReader.
func (b *BlobBucket) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	reader, err := b.bucket.NewRangeReader(ctx, key, offset, length, nil)
	if err != nil {
		return nil, b.classify("get", key, err)
	}
	return &classifiedReader{reader: reader, bucket: b, key: key}, nil
}

// classifiedReader classifies errors met while streaming a body.
type classifiedReader struct {
	reader *blob.Reader
	bucket *BlobBucket
	key    string
}

func (r *classifiedReader) Read(p []byte) (int, error) {
	n, err := r.reader.Read(p)
	if err != nil && err != io.EOF {
		err = r.bucket.classify("read", r.key, err)
	}
	return n, err
}

func (r *classifiedReader) Close() error { return r.reader.Close() }

// Size implements BucketReader.
func (b *BlobBucket) Size(ctx context.Context, key string) (int64, error) {
	attributes, err := b.bucket.Attributes(ctx, key)
	if err != nil {
		return 0, b.classify("stat", key, err)
	}
	return attributes.Size, nil
}

// Iter implements BucketReader.
func (b *BlobBucket) Iter(ctx context.Context, prefix string, fn func(key string, size int64) error) error {
	iterator := b.bucket.List(&blob.ListOptions{Prefix: prefix})
	for {
		object, err := iterator.Next(ctx)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return b.classify("list", prefix, err)
		}
		if object.IsDir {
			continue
		}
		if err := fn(object.Key, object.Size); err != nil {
			return err
		}
	}
}

// Upload implements Bucket. On S3, a body that is a SizedReaderAt (the
// tier's uploads all are) is sent in place, part by part (s3Uploader);
// other readers go through gocloud's writer, which buffers each part. On
// a file:// bucket the object is durable when Upload returns: its file
// and the directories naming it are fsynced (fileSyncer), so the manifest
// never commits an object a power loss takes back.
func (b *BlobBucket) Upload(ctx context.Context, key string, r io.Reader, partSize int) error {
	if body, ok := r.(SizedReaderAt); ok && b.s3 != nil {
		return b.classify("put", key, b.s3.upload(ctx, key, body, int64(partSize)))
	}
	options := &blob.WriterOptions{ContentType: uploadContentType, BufferSize: partSize}
	if err := b.bucket.Upload(ctx, key, r, options); err != nil {
		return b.classify("put", key, err)
	}
	if b.files != nil {
		if err := b.files.written(key); err != nil {
			return fmt.Errorf("put %s/%s: %w: %w", b.url, key, ErrUnavailable, err)
		}
	}
	return nil
}

// Delete implements Bucket. On a file:// bucket the deletion is durable
// when Delete returns (its directory is fsynced).
func (b *BlobBucket) Delete(ctx context.Context, key string) error {
	err := b.bucket.Delete(ctx, key)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return nil
	}
	if err == nil && b.files != nil {
		if err := b.files.deleted(key); err != nil {
			return fmt.Errorf("delete %s/%s: %w: %w", b.url, key, ErrUnavailable, err)
		}
	}
	return b.classify("delete", key, err)
}

// fileSyncer makes writes to a file:// bucket durable: fileblob writes an
// object to a temporary file and renames it, without any fsync. After an
// upload the object's file is fsynced, then its directory (the rename),
// then each directory above it up to the bucket's root that this process
// has not yet made durable (fileblob creates a partition's directories on
// its first object). After a delete the directory is fsynced.
type fileSyncer struct {
	root string
	// sync fsyncs a file or directory; replaced in tests to see the
	// calls.
	sync func(path string) error
	// durable holds directories whose own entry, in their parent, is
	// known to be synced.
	durable sync.Map
}

func newFileSyncer(root string) *fileSyncer {
	return &fileSyncer{root: root, sync: fsyncPath}
}

// path is the file of key: fileblob's name for it, since the keys this
// package writes need none of fileblob's escapes.
func (f *fileSyncer) path(key string) string {
	return filepath.Join(f.root, filepath.FromSlash(key))
}

func (f *fileSyncer) written(key string) error {
	path := f.path(key)
	if err := f.sync(path); err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := f.sync(dir); err != nil {
		return err
	}
	for ; dir != f.root && strings.HasPrefix(dir, f.root+string(filepath.Separator)); dir = filepath.Dir(dir) {
		if _, done := f.durable.Load(dir); done {
			break
		}
		if err := f.sync(filepath.Dir(dir)); err != nil {
			return err
		}
		f.durable.Store(dir, true)
	}
	return nil
}

func (f *fileSyncer) deleted(key string) error {
	return f.sync(filepath.Dir(f.path(key)))
}

// fsyncPath opens path (a file or a directory) and fsyncs it.
func fsyncPath(path string) error {
	file, err := os.Open(path)
	if err != nil {
		return err
	}
	defer file.Close()
	if err := file.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	return nil
}
