package postrotate

import (
	"flag"
	"strings"
	"testing"
	"time"
)

// TestFlags parses sinkd's -z flags as sinkd does.
func TestFlags(t *testing.T) {
	for _, tt := range []struct {
		args    []string
		out     string
		on      bool
		wantErr string
		want    flags
	}{
		{nil, "x", false, "", flags{jobs: DefaultJobs, wait: DefaultWait}},
		{[]string{"-z", "gzip", "--hook-jobs", "2", "--hook-wait", "3s"}, "x", true, "", flags{command: "gzip", jobs: 2, wait: 3 * time.Second}},
		{[]string{"--hook-jobs", "0"}, "x", false, "--hook-jobs must be positive", flags{}},
		{[]string{"--hook-wait", "-1s"}, "x", false, "--hook-wait not negative", flags{}},
		{[]string{"-z", "gzip"}, "-", false, "need a file name, not -w -", flags{}},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			fs := flag.NewFlagSet("sinkd", flag.ContinueOnError)
			f := defineFlags(fs).(*flags)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			on, err := f.Check(tt.out, nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || on != tt.on || *f != tt.want {
				t.Fatalf("on %v, err %v, flags %+v, want %+v", on, err, *f, tt.want)
			}
		})
	}
}
