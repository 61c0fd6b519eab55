#!/usr/bin/python3
"""Decode the Session-Sender packets of a pcap with scapy.contrib.stamp.

Usage: scapy_decode.py PCAP

Prints one JSON line per UDP packet to port 862: sequence number, SSID,
the Error Estimate's S and Z bits, T1 as Unix seconds, and the TLVs.
"""
import json
import sys

from scapy.contrib.stamp import (STAMPSessionReflectorTestUnauthenticated,
                                 STAMPSessionSenderTestUnauthenticated)
from scapy.layers.inet import UDP
from scapy.utils import rdpcap

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


def main():
    for pkt in rdpcap(sys.argv[1]):
        if UDP not in pkt or pkt[UDP].dport != 862:
            continue
        # Re-dissect from the UDP header (scapy 2.5.0 needs the UDP length).
        s = UDP(bytes(pkt[UDP]))[STAMPSessionSenderTestUnauthenticated]
        ee = s.err_estimate
        raw = int(s.getfieldval("ts"))
        # NTP: seconds since 1900 and a binary fraction; PTP: seconds, ns.
        ts = raw / 2**32 - NTP_OFFSET if ee.Z == 0 else (raw >> 32) + (raw & 0xffffffff) / 1e9
        print(json.dumps({
            "seq": s.seq, "ssid": s.ssid, "s": ee.S, "z": ee.Z, "ts": ts,
            "tlvs": [{"flags": int(t.flags), "type": t.type, "value": bytes(t.value).hex()}
                     for t in s.tlv_objects],
        }))


if __name__ == "__main__":
    main()
