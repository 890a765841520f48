//go:build !dpdk

package dpdk

import (
	"errors"

	"github.com/dpcap/dpcap/control"
)

// New reports that this build has no DPDK backend.
func New([]string, map[string]string) (control.Backend, error) {
	return nil, errors.New("this dpcap was built without DPDK: rebuild with CGO_ENABLED=1 -tags dpdk (needs libdpdk-dev)")
}
