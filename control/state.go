package control

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/dpcap/dpcap/flowprog"
	"github.com/dpcap/dpcap/internal/atomicfile"
)

// saved is the persisted active capture.
type saved struct {
	Request StartRequest `json:"request"`
	Started time.Time    `json:"started"`
	// ID names the capture (newID).
	ID string `json:"id,omitempty"`
	// Deadline is when the daemon stops the capture; zero: never.
	Deadline time.Time `json:"deadline,omitzero"`
	// StoppedBy says who asked for the stop a dataplane refused: the
	// stop it gets once the dataplane lets it is theirs.
	StoppedBy string `json:"stopped_by,omitempty"`
	// StopRefused is when a dataplane refused to stop the capture, which
	// goes on there: it is stopped for good once the dataplane captures
	// nothing, and never applied again.
	StopRefused time.Time `json:"stop_refused,omitzero"`
}

const (
	captureFile = "capture.json"
	portMapFile = "portmap.json"
	// tagsFile holds the ports' tags for good: a stop or a replacement
	// leaves it, so that no tag ever names another port (flowprog.TagTable).
	tagsFile = "tags.json"
)

// savedTags is the persisted tag table.
type savedTags struct {
	Tags flowprog.TagTable `json:"tags"`
}

// writeAtomic replaces name with data so that a crash leaves the old file
// or the new one, never a torn one; the file has mode whatever the umask.
func writeAtomic(name string, data []byte, mode os.FileMode) error {
	return atomicfile.WriteFile(name, data, atomicfile.Options{Perm: mode, ExactPerm: true})
}

// loadSaved reads the saved capture; ok is false when there is none.
func loadSaved(dir string) (s saved, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, captureFile))
	if errors.Is(err, fs.ErrNotExist) {
		return s, false, nil
	}
	if err != nil {
		return s, false, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, false, fmt.Errorf("%s: %w", filepath.Join(dir, captureFile), err)
	}
	return s, true, nil
}

// loadTags reads the tag table; without a file, it is empty.
func loadTags(dir string) (flowprog.TagTable, error) {
	name := filepath.Join(dir, tagsFile)
	b, err := os.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return flowprog.TagTable{}, nil
	}
	if err != nil {
		return nil, err
	}
	var st savedTags
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := st.Tags.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if st.Tags == nil {
		st.Tags = flowprog.TagTable{}
	}
	return st.Tags, nil
}
