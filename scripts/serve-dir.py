#!/usr/bin/env python3
"""Serve a directory over HTTP on 127.0.0.1, quietly, for benchmarks and e2e
scripts.

usage: serve-dir.py DIR PORT

`python3 -m http.server` listens with a backlog of 5. A client that opens
more connections at once (rootstrap downloads 8 packages in parallel) then
overflows the accept queue, and Linux leaves each overflowing connection to
the server's 1 s SYN-ACK retransmission: a 1 s stall no real mirror (nginx
and Apache listen with 511) would cause. This server listens with 128.
"""
import functools
import http.server
import sys


class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 128
    daemon_threads = True


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


def main():
    directory, port = sys.argv[1], int(sys.argv[2])
    handler = functools.partial(QuietHandler, directory=directory)
    with Server(("127.0.0.1", port), handler) as server:
        server.serve_forever()


if __name__ == "__main__":
    main()
