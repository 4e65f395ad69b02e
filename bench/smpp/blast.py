#!/usr/bin/env python3
"""Measures an SMSC alone: binds as a transceiver over raw TCP, keeps --window submit_sm in
flight (one pre-encoded PDU, only the sequence number changes), answers deliver_sm receipts,
and prints submit_sm_resp/s. It shows how much headroom the sink has over what Rampart asks of
it. Standard library only; it shares the CPU with the SMSC, so its figure is a floor.

  python3 bench/smpp/blast.py --port 12775 --password-file PW --messages 300000 --window 64
"""

import argparse
import socket
import struct
import time

BIND_TRANSCEIVER = 0x00000009
SUBMIT_SM = 0x00000004
DELIVER_SM = 0x00000005
UNBIND = 0x00000006
RESP = 0x80000000


def pdu(command_id, sequence, body=b""):
    return struct.pack(">IIII", 16 + len(body), command_id, 0, sequence) + body


def c_string(text):
    return text.encode() + b"\0"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12775)
    parser.add_argument("--system-id", default="rampart")
    parser.add_argument("--password-file", required=True)
    parser.add_argument("--messages", type=int, default=300_000)
    parser.add_argument("--window", type=int, default=64)
    args = parser.parse_args()
    with open(args.password_file) as f:
        password = f.read().rstrip("\r\n")

    sock = socket.create_connection((args.host, args.port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    bind = c_string(args.system_id) + c_string(password) + c_string("") + bytes([0x34, 0, 0])
    sock.sendall(pdu(BIND_TRANSCEIVER, 1, bind + c_string("")))
    buffer = bytearray()

    def read_pdus():
        data = sock.recv(1 << 20)
        if not data:
            raise SystemExit("blast.py: the SMSC closed the connection")
        buffer.extend(data)
        out = []
        while len(buffer) >= 16:
            length, command_id, status, sequence = struct.unpack_from(">IIII", buffer)
            if len(buffer) < length:
                break
            out.append((command_id, status, sequence))
            del buffer[:length]
        return out

    bound = False
    while not bound:
        for command_id, status, _ in read_pdus():
            if command_id == BIND_TRANSCEIVER | RESP:
                if status != 0:
                    raise SystemExit(f"blast.py: bind refused with status {status:#x}")
                bound = True

    # GSM-7 "hello" to a UK mobile from an alphanumeric sender, registered_delivery 1.
    body = (
        c_string("")
        + bytes([5, 0])
        + c_string("Rampart")
        + bytes([1, 1])
        + c_string("447900123456")
        + bytes([0, 0, 0])
        + c_string("")
        + c_string("")
        + bytes([1, 0, 0, 0, 5])
        + b"hello"
    )
    template = bytearray(pdu(SUBMIT_SM, 0, body))
    sent = answered = receipts = 0
    sequence = 2
    started = time.monotonic()
    while answered < args.messages:
        out = bytearray()
        while sent - answered < args.window and sent < args.messages:
            struct.pack_into(">I", template, 12, sequence)
            sequence += 1
            sent += 1
            out += template
        acks = bytearray()
        if out:
            sock.sendall(out)
        for command_id, status, seq in read_pdus():
            if command_id == SUBMIT_SM | RESP:
                if status != 0:
                    raise SystemExit(f"blast.py: submit_sm refused with status {status:#x}")
                answered += 1
            elif command_id == DELIVER_SM:
                receipts += 1
                acks += pdu(DELIVER_SM | RESP, seq, b"\0")
        if acks:
            sock.sendall(acks)
    secs = time.monotonic() - started
    print(
        f"{answered} submit_sm answered in {secs:.2f} s = {answered / secs:,.0f}/s "
        f"(window {args.window}; {receipts} receipts seen)"
    )
    sock.sendall(pdu(UNBIND, sequence))


if __name__ == "__main__":
    main()
