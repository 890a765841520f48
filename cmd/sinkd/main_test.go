package main

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/dpcap/dpcap/decap"
	"github.com/dpcap/dpcap/pcapout"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string
		check   func(config) bool
	}{
		{[]string{"-w", "x.pcap"}, "", func(o config) bool {
			return o.port == 3010 && o.snapLen == 262144 && o.bufferSize == 64<<20 && o.metricsAddr == "127.0.0.1:9310"
		}},
		{[]string{"-w", "x", "-C", "2m", "-W", "4", "-G", "60", "-z", "gzip", "-c", "9", "-s", "128"}, "", func(o config) bool {
			return o.fileSize == 2<<20 && o.fileCount == 4 && o.interval == time.Minute && o.count == 9 && o.snapLen == 128
		}},
		{[]string{"--port", "4789", "--listen", "::1", "--buffer-size", "8m", "-w", "-"}, "", func(o config) bool {
			return o.port == 4789 && o.listen.String() == "::1" && o.bufferSize == 8<<20 && o.out == "-"
		}},
		{[]string{}, "no output", nil},
		{[]string{"-w", "x.pcapng", "tcp", "port", "443"}, "", func(o config) bool {
			return o.filter == "tcp port 443" && o.format == pcapout.FormatPcapng
		}},
		{[]string{"-w", "x", "-F", "pcapng", "--split-by", "source"}, "", func(o config) bool {
			return o.format == pcapout.FormatPcapng && o.split
		}},
		{[]string{"-w", "x", "-F", "erf"}, "invalid format", nil},
		{[]string{"-w", "x", "--split-by", "port", "--max-sources", "40"}, "", func(o config) bool { return o.split && o.maxSources == 40 }},
		{[]string{"-w", "x", "--split-by", "vni"}, "invalid --split-by", nil},
		{[]string{"-w", "x", "--max-sources", "0"}, "invalid --max-sources", nil},
		{[]string{"-w", "-", "--split-by", "source"}, "need a file name", nil},
		{[]string{"-w", "x", "-s", "0"}, "invalid snaplen", nil},
		{[]string{"-w", "x", "-G", "0"}, "invalid rotation interval", nil},
		{[]string{"-w", "x", "-G", "1.5"}, "invalid rotation interval", nil},
		{[]string{"-w", "x", "-W", "2"}, "-W needs -C or -G", nil},
		{[]string{"-w", "x", "-C", "1", "-W", "-1"}, "invalid file count", nil},
		{[]string{"-w", "-", "-C", "1"}, "need a file name", nil},
		{[]string{"-w", "-", "-z", "gzip"}, "need a file name", nil},
		{[]string{"-w", "x", "--port", "0"}, "invalid port", nil},
		{[]string{"-w", "x", "--listen", "host.example"}, "invalid listen address", nil},
		{[]string{"-r", "in.pcap", "-w", "x", "--ports", "vxlan=4789,vxlan=8472"}, "", func(o config) bool {
			return decap.FormatPorts(o.ports) == "geneve=6081,nic=3010,tzsp=37008,vxlan=4789,vxlan=8472,vxlan-gpe=4790"
		}},
		{[]string{"-i", "eth1", "-w", "x", "--port", "4000", "--ports", "nic=4001,nic=4002"}, "", func(o config) bool {
			return decap.FormatPorts(o.ports) == "geneve=6081,nic=4001,nic=4002,tzsp=37008,vxlan=4789,vxlan-gpe=4790"
		}},
		{[]string{"-r", "in.pcap", "-w", "x", "--ports", "vxlan=4789,geneve=4789"}, "--ports: invalid port mapping \"geneve=4789\": port 4789 is given to vxlan and to geneve", nil},
		{[]string{"-r", "in.pcap", "-w", "x", "--ports", "vxlan=6081"}, "--ports: port 6081 is both vxlan's and geneve's (geneve's default): add geneve=0 or geneve=PORT to --ports", nil},
		{[]string{"-i", "eth1", "-w", "x", "--port", "4789"}, "--ports: port 4789 is both nic's and vxlan's (vxlan's default): add vxlan=0 or vxlan=PORT to --ports", nil},
		{[]string{"-i", "eth1", "-w", "x", "--port", "4789", "--ports", "vxlan=8472"}, "", func(o config) bool {
			return decap.FormatPorts(o.ports) == "geneve=6081,nic=4789,tzsp=37008,vxlan=8472,vxlan-gpe=4790"
		}},
		{[]string{"-w", "x", "--buffer-size", "3x"}, "invalid size", nil},
		{[]string{"-w", "x", "--buffer-size", "4g"}, "invalid size", nil},
		{[]string{"-w", "x", "-q"}, "flag provided but not defined: -q", nil},
		{[]string{"-w", "x", "-G", "300", "--keep", "288", "--hook-jobs", "2", "--hook-wait", "3s"}, "", func(o config) bool {
			return o.keep == 288 && o.fileCount == 0
		}},
		{[]string{"-w", "x", "-G", "300", "--keep", "2", "-W", "2"}, "exclude each other", nil},
		{[]string{"-w", "x", "--keep", "-1"}, "invalid --keep", nil},
		{[]string{"-w", "-", "--keep", "3"}, "need a file name", nil},
		{[]string{"-w", "x", "--hook-jobs", "0"}, "--hook-jobs must be positive", nil},
		{[]string{"-w", "x", "--upload-delete"}, "--upload-delete needs --upload", nil},
		{[]string{"-w", "x", "--workers", "4", "-i", "eth1"}, "", func(o config) bool { return o.workers == 4 && o.input.Name == "afpacket" && o.target == "eth1" }},
		{[]string{"-w", "x"}, "", func(o config) bool { return o.workers == 1 }},
		{[]string{"-w", "x", "--workers", "0"}, "invalid --workers", nil},
		{[]string{"-w", "x", "--workers", "65"}, "invalid --workers", nil},
		{[]string{"-w", "x", "--workers", "two"}, "invalid --workers", nil},
		{[]string{"-w", "x", "--workers", "2", "-r", "in.pcap"}, "-r converts one file", nil},
		{[]string{"-w", "-", "--workers", "2"}, "not -w -", nil},
		{[]string{"-r", "in.pcap", "-w", "in.pcap"}, "name the same file", nil},
		{[]string{"-r", "-", "-w", "-"}, "", func(o config) bool { return o.input.Offline && o.target == "-" && o.out == "-" }},
		{[]string{"-w", "x", "--workers", "2", "-c", "10"}, "excludes --workers", nil},
		{[]string{"-w", "-", "--upload", "s3://bkt"}, "--upload needs files", nil},
		{[]string{"-w", "x", "--upload", "https://bkt"}, "want s3://BUCKET/PREFIX", nil},
		{[]string{"-w", "x", "--upload", "s3://Bkt"}, "invalid bucket name", nil},
		{[]string{"-w", "x", "--upload", "s3://bkt", "--upload-spool-full", "keep"}, "invalid spool policy", nil},
		{[]string{"-w", "x", "--upload", "s3://bkt", "--upload-endpoint", "minio:9000"}, "invalid endpoint", nil},
		{[]string{"-w", "x", "--upload", "s3://bkt", "--upload-sink-id", "a/b"}, "--upload-sink-id: invalid sink id", nil},
		{[]string{"-w", "x", "--upload", "s3://bkt", "--upload-sink-id", strings.Repeat("s", 65)}, "--upload-sink-id: invalid sink id", nil},
		{[]string{"-w", "x", "--upload", "s3://bkt", "--upload-retry-max", "10ms"}, "invalid --upload-retry-max", nil},
		{[]string{"-w", "x", "--upload", "s3://bkt", "--upload-stall", "10ms"}, "invalid --upload-stall", nil},
		{[]string{"-w", "x", "--upload", "s3://bkt", "--upload-sink-id", ".."}, "--upload-sink-id: invalid sink id", nil},
		{[]string{"-w", "x", "--upload", "s3://bkt", "--upload-sink-id", "."}, "--upload-sink-id: invalid sink id", nil},
		{[]string{"-w", "x", "--upload", "s3://bkt/dc1/../x", "--upload-sink-id", "s"}, "--upload: invalid prefix", nil},
		{[]string{"-w", "x", "--upload", "s3://bkt/./x", "--upload-sink-id", "s"}, "--upload: invalid prefix", nil},
		{[]string{"-w", "x", "--upload", "s3://bkt/a\x1b[31m", "--upload-sink-id", "s"}, "--upload: invalid prefix", nil},
		{[]string{"-w", "x", "--upload", "s3://bkt/dc1/..", "--upload-sink-id", "s"}, "--upload: invalid prefix", nil},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			o, err := parseFlags(tt.args)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if !tt.check(o) {
					t.Fatalf("options %+v", o)
				}
				return
			}
			var ue usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want a usage error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestWorkerPath(t *testing.T) {
	for in, want := range map[string]string{
		"cap.pcap":              "cap-w1.pcap",
		"/data/cap.pcapng":      "/data/cap-w1.pcapng",
		"cap":                   "cap-w1",
		"/data.d/cap":           "/data.d/cap-w1",
		".hidden":               ".hidden-w1",
		"/c/%Y%m%d-%H%M%S.pcap": "/c/%Y%m%d-%H%M%S-w1.pcap",
	} {
		if got := workerPath(in, 1); got != want {
			t.Errorf("workerPath(%q, 1) = %q, want %q", in, got, want)
		}
	}
}

// A sink id or prefix that makes keys the store refuses stops sinkd at
// start, exit 2, with one line that names the flag: before, ".." was
// taken and every upload then failed with 400, forever.
func TestRunRefusesEscapingKeys(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"--upload-sink-id", ".."},
		{"--upload-sink-id", "."},
		{"--upload", "s3://bkt/dc1/../other"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			all := append([]string{"-w", dir + "/x.pcap", "--metrics-addr", "", "--upload", "s3://bkt/dc1", "--upload-sink-id", "s1"}, args...)
			var stderr strings.Builder
			if code := run(all, &stderr); code != 2 {
				t.Fatalf("exit %d, want 2; stderr:\n%s", code, stderr.String())
			}
			msg := stderr.String()
			if strings.Count(msg, "\n") != 1 || !strings.HasPrefix(msg, "sinkd: --upload") {
				t.Fatalf("want one line naming the flag, got:\n%s", msg)
			}
			if _, err := os.Stat(dir + "/x.pcap"); err == nil {
				t.Fatal("a capture file was made before the flags were checked")
			}
		})
	}
}
