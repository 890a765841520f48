// Command s3-make-bucket creates a bucket in an S3-compatible store, for
// the benchmarks (scripts/bench.sh) that run sinkd --upload against a
// local MinIO. sinkd itself never creates buckets. Credentials come from
// the standard AWS chain.
//
//	s3-make-bucket --endpoint http://127.0.0.1:9000 BUCKET
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/dpcap/dpcap/archive"
)

func main() {
	endpoint := flag.String("endpoint", "", "the store's URL")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: s3-make-bucket --endpoint URL BUCKET")
		os.Exit(2)
	}
	ctx := context.Background()
	c, err := archive.NewClient(ctx, archive.ClientOptions{Endpoint: *endpoint, PathStyle: true})
	if err == nil {
		bucket := flag.Arg(0)
		_, err = c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &bucket})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "s3-make-bucket:", err)
		os.Exit(1)
	}
}
