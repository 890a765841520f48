//go:build !dpdk

package dpdk

import (
	"strings"
	"testing"
)

func TestDPDKStubSaysHowToGetIt(t *testing.T) {
	_, err := New(nil, map[string]string{"pf0": "x"})
	if err == nil || !strings.Contains(err.Error(), "-tags dpdk") {
		t.Fatalf("err = %v", err)
	}
}
