//go:build !minimal

package main

// The backends dpcap serve can run: each registers itself with package
// control. A build with -tags minimal (make demo's) has none.
import (
	_ "github.com/dpcap/dpcap/control/dpdk"
	_ "github.com/dpcap/dpcap/control/dpservice"
	_ "github.com/dpcap/dpcap/control/software"
)
