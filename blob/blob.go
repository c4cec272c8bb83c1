// Package blob keeps attachment bytes in an S3-compatible object store
// (Versity's S3 gateway locally, S3 in production) through the AWS SDK: it
// pre-signs the PUT a client uploads with and the GET it downloads with, and
// checks, reads and deletes objects for the api. Clients never hold store
// credentials; a pre-signed URL names one object, one method and, for a PUT,
// its exact length and content type.
package blob

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// Config is how to reach the store and what it may hold.
type Config struct {
	// Endpoint is the store's base URL; empty means AWS S3 for Region.
	Endpoint  string
	Bucket    string
	Region    string
	AccessKey string
	SecretKey string
	// MaxUploadBytes is the largest object a client may upload.
	MaxUploadBytes int64
	// PutTTL and GetTTL are the lifetimes of pre-signed uploads and downloads.
	PutTTL time.Duration
	GetTTL time.Duration
}

// Dev credentials of the local gateway started by scripts/services.sh
// (S3_ACCESS_KEY / S3_SECRET_KEY there and here); never valid on AWS.
const (
	DevAccessKey = "chatflow-dev"
	DevSecretKey = "chatflow-dev-secret-key"
)

// DefaultConfig matches the local gateway of `make dev` (port 19000).
func DefaultConfig() Config {
	return Config{
		Endpoint: "http://127.0.0.1:19000", Bucket: "chatflow", Region: "us-east-1",
		AccessKey: DevAccessKey, SecretKey: DevSecretKey,
		MaxUploadBytes: 10 << 20, PutTTL: 5 * time.Minute, GetTTL: 5 * time.Minute,
	}
}

// ErrNotFound is returned for an object the store does not hold.
var ErrNotFound = errors.New("blob: object not found")

// Store is one bucket of the object store.
type Store struct {
	cfg     Config
	client  *s3.Client
	presign *s3.PresignClient

	mu    sync.Mutex
	ready bool // the bucket is known to exist
}

// New builds a store; it does not touch the network (EnsureBucket does, and
// every operation calls it until it has succeeded once, so a node started
// before the store comes up serves attachments once it is there).
func New(cfg Config) *Store {
	opts := s3.Options{
		Region:       cfg.Region,
		Credentials:  credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, ""),
		UsePathStyle: cfg.Endpoint != "", // a local endpoint has no per-bucket host names
		HTTPClient:   &http.Client{Timeout: 60 * time.Second},
		// Checksums only when an operation needs one: presigned PUTs must not
		// carry a checksum header the browser would have to send.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	}
	if cfg.Endpoint != "" {
		opts.BaseEndpoint = aws.String(cfg.Endpoint)
	}
	c := s3.New(opts)
	return &Store{cfg: cfg, client: c, presign: s3.NewPresignClient(c)}
}

// MaxUploadBytes is the largest object a client may upload.
func (s *Store) MaxUploadBytes() int64 { return s.cfg.MaxUploadBytes }

// Origin is the scheme://host[:port] pre-signed URLs point at, for a web
// page's Content-Security-Policy.
func (s *Store) Origin() string {
	if s.cfg.Endpoint == "" {
		return "https://" + s.cfg.Bucket + ".s3." + s.cfg.Region + ".amazonaws.com"
	}
	u, err := url.Parse(s.cfg.Endpoint)
	if err != nil || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// Config returns the store's configuration.
func (s *Store) Config() Config { return s.cfg }

// EnsureBucket creates the bucket unless it exists.
func (s *Store) EnsureBucket(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ready {
		return nil
	}
	_, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &s.cfg.Bucket})
	if err != nil {
		_, err = s.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &s.cfg.Bucket})
		var owned *types.BucketAlreadyOwnedByYou
		if errors.As(err, &owned) {
			err = nil
		}
	}
	if err != nil {
		return fmt.Errorf("object store bucket %q: %w", s.cfg.Bucket, err)
	}
	s.ready = true
	return nil
}

// Presigned is a URL a client uses without credentials until Expires.
type Presigned struct {
	URL     string
	Method  string
	Header  http.Header // headers the client must send as signed
	Expires time.Time
}

// PresignPut pre-signs an upload of exactly size bytes of contentType to key.
// Content-Length and Content-Type are signed: a PUT with other values fails
// the store's signature check.
func (s *Store) PresignPut(ctx context.Context, key string, size int64, contentType string) (Presigned, error) {
	if err := s.EnsureBucket(ctx); err != nil {
		return Presigned{}, err
	}
	req, err := s.presign.PresignPutObject(ctx, &s3.PutObjectInput{
		Bucket: &s.cfg.Bucket, Key: &key, ContentLength: &size, ContentType: &contentType,
	}, s3.WithPresignExpires(s.cfg.PutTTL))
	if err != nil {
		return Presigned{}, err
	}
	return Presigned{URL: req.URL, Method: req.Method, Header: req.SignedHeader, Expires: time.Now().Add(s.cfg.PutTTL).UTC()}, nil
}

// PresignGet pre-signs a download of key; disposition (may be empty) is the
// Content-Disposition the store answers with.
func (s *Store) PresignGet(ctx context.Context, key, disposition string) (Presigned, error) {
	in := &s3.GetObjectInput{Bucket: &s.cfg.Bucket, Key: &key}
	if disposition != "" {
		in.ResponseContentDisposition = &disposition
	}
	req, err := s.presign.PresignGetObject(ctx, in, s3.WithPresignExpires(s.cfg.GetTTL))
	if err != nil {
		return Presigned{}, err
	}
	return Presigned{URL: req.URL, Method: req.Method, Header: req.SignedHeader, Expires: time.Now().Add(s.cfg.GetTTL).UTC()}, nil
}

// Object is what the store says about one object.
type Object struct {
	Size        int64
	ContentType string
}

// Head returns an object's size and content type, or ErrNotFound.
func (s *Store) Head(ctx context.Context, key string) (Object, error) {
	if err := s.EnsureBucket(ctx); err != nil {
		return Object{}, err
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.cfg.Bucket, Key: &key})
	if err != nil {
		return Object{}, notFound(err)
	}
	return Object{Size: aws.ToInt64(out.ContentLength), ContentType: aws.ToString(out.ContentType)}, nil
}

// Open reads an object (at most limit bytes are read by the caller's reader).
func (s *Store) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.cfg.Bucket, Key: &key})
	if err != nil {
		return nil, notFound(err)
	}
	return out.Body, nil
}

// Put stores a small object the server made (a thumbnail).
func (s *Store) Put(ctx context.Context, key, contentType string, body []byte) error {
	if err := s.EnsureBucket(ctx); err != nil {
		return err
	}
	n := int64(len(body))
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: &s.cfg.Bucket, Key: &key, ContentType: &contentType, ContentLength: &n, Body: bytes.NewReader(body),
	})
	return err
}

// Delete removes an object; a missing one is no error.
func (s *Store) Delete(ctx context.Context, key string) error {
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.cfg.Bucket, Key: &key})
	if errors.Is(notFound(err), ErrNotFound) {
		return nil
	}
	return err
}

// Ping checks that the store answers and the bucket exists.
func (s *Store) Ping(ctx context.Context) error {
	_, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &s.cfg.Bucket})
	return err
}

func notFound(err error) error {
	var nf *types.NotFound
	var nk *types.NoSuchKey
	var api smithy.APIError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &nf), errors.As(err, &nk):
		return ErrNotFound
	case errors.As(err, &api) && (api.ErrorCode() == "NotFound" || api.ErrorCode() == "NoSuchKey"):
		return ErrNotFound
	}
	return err
}

// ContentDisposition is an RFC 6266 value for name (UTF-8, percent-encoded).
func ContentDisposition(kind, name string) string {
	return kind + "; filename*=UTF-8''" + url.PathEscape(name)
}
