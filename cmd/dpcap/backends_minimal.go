//go:build minimal

package main

import (
	"errors"
	"log/slog"

	"github.com/dpcap/dpcap/control"
)

// backendFlags are dpcap serve's flags that choose and set up a backend.
type backendFlags struct {
	name, mirror, dpservice, eal string
	ports                        map[string]string
}

// newBackend refuses: this build (-tags minimal, make demo's) has only
// dpcap replay and the client commands.
func newBackend(backendFlags, *slog.Logger) (control.Backend, func(), error) {
	return nil, func() {}, errors.New("this dpcap was built without backends (-tags minimal, as make demo builds it); 'make build' builds them")
}
