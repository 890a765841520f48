package upload

import (
	"context"
	"os"
)

// Store is what an Uploader needs of an object store: to put a file as an
// object the store verifiably holds, resuming across attempts, and to
// remove what unfinished attempts left. The S3 implementation (an S3 client
// in Config) is the one sinkd uses; another store is one more type.
type Store interface {
	// Put stores o and checks that the store holds what was sent. A failed
	// Put may leave part of o in the store: it returns what the next
	// attempt at the same object resumes from, nil when there is nothing
	// (and after success). resume is what the last attempt returned.
	Put(ctx context.Context, o Object, resume Partial) (Partial, error)
	// Abort removes what attempts at key left unfinished in the store, in
	// this run or an earlier one.
	Abort(ctx context.Context, key string) error
}

// Partial is what a failed Put left in its store for the next attempt at
// the same object, in the store's own terms (S3: a multipart upload and
// its parts).
type Partial interface{}

// Object is one capture file to put in the store.
type Object struct {
	Key  string
	File *os.File
	Size int64
	// Meta are the object's user metadata (archive.Meta.Headers).
	Meta        map[string]string
	ContentType string
}
