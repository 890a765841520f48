//go:build !minimal

package main

// --upload, with the S3 client, which a build with -tags minimal (make
// demo) leaves out: outputs_minimal.go refuses the flag there.
import (
	_ "github.com/dpcap/dpcap/archive/upload" // --upload
)
