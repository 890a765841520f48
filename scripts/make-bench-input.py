#!/usr/bin/env python3
"""Writes a large Ethernet pcap of NIC envelopes for the offline benchmark.

Each record is the 62-byte envelope (Ethernet, IPv6 with payload length 0,
UDP with checksum 0, as the NIC's template has them) around a frame of
testdata/vm-traffic.pcap, cycling through the capture: 60 to 1514 bytes.
With PORTS, record i carries port tag i % PORTS + 1 in its IPv6 flow label,
as dpcap's own backends tag each port's copies.
Usage: make-bench-input.py OUT.pcap [PACKETS [PORTS]]
"""
import struct
import sys

out = sys.argv[1]
count = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
ports = int(sys.argv[3]) if len(sys.argv) > 3 else 0

with open("testdata/vm-traffic.pcap", "rb") as f:
    data = f.read()
magic = struct.unpack("<I", data[:4])[0]
endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
frames, off = [], 24
while off + 16 <= len(data):
    _, _, caplen, _ = struct.unpack(endian + "IIII", data[off:off + 16])
    frames.append(data[off + 16:off + 16 + caplen])
    off += 16 + caplen

template = (bytes.fromhex("0c42a1000001" "0c42a1000002" "86dd")
            + bytes.fromhex("60000000" "0000" "11" "40")
            + bytes.fromhex("20010db8000000000000000000000010")
            + bytes.fromhex("20010db8000f00000000000000000001")
            + bytes.fromhex("0bb8" "0bc2" "0000" "0000"))
assert len(template) == 62

records = [template + fr for fr in frames]
tagged = [[template[:14] + struct.pack(">I", 0x60000000 | tag) + template[18:] + fr for fr in frames]
          for tag in range(1, ports + 1)]
with open(out, "wb") as f:
    f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
    buf = []
    for i in range(count):
        r = tagged[i % ports][i % len(records)] if ports else records[i % len(records)]
        buf.append(struct.pack("<IIII", 1700000000 + i // 1000000, i % 1000000, len(r), len(r)))
        buf.append(r)
        if len(buf) >= 20000:
            f.write(b"".join(buf))
            buf = []
    f.write(b"".join(buf))
