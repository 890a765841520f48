package upload

import (
	"flag"
	"strings"
	"testing"
	"time"
)

// TestFlags parses sinkd's --upload flags as sinkd does, -w /cap/x.pcapng.
func TestFlags(t *testing.T) {
	for _, tt := range []struct {
		args  []string
		on    bool
		check func(*flags) bool
	}{
		{nil, false, func(u *flags) bool {
			return u.retryMax == time.Minute && u.stall == time.Minute && u.wait == 30*time.Second
		}},
		{[]string{"--upload", "s3://captures/dc1/", "--upload-sink-id", "sink-1", "--upload-path-style", "--upload-spool-size", "2g", "--upload-spool-full", "drop-newest"}, true, func(u *flags) bool {
			return u.target.Bucket == "captures" && u.target.Prefix == "dc1" && u.sinkID == "sink-1" && u.pathStyle &&
				u.spool == "/cap/.sinkd-spool" && u.spoolSize == 2<<30 && u.full == DropNewest && u.retryMax == time.Minute
		}},
		{[]string{"--upload", "s3://bkt", "--upload-sink-id", "s"}, true, func(u *flags) bool { return u.stall == time.Minute && u.full == DropOldest }},
		{[]string{"--upload", "s3://bkt", "--upload-sink-id", "s", "--upload-stall", "5s"}, true, func(u *flags) bool { return u.stall == 5*time.Second }},
		{[]string{"--upload", "s3://bkt/dc1/2026.d/...x", "--upload-sink-id", "s.1"}, true, func(u *flags) bool {
			return u.target.Prefix == "dc1/2026.d/...x" && u.sinkID == "s.1"
		}},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			fs := flag.NewFlagSet("sinkd", flag.ContinueOnError)
			u := defineFlags(fs).(*flags)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			set := map[string]bool{}
			fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
			on, err := u.Check("/cap/x.pcapng", set)
			if err != nil || on != tt.on || !tt.check(u) {
				t.Fatalf("on %v, err %v, flags %+v", on, err, u)
			}
		})
	}
}
