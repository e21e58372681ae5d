"""The shared Tornado peer over HTTPS: the reference for pistatsd's ``--tls``.

    /tmp/benchvenv/bin/python bench/peers_tls.py PORT CERT KEY [SHARED_PEERS_DIR]

Imports ``make_app`` and the sampler of ``../shared/bench/peers/tornado_peer.py``
(nothing is copied) and listens on 127.0.0.1:PORT with TLS, using the same
certificate and key as the pistatsd it is compared with.  One process, like
the plain peer; the broadcast callback is not started (HTTP only here).
"""

import asyncio
import os
import ssl
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


async def main(port, cert, key, peers_dir):
    sys.path.insert(0, peers_dir)
    import tornado_peer
    from tornado.ioloop import PeriodicCallback

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    tornado_peer.make_app().listen(port, address="127.0.0.1", ssl_options=ctx)
    PeriodicCallback(tornado_peer.sampler.sample, 1000).start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    peers = (
        sys.argv[4]
        if len(sys.argv) > 4
        else os.path.join(HERE, "..", "..", "shared", "bench", "peers")
    )
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3], os.path.abspath(peers)))
