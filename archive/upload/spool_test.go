package upload

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dpcap/dpcap/capture/pcapfile"
	"github.com/dpcap/dpcap/pcapout"
	"github.com/gopacket/gopacket/layers"
)

// TestKilledWhileWriting: the uploader hears of each file as it opens and
// as it closes; the run ends (a SIGKILL, as far as the spool can tell)
// while the third file is being written, with part of a record on disk.
// The next run repairs that file, cut back to its last whole packet, and
// uploads it: with the spool on the capture's file system even though the
// next run's first file took its name, on another file system from the
// name, which still leads to it.
func TestKilledWhileWriting(t *testing.T) {
	for _, tc := range []struct {
		name    string
		other   bool // the spool on another file system
		format  pcapout.Format
		renamed bool // the next run takes the unfinished file's name
	}{
		{"linked pcapng", false, pcapout.FormatPcapng, true},
		{"linked pcap", false, pcapout.FormatPcap, true},
		{"copied pcapng", true, pcapout.FormatPcapng, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, loc := newBucket(t, sharedServer(t))
			dir := t.TempDir()
			spool := filepath.Join(dir, ".spool")
			if tc.other {
				spool = filepath.Join(otherFS(t, dir), "spool")
			}
			var log logBuffer
			cfg := config(c, loc, spool, &log)
			u := openUploader(t, cfg)
			name := filepath.Join(dir, "cap")
			r, err := pcapout.Open(pcapout.Options{Path: name, Format: tc.format, LinkType: layers.LinkTypeEthernet, FileSize: 1 << 30, FileCount: 10})
			if err != nil {
				t.Fatal(err)
			}
			r.OnOpen(u.Opened)
			r.OnClose(u.Handle)
			iface := r.AddInterface(pcapout.Interface{Name: "vm-1"})
			ts := time.Date(2026, 11, 23, 10, 2, 0, 0, time.UTC)
			for file := range 3 {
				if file > 0 {
					r.Rotate()
				}
				for i := range 50 {
					r.WritePacket(iface, ts.Add(time.Duration(file*50+i)*time.Millisecond), bytes.Repeat([]byte{byte(file)}, 200), 200)
				}
			}
			r.Flush()
			unfinished := r.Name()
			waitUploaded(t, u, 2)
			u.Close(0) // killed: the third file never closes
			// A write the kill cut short.
			f, err := os.OpenFile(unfinished, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.Write([]byte{6, 0, 0, 0, 0x2c, 1, 0, 0, 0, 0, 0, 0, 1, 2, 3})
			f.Close()
			if tc.renamed {
				if err := os.Remove(unfinished); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(unfinished, []byte("the next run's file"), 0o640); err != nil {
					t.Fatal(err)
				}
			}

			u = openUploader(t, cfg)
			waitUploaded(t, u, 1)
			u.Close(time.Second)
			stored := objects(t, c, loc)
			if len(stored) != 3 {
				t.Fatalf("%d objects stored, want 3\n%s", len(stored), log.String())
			}
			var got []pcapfile.Packet
			for key, b := range stored {
				if !strings.HasSuffix(key, filepath.Base(unfinished)) {
					continue
				}
				obj := filepath.Join(t.TempDir(), "obj")
				if err := os.WriteFile(obj, b, 0o640); err != nil {
					t.Fatal(err)
				}
				if got, _, err = pcapfile.ReadFile(obj); err != nil {
					t.Errorf("the unfinished file's object: %v", err)
				}
			}
			if len(got) != 50 || got[0].Data[0] != 2 {
				t.Errorf("the unfinished file's object holds %d packets, want its 50", len(got))
			}
			if !strings.Contains(log.String(), "cut back to its last whole packet") {
				t.Errorf("the repair is not logged:\n%s", log.String())
			}
			if !tc.renamed {
				if pkts, _, err := pcapfile.ReadFile(unfinished); err != nil || len(pkts) != 50 {
					t.Errorf("the capture file itself reads %d packets: %v", len(pkts), err)
				}
			}
			r.Close()
		})
	}
}

// TestGiveSpool: root makes a missing spool directory for the -Z user and
// hands it over; a name that exists already, a symbolic link above all,
// is left to that user to check, its target untouched.
func TestGiveSpool(t *testing.T) {
	dir := t.TempDir()
	spool := filepath.Join(dir, "spool")
	if err := GiveSpool(spool, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(spool)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); !fi.IsDir() || st.Uid != 65534 || st.Gid != 65534 || fi.Mode().Perm()&^0o750 != 0 {
		t.Errorf("spool %v owned by %d:%d", fi.Mode(), st.Uid, st.Gid)
	}
	target := filepath.Join(dir, "roots")
	mkdir(t, target, 0o700)
	link := filepath.Join(dir, "planted")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := GiveSpool(link, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(target); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Errorf("the link's target was given away: %v", err)
	}
}
