//go:build minimal

package main

import (
	"errors"
	"io"
)

func runFetch([]string, io.Writer, io.Writer) error {
	return errors.New("this dpcap was built without fetch (-tags minimal, as make demo builds it); 'make build' builds it")
}
