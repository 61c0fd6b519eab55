#!/usr/bin/python3
"""Independent STAMP Session-Sender built with scapy (scapy.contrib.stamp).

Usage: scapy_sender.py DST PORT COUNT SSID

Sends COUNT unauthenticated Session-Sender packets with SSID and TLVs (Extra
Padding, Location asking for the Source and Destination IP, Class of Service, and an
unassigned type 200) from [fd00:1::1]:40001 with DSCP 46, then prints one
JSON line per reflected packet as scapy dissects it.
"""
import json
import socket
import sys
import time

from scapy.contrib.stamp import (ErrorEstimate, STAMPSessionReflectorTestUnauthenticated,
                                 STAMPSessionSenderTestUnauthenticated, STAMPTestTLV)
from scapy.layers.inet import UDP
from scapy.packet import Raw

NTP_OFFSET = 2208988800


def _fix_tlv_length():
    """scapy 2.5.0 sizes tlv_objects from pkt.parent, which is still None
    while a packet is being dissected, so any packet longer than 44 octets
    fails to dissect. Size it from the UDP underlayer instead."""
    for cls in (STAMPSessionSenderTestUnauthenticated, STAMPSessionReflectorTestUnauthenticated):
        for f in cls.fields_desc:
            if f.name == "tlv_objects":
                f.length_from = lambda pkt: pkt.underlayer.len - 8 - 44


_fix_tlv_length()
SRC, SPORT = "fd00:1::1", 40001


def tlv(typ, value):
    return STAMPTestTLV(flags=0, type=typ, len=len(value), value=value)


def sender_packet(seq, ssid):
    tlvs = [
        tlv(1, b"\x00" * 20),                                   # Extra Padding
        tlv(2, b"\x00" * 4 + bytes([0, 7, 0, 16]) + b"\x00" * 16  # Location: Source
            + bytes([0, 4, 0, 16]) + b"\x00" * 16),              # and Destination IP
        tlv(4, bytes([46 << 2, 0, 0, 0])),                       # CoS DSCP1=46
        tlv(200, b"\xca\xfe"),                                   # unassigned
    ]
    return STAMPSessionSenderTestUnauthenticated(
        seq=seq, ts=time.time() + NTP_OFFSET,
        err_estimate=ErrorEstimate(S=0, Z=0, scale=0, multiplier=1),
        ssid=ssid, tlv_objects=tlvs)


def main():
    dst, port, count, ssid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, 46 << 2)
    s.bind((SRC, SPORT))
    s.settimeout(2)
    for seq in range(count):
        s.sendto(bytes(sender_packet(seq, ssid)), (dst, port))
        data, _ = s.recvfrom(4096)
        # The TLV list is sized from the UDP length: dissect the payload
        # under a UDP header, never on its own.
        udp = UDP(bytes(UDP(sport=port, dport=SPORT) / Raw(data)))
        r = udp[STAMPSessionReflectorTestUnauthenticated]
        print(json.dumps({
            "seq": r.seq, "seq_sender": r.seq_sender, "ssid": r.ssid,
            "ttl_sender": r.ttl_sender, "ts": int(r.getfieldval("ts")), "ts_rx": int(r.getfieldval("ts_rx")), "len": len(data),
            "tlvs": [{"flags": int(t.flags), "type": t.type, "value": bytes(t.value).hex()}
                     for t in r.tlv_objects],
        }))
        time.sleep(0.01)


if __name__ == "__main__":
    main()
