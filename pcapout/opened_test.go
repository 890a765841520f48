package pcapout

import (
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
)

// TestOnOpenAnnouncesEveryFile: a subscriber hears of the file open when
// it subscribes and of each file made after, with the inode each name
// led to as it was made; a split's sources too.
func TestOnOpenAnnouncesEveryFile(t *testing.T) {
	dir := t.TempDir()
	var heard []OpenedFile
	check := func(want ...string) {
		t.Helper()
		if len(heard) != len(want) {
			t.Fatalf("heard %v, want %v", heard, want)
		}
		for i, of := range heard {
			fi, err := os.Stat(of.Name)
			if err != nil {
				t.Fatal(err)
			}
			st := fi.Sys().(*syscall.Stat_t)
			if of.Name != filepath.Join(dir, want[i]) || of.Dev != uint64(st.Dev) || of.Ino != st.Ino || of.Format != FormatPcapng {
				t.Errorf("heard %+v, want %s (dev %d ino %d)", of, want[i], st.Dev, st.Ino)
			}
		}
	}
	r, err := Open(Options{Path: filepath.Join(dir, "cap.pcapng"), Format: FormatPcapng, LinkType: layers.LinkTypeEthernet, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	r.OnOpen(func(of OpenedFile) { heard = append(heard, of) })
	check("cap.pcapng")
	r.Rotate()
	r.Rotate()
	check("cap.pcapng", "cap.pcapng1", "cap.pcapng2")
	r.Close()

	heard = nil
	s, err := NewSplit(Options{Path: filepath.Join(dir, "split.pcapng"), Format: FormatPcapng, LinkType: layers.LinkTypeEthernet, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	s.AddInterface(Interface{Name: "vm-1"})
	s.OnOpen(func(of OpenedFile) { heard = append(heard, of) })
	s.AddInterface(Interface{Name: "vm-2"})
	check("split-vm-1.pcapng", "split-vm-2.pcapng")
	s.Close()
}

// TestRemovedFileWithAnotherLink: the file being written is removed while
// another link to it remains (the upload spool's): its name is gone, so a
// new file starts, as when the file is gone for good.
func TestRemovedFileWithAnotherLink(t *testing.T) {
	dir := t.TempDir()
	clk := &clock{t: time.Unix(1700000000, 0)}
	path := filepath.Join(dir, "cap.pcap")
	r, err := Open(Options{Path: path, LinkType: layers.LinkTypeEthernet, Now: clk.now, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := os.Link(path, filepath.Join(dir, "held")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	clk.t = clk.t.Add(2 * time.Second)
	r.WritePacket(0, clk.t, numberedFrame(1, 100), 100)
	r.Flush()
	if _, err := os.Stat(path + "1"); err != nil {
		t.Fatalf("no new file after the removal: %v", err)
	}
	r.WritePacket(0, clk.t, numberedFrame(2, 100), 100)
	r.Close()
	if n := len(readAll(t, path+"1")); n != 1 {
		t.Errorf("the new file holds %d packets, want 1", n)
	}
}
