//go:build !dpdk

package control

import "errors"

// NewDPDK reports that this build has no DPDK backend.
func NewDPDK([]string, map[string]string) (Backend, error) {
	return nil, errors.New("this dpcap was built without DPDK: rebuild with CGO_ENABLED=1 -tags dpdk (needs libdpdk-dev)")
}
