package upload

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go/middleware"
	"github.com/dpcap/dpcap/archive"
)

// multipart is the progress of a multipart upload, kept across attempts so
// that a retry sends only the parts the store does not have.
type multipart struct {
	id    string
	parts map[int32]types.CompletedPart
	sums  map[int32][]byte // SHA-256 of each part
}

// s3Store is the Store of an S3-compatible bucket. It puts objects, each
// verified by the store (a SHA-256 the store checks on every request) and
// then by a HEAD of the result, in parts past partSize.
type s3Store struct {
	client   *s3.Client
	bucket   string
	partSize int64
	// parallel is how many parts go at once.
	parallel int
}

var _ Store = (*s3Store)(nil)

// Put implements Store: resume is a multipart upload's progress, so that
// a retry sends only the parts the store does not have.
func (t *s3Store) Put(ctx context.Context, o Object, resume Partial) (Partial, error) {
	mp, _ := resume.(*multipart)
	if mp == nil {
		mp = &multipart{}
	}
	err := t.put(ctx, o, mp)
	if mp.id == "" {
		return nil, err
	}
	return mp, err
}

// Abort implements Store: it aborts the multipart uploads of key.
func (t *s3Store) Abort(ctx context.Context, key string) error {
	return t.abortStale(ctx, t.bucket, key)
}

// errRead is a spooled file that could not be read.
var errRead = errors.New("read spooled file")

// errIntegrity is a store that kept something other than what was sent.
var errIntegrity = errors.New("integrity check failed")

// put uploads o, in parts when it is larger than a part. mp carries a
// multipart upload's progress from one attempt to the next.
func (t *s3Store) put(ctx context.Context, o Object, mp *multipart) error {
	if o.Size <= t.partSize {
		sum, err := hashSection(o.File, 0, o.Size)
		if err != nil {
			return err
		}
		_, err = t.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket: &t.bucket, Key: &o.Key,
			Body:              io.NewSectionReader(o.File, 0, o.Size),
			ContentLength:     aws.Int64(o.Size),
			ContentType:       &o.ContentType,
			Metadata:          o.Meta,
			ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
			ChecksumSHA256:    aws.String(base64.StdEncoding.EncodeToString(sum)),
		}, payloadHash(sum))
		if err != nil {
			return fmt.Errorf("put %s: %w", o.Key, err)
		}
		return t.verify(ctx, o, base64.StdEncoding.EncodeToString(sum))
	}
	if mp.id == "" {
		out, err := t.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
			Bucket: &t.bucket, Key: &o.Key,
			ContentType:       &o.ContentType,
			Metadata:          o.Meta,
			ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
		})
		if err != nil {
			return fmt.Errorf("start multipart upload of %s: %w", o.Key, err)
		}
		mp.id, mp.parts, mp.sums = *out.UploadId, map[int32]types.CompletedPart{}, map[int32][]byte{}
	}
	if err := t.sendParts(ctx, o, mp); err != nil {
		if archive.ErrorCode(err) == "NoSuchUpload" {
			mp.id = "" // the store forgot it (aborted, expired): start again
		}
		return err
	}
	parts := make([]types.CompletedPart, 0, len(mp.parts))
	whole := sha256.New()
	for n := int32(1); int(n) <= len(mp.parts); n++ {
		parts = append(parts, mp.parts[n])
		whole.Write(mp.sums[n])
	}
	// S3's checksum of a multipart object is the checksum of its parts'
	// checksums, with the number of parts.
	composite := base64.StdEncoding.EncodeToString(whole.Sum(nil))
	_, err := t.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: &t.bucket, Key: &o.Key, UploadId: &mp.id,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		if archive.ErrorCode(err) == "NoSuchUpload" {
			mp.id = ""
		}
		return fmt.Errorf("complete multipart upload of %s: %w", o.Key, err)
	}
	mp.id = ""
	return t.verify(ctx, o, fmt.Sprintf("%s-%d", composite, len(parts)))
}

// sendParts uploads the parts the store does not have yet, parallel at a
// time.
func (t *s3Store) sendParts(ctx context.Context, o Object, mp *multipart) error {
	n := int32((o.Size + t.partSize - 1) / t.partSize)
	var (
		mu   sync.Mutex
		next int32 = 1
		errs []error
		wg   sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	take := func() int32 {
		mu.Lock()
		defer mu.Unlock()
		for len(errs) == 0 && next <= n {
			p := next
			next++
			if _, done := mp.parts[p]; !done {
				return p
			}
		}
		return 0
	}
	for range t.parallel {
		wg.Go(func() {
			for p := take(); p != 0; p = take() {
				off := int64(p-1) * t.partSize
				size := min(t.partSize, o.Size-off)
				part, sum, err := t.sendPart(ctx, o, mp.id, p, off, size)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
					cancel()
				} else {
					mp.parts[p], mp.sums[p] = part, sum
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}

func (t *s3Store) sendPart(ctx context.Context, o Object, id string, p int32, off, size int64) (types.CompletedPart, []byte, error) {
	sum, err := hashSection(o.File, off, size)
	if err != nil {
		return types.CompletedPart{}, nil, err
	}
	b64 := base64.StdEncoding.EncodeToString(sum)
	out, err := t.client.UploadPart(ctx, &s3.UploadPartInput{
		Bucket: &t.bucket, Key: &o.Key, UploadId: &id, PartNumber: &p,
		Body:              io.NewSectionReader(o.File, off, size),
		ContentLength:     aws.Int64(size),
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
		ChecksumSHA256:    &b64,
	}, payloadHash(sum))
	if err != nil {
		return types.CompletedPart{}, nil, fmt.Errorf("upload part %d of %s: %w", p, o.Key, err)
	}
	if out.ChecksumSHA256 != nil && *out.ChecksumSHA256 != b64 {
		return types.CompletedPart{}, nil, fmt.Errorf("part %d of %s: the store computed SHA-256 %s, sent %s: %w", p, o.Key, *out.ChecksumSHA256, b64, errIntegrity)
	}
	return types.CompletedPart{ETag: out.ETag, PartNumber: &p, ChecksumSHA256: &b64}, sum, nil
}

// verify checks that the store holds an object of o's size and checksum.
func (t *s3Store) verify(ctx context.Context, o Object, want string) error {
	h, err := t.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &t.bucket, Key: &o.Key, ChecksumMode: types.ChecksumModeEnabled})
	if err != nil {
		return fmt.Errorf("verify %s: %w", o.Key, err)
	}
	if got := aws.ToInt64(h.ContentLength); got != o.Size {
		return fmt.Errorf("verify %s: the store holds %d bytes, sent %d: %w", o.Key, got, o.Size, errIntegrity)
	}
	// Stores add the part count to a multipart checksum, or not.
	if got := aws.ToString(h.ChecksumSHA256); got != "" && stripParts(got) != stripParts(want) {
		return fmt.Errorf("verify %s: the store holds SHA-256 %s, sent %s: %w", o.Key, got, want, errIntegrity)
	}
	return nil
}

func stripParts(sum string) string {
	if i := strings.LastIndexByte(sum, '-'); i > 0 {
		return sum[:i]
	}
	return sum
}

// abortStale aborts the multipart uploads of key that an earlier run left
// behind, so that their parts do not linger in the bucket.
func (t *s3Store) abortStale(ctx context.Context, bucket, key string) error {
	out, err := t.client.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &bucket, Prefix: &key})
	if err != nil {
		return fmt.Errorf("list multipart uploads of %s: %w", key, err)
	}
	var ids []string
	for _, u := range out.Uploads {
		if aws.ToString(u.Key) == key {
			ids = append(ids, aws.ToString(u.UploadId))
		}
	}
	sort.Strings(ids)
	for _, id := range ids {
		if _, err := t.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &bucket, Key: &key, UploadId: &id}); err != nil && archive.ErrorCode(err) != "NoSuchUpload" {
			return fmt.Errorf("abort multipart upload %s of %s: %w", id, key, err)
		}
	}
	return nil
}

// hashSection returns the SHA-256 of size bytes of f at off.
func hashSection(f *os.File, off, size int64) ([]byte, error) {
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, off, size)); err != nil {
		return nil, fmt.Errorf("%w %s: %w", errRead, f.Name(), err)
	}
	return h.Sum(nil), nil
}

// payloadHash gives the SDK the SHA-256 already computed for the checksum,
// which a request signed over plain HTTP also needs: the file is then read
// once to hash and once to send, not twice to hash.
func payloadHash(sum []byte) func(*s3.Options) {
	h := hex.EncodeToString(sum)
	return func(o *s3.Options) {
		o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
			return st.Finalize.Add(middleware.FinalizeMiddlewareFunc("dpcapPayloadHash",
				func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
					return next.HandleFinalize(v4.SetPayloadHash(ctx, h), in)
				}), middleware.Before)
		})
	}
}
