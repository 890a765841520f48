#!/usr/bin/env python3
"""Makes testdata/corpus/derived/ from the corpus's own captures.

Each derived file puts a real capture into a form users meet (another
container, a snap length, a timestamp resolution, fragments) that the
projects' test captures lack. Run from testdata/corpus:

    python3 derived/derive.py

It needs editcap (wireshark-common) and gzip; its output is deterministic.
README.md says what each file is for.
"""

import gzip
import struct
import subprocess

LINKTYPE_ETHERNET = 1


def read_pcap(path):
    """Returns (linktype, nanosecond, [(sec, frac, origlen, data)])."""
    b = open(path, "rb").read()
    magic = struct.unpack("<I", b[:4])[0]
    nano = {0xA1B2C3D4: False, 0xA1B23C4D: True}[magic]
    linktype = struct.unpack("<I", b[20:24])[0]
    pkts, off = [], 24
    while off < len(b):
        sec, frac, incl, orig = struct.unpack("<IIII", b[off:off + 16])
        pkts.append((sec, frac, orig, b[off + 16:off + 16 + incl]))
        off += 16 + incl
    return linktype, nano, pkts


def write_pcap(path, linktype, pkts, snaplen=262144):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, linktype))
        for sec, usec, orig, data in pkts:
            f.write(struct.pack("<IIII", sec, usec, len(data), orig) + data)


def pad4(b):
    return b + b"\0" * (-len(b) % 4)


def block(kind, body):
    n = 12 + len(body)
    return struct.pack("<II", kind, n) + body + struct.pack("<I", n)


def write_pcapng_pow2(path, linktype, pkts, exp):
    """Writes pkts (microsecond timestamps) to a pcapng whose interface has
    if_tsresol 2^-exp (the high bit set), each timestamp rounded down to
    a whole unit."""
    shb = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    opts = struct.pack("<HH", 9, 1) + pad4(bytes([0x80 | exp]))
    opts += struct.pack("<HH", 0, 0)
    idb = block(1, struct.pack("<HHI", linktype, 0, 0) + opts)
    with open(path, "wb") as f:
        f.write(shb + idb)
        for sec, usec, orig, data in pkts:
            ts = (sec << exp) + (usec << exp) // 1000000
            body = struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(data), orig)
            f.write(block(6, body + pad4(data)))


def ipv4_udp_dport(frame, port):
    """Sets the UDP destination port of an Ethernet/IPv4/UDP frame and
    zeroes its checksum (optional over IPv4)."""
    ihl = (frame[14] & 0x0F) * 4
    udp = 14 + ihl
    return frame[:udp + 2] + struct.pack(">H", port) + frame[udp + 4:udp + 6] + b"\0\0" + frame[udp + 8:]


def ipv6_fragments(frame, mtu, ident):
    """Splits an Ethernet/IPv6 frame's payload into fragments of at most
    mtu bytes of IPv6 packet each (RFC 8200 §4.5)."""
    eth, ip6, payload = frame[:14], frame[14:54], frame[54:]
    nxt = ip6[6]
    step = (mtu - 40 - 8) // 8 * 8
    out = []
    for off in range(0, len(payload), step):
        chunk = payload[off:off + step]
        more = 1 if off + step < len(payload) else 0
        fh = struct.pack(">BBHI", nxt, 0, off | more, ident)
        hdr = ip6[:4] + struct.pack(">H", 8 + len(chunk)) + bytes([44]) + ip6[7:]
        out.append(eth + hdr + fh + chunk)
    return out


def editcap(*args):
    subprocess.run(["editcap", *args], check=True)


def main():
    # pcapng with power-of-two timestamp resolutions (if_tsresol 0x94, 0x9e).
    lt, _, pkts = read_pcap("tcpdump/geneve.pcap")
    write_pcapng_pow2("derived/geneve-tsresol-2-30.pcapng", lt, pkts, 30)
    lt, _, pkts = read_pcap("tcpdump/vxlan.pcap")
    write_pcapng_pow2("derived/vxlan-tsresol-2-20.pcapng", lt, pkts, 20)

    # Containers: gzip-compressed pcapng, the modified (Kuznetzov) pcap.
    editcap("-F", "pcapng", "tcpdump/vxlan.pcap", "derived/vxlan.pcapng")
    raw = open("derived/vxlan.pcapng", "rb").read()
    with open("derived/vxlan.pcapng.gz", "wb") as f:
        with gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0) as g:
            g.write(raw)
    subprocess.run(["rm", "derived/vxlan.pcapng"], check=True)
    editcap("-F", "modpcap", "tcpdump/vxlan.pcap", "derived/vxlan-modified.pcap")

    # Snap lengths: cut 10 bytes into the inner frame; and cut a frame
    # that has a 4-byte outer Ethernet trailer (an FCS) after its IP packet.
    editcap("-s", "60", "tcpdump/vxlan.pcap", "derived/vxlan-snap60.pcap")
    lt, _, pkts = read_pcap("tcpdump/vxlan.pcap")
    trailer = [(s, u, o + 4, d + b"\0\0\0\0") for s, u, o, d in pkts]
    write_pcap("derived/vxlan-trailer-snap100.pcap", lt,
               [(s, u, o, d[:100]) for s, u, o, d in trailer], snaplen=100)

    # VXLAN-GPE carrying NSH moved to VXLAN's port 4789.
    lt, _, pkts = read_pcap("tcpdump/nsh-over-vxlan-gpe.pcap")
    write_pcap("derived/nsh-over-vxlan-gpe-port-4789.pcap", lt,
               [(s, u, o, ipv4_udp_dport(d, 4789)) for s, u, o, d in pkts])

    # Outer IPv6 fragments: the 6,986-byte GENEVE envelope cut into
    # fragments of a 1,280-byte MTU, sent last fragment first.
    lt, _, pkts = read_pcap("tcpdump/gso-ipv6-geneve-ipv6.pcap")
    s, u, _, d = pkts[0]
    frags = ipv6_fragments(d, 1280, 0x12345678)
    frags = [frags[-1]] + frags[:-1]
    write_pcap("derived/geneve-ipv6-fragments.pcap", lt,
               [(s, u + i, len(f), f) for i, f in enumerate(frags)])


if __name__ == "__main__":
    main()
