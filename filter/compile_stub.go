//go:build !(cgo && libpcap)

package filter

import (
	"fmt"

	"golang.org/x/net/bpf"
)

// Available reports whether this build can compile filters.
const Available = false

func compile(expr string, _ int) ([]bpf.RawInstruction, error) {
	return nil, fmt.Errorf("filter %q: this sinkd was built without libpcap's filter compiler; rebuild with CGO_ENABLED=1 -tags libpcap (needs libpcap-dev)", expr)
}
