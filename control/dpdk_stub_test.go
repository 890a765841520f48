//go:build !dpdk

package control

import (
	"strings"
	"testing"
)

func TestDPDKStubSaysHowToGetIt(t *testing.T) {
	_, err := NewDPDK(nil, map[string]string{"pf0": "x"})
	if err == nil || !strings.Contains(err.Error(), "-tags dpdk") {
		t.Fatalf("err = %v", err)
	}
}
