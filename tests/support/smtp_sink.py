"""A real SMTP server for the tests: accepts every message and writes it to a directory.

Usage: python3 smtp_sink.py PORT DIR
Each accepted message becomes DIR/<n>.eml holding the envelope recipients on the first line
("RCPT: a@b, c@d") followed by the raw message.
"""
import asyncio
import itertools
import pathlib
import sys

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, directory):
        self.directory = pathlib.Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        # A restarted sink continues the numbering: it must not overwrite what it took before.
        taken = [int(p.stem) for p in self.directory.glob("*.eml") if p.stem.isdigit()]
        self.counter = itertools.count(max(taken, default=0) + 1)

    async def handle_DATA(self, server, session, envelope):
        n = next(self.counter)
        body = envelope.original_content or envelope.content
        if isinstance(body, str):
            body = body.encode()
        tmp = self.directory / f".{n}.tmp"
        tmp.write_bytes(b"RCPT: " + ", ".join(envelope.rcpt_tos).encode() + b"\n" + body)
        tmp.rename(self.directory / f"{n}.eml")
        return "250 Message accepted for delivery"


def main():
    port, directory = int(sys.argv[1]), sys.argv[2]
    controller = Controller(Sink(directory), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    try:
        asyncio.get_event_loop().run_forever()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
