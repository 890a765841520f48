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
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113


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


def write_pcapng_sections(path, sections):
    """Writes a pcapng of several sections, each a list of interfaces
    (linktype, if_tsresol exponent of ten, [(sec, usec, origlen, data)]),
    each interface's packets in turn."""
    with open(path, "wb") as f:
        for interfaces in sections:
            f.write(block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)))
            for linktype, exp, _ in interfaces:
                opts = struct.pack("<HH", 9, 1) + pad4(bytes([exp])) + struct.pack("<HH", 0, 0)
                f.write(block(1, struct.pack("<HHI", linktype, 0, 0) + opts))
            for i, (_, exp, pkts) in enumerate(interfaces):
                for sec, usec, orig, data in pkts:
                    ts = sec * 10**exp + usec * 10**exp // 1000000
                    body = struct.pack("<IIIII", i, ts >> 32, ts & 0xFFFFFFFF, len(data), orig)
                    f.write(block(6, body + pad4(data)))


def write_pcapng_simple(path, linktype, pkts):
    """Writes pkts as pcapng simple packet blocks, which carry no time."""
    with open(path, "wb") as f:
        f.write(block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)))
        f.write(block(1, struct.pack("<HHI", linktype, 0, 0)))
        for _, _, orig, data in pkts:
            f.write(block(3, struct.pack("<I", orig) + pad4(data)))


def ipv4_checksum(hdr):
    hdr = hdr[:10] + b"\0\0" + hdr[12:]
    s = sum(struct.unpack(">%dH" % (len(hdr) // 2), hdr))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return hdr[:10] + struct.pack(">H", ~s & 0xFFFF) + hdr[12:]


def vxlan_to_tzsp(frame, count):
    """Rewraps the Ethernet frame of an Ethernet/IPv4/UDP/VXLAN envelope
    in TZSP (version 1, a received packet, Ethernet) to UDP 37008, with
    a padding byte, a packet-count tag and the end tag."""
    ihl = (frame[14] & 0x0F) * 4
    udp = 14 + ihl
    ulen = struct.unpack(">H", frame[udp + 4:udp + 6])[0]
    inner = frame[udp + 16:udp + ulen]
    tzsp = bytes([1, 0, 0, 1, 0, 40, 4]) + struct.pack(">I", count) + bytes([1])
    payload = tzsp + inner
    udph = frame[udp:udp + 2] + struct.pack(">HHH", 37008, 8 + len(payload), 0)
    ip = frame[14:udp]
    ip = ip[:2] + struct.pack(">H", ihl + 8 + len(payload)) + ip[4:]
    return frame[:14] + ipv4_checksum(ip) + udph + payload


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

    # pcapng of two sections and three link types: GENEVE over Ethernet
    # (microseconds); then VXLAN over LINKTYPE_RAW (nanoseconds) and
    # ERSPAN II over LINUX_SLL (microseconds).
    _, _, geneve = read_pcap("tcpdump/geneve.pcap")
    _, _, vxlan = read_pcap("tcpdump/vxlan.pcap")
    _, _, erspan = read_pcap("zeek/erspanII.pcap")
    raw = [(s, u, o - 14, d[14:]) for s, u, o, d in vxlan]
    sll = [(s, u, o + 2, struct.pack(">HHH", 0, 1, 6) + d[6:12] + b"\0\0" + d[12:]) for s, u, o, d in erspan]
    write_pcapng_sections("derived/sections-linktypes.pcapng", [
        [(LINKTYPE_ETHERNET, 6, geneve[:10])],
        [(LINKTYPE_RAW, 9, raw), (LINKTYPE_LINUX_SLL, 6, sll)],
    ])

    # VLAN tags on the outer frames: an 802.1ad tag then an 802.1Q one.
    qinq = [(s, u, o + 8, d[:12] + struct.pack(">HHHH", 0x88A8, 100, 0x8100, 200) + d[12:]) for s, u, o, d in vxlan]
    write_pcap("derived/vxlan-qinq.pcap", LINKTYPE_ETHERNET, qinq)

    # pcapng simple packet blocks: no timestamps.
    write_pcapng_simple("derived/vxlan-simple-blocks.pcapng", LINKTYPE_ETHERNET, vxlan)

    # TZSP, which no project's suite has a capture of: the VXLAN
    # envelopes' frames rewrapped.
    lt, _, pkts = read_pcap("tcpdump/vxlan.pcap")
    tzsp = [vxlan_to_tzsp(d, i) for i, (_, _, _, d) in enumerate(pkts)]
    write_pcap("derived/tzsp.pcap", lt,
               [(s, u, len(t), t) for (s, u, _, _), t in zip(pkts, tzsp)])

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
