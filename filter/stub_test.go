//go:build !(cgo && libpcap)

package filter

import (
	"strings"
	"testing"
)

func TestCompileSaysHowToGetIt(t *testing.T) {
	_, err := Compile("tcp port 80", 65535)
	if err == nil || !strings.Contains(err.Error(), "-tags libpcap") {
		t.Fatalf("err = %v", err)
	}
}
