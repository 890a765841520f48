package upload

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"os"

	"github.com/dpcap/dpcap/capture/pcapfile"
)

// repair cuts a capture file that sinkd was killed while writing back to
// its last whole record, so that every reader takes it (tshark, capinfos,
// dpcap fetch): the packets written before the kill stay, a record cut
// short goes. It returns how many bytes it cut. A file that does not begin
// as a pcap or pcapng file is left as it is.
func repair(f *os.File) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	valid, err := wholeRecords(bufio.NewReaderSize(io.NewSectionReader(f, 0, fi.Size()), 1<<20))
	if err != nil || valid == 0 || valid >= fi.Size() {
		return 0, err // whole, or not even its header is: not sinkd's
	}
	if err := f.Truncate(valid); err != nil {
		return 0, err
	}
	return fi.Size() - valid, f.Sync()
}

// wholeRecords returns the length of r's longest prefix made of whole
// records (pcap) or blocks (pcapng) after the file header; 0 when not
// even that is whole, the largest length when r does not begin as a
// capture file.
func wholeRecords(r *bufio.Reader) (int64, error) {
	head, err := r.Peek(4)
	if err != nil {
		return 0, ignoreEOF(err)
	}
	switch format, order := pcapfile.Sniff(head); format {
	case pcapfile.FormatPcapMicro, pcapfile.FormatPcapNano:
		return pcapRecords(r, order)
	case pcapfile.FormatPcapng:
		return ngBlocks(r)
	}
	return 1<<63 - 1, nil
}

// pcapRecords walks a pcap file's records; one longer than the file's
// snap length or than the packet it holds ends the walk.
func pcapRecords(r *bufio.Reader, order binary.ByteOrder) (int64, error) {
	const fileHeader, recordHeader = pcapfile.FileHeaderLen, pcapfile.RecordHeaderLen
	var h [fileHeader]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, ignoreEOF(err)
	}
	snapLen := order.Uint32(h[16:20])
	valid := int64(fileHeader)
	for {
		if _, err := io.ReadFull(r, h[:recordHeader]); err != nil {
			return valid, ignoreEOF(err)
		}
		n, orig := order.Uint32(h[8:12]), order.Uint32(h[12:16])
		if n > snapLen || orig < n || orig == 0 {
			return valid, nil // not a record: zeros a crash left, or garbage
		}
		if _, err := r.Discard(int(n)); err != nil {
			return valid, ignoreEOF(err)
		}
		valid += recordHeader + int64(n)
	}
}

// ngBlocks walks a pcapng file's blocks: each must give the same length
// at its start and its end.
func ngBlocks(r *bufio.Reader) (int64, error) {
	const maxBlock = 16 << 20
	var order binary.ByteOrder = binary.LittleEndian
	var valid int64
	var h [12]byte
	for {
		if _, err := io.ReadFull(r, h[:8]); err != nil {
			return valid, ignoreEOF(err)
		}
		head := 8
		if binary.LittleEndian.Uint32(h[:4]) == pcapfile.BlockSectionHeader {
			// A section header says the byte order of its section.
			head = 12
			if _, err := io.ReadFull(r, h[8:12]); err != nil {
				return valid, ignoreEOF(err)
			}
			if order = pcapfile.SectionByteOrder(h[8:12]); order == nil {
				return valid, nil
			}
		}
		n := order.Uint32(h[4:8])
		if n < uint32(head)+4 || n%4 != 0 || n > maxBlock {
			return valid, nil
		}
		if _, err := r.Discard(int(n) - head - 4); err != nil {
			return valid, ignoreEOF(err)
		}
		if _, err := io.ReadFull(r, h[:4]); err != nil {
			return valid, ignoreEOF(err)
		}
		if order.Uint32(h[:4]) != n {
			return valid, nil
		}
		valid += int64(n)
	}
}

// ignoreEOF turns the end of the file, which ends the walk, into no error.
func ignoreEOF(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil
	}
	return err
}
