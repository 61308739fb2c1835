"""Run localstripe bound to one host, its store pickled to a file of our choosing.

`localstripe --port N` listens on every interface (IPv4 and IPv6) and pickles its store to the
hard-coded /tmp/localstripe.pickle, shared by every checkout on the machine. This entry point builds
the same aiohttp app but binds it to --host and keeps the store at --store.

    python -m controlplane.devstack.localstripe_server --host 127.0.0.1 --port 8420 --store store.pickle
"""

from __future__ import annotations

import argparse
import logging
import os
import pickle
from pathlib import Path


def keep_store_at(store: dict[str, object], path: Path) -> None:
    """Point localstripe's Store (a dict that pickles itself on every write) at `path`."""

    def load() -> None:
        try:
            with path.open("rb") as f:
                saved = pickle.load(f)  # noqa: S301  # nosec B301 - our own file, written by dump() below
        except FileNotFoundError:
            return
        store.clear()
        store.update(saved)

    def dump() -> None:
        tmp = path.with_name(f".{path.name}.tmp")  # atomic: a kill mid-write keeps the last good store
        with tmp.open("wb") as f:
            pickle.dump(dict(store), f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)

    # Instance attributes shadow the Store methods that hard-code /tmp/localstripe.pickle.
    store.try_load_from_disk = load  # type: ignore[attr-defined]
    store.dump_to_disk = dump  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--store", type=Path, required=True)
    args = parser.parse_args()

    from aiohttp import web
    from localstripe.resources import store
    from localstripe.server import app

    from controlplane.devstack.connect_transfers import add_transfer_routes

    keep_store_at(store, args.store)
    store.try_load_from_disk()
    add_transfer_routes(app, store)
    logging.basicConfig(level=logging.INFO)
    web.run_app(app, host=args.host, port=args.port, access_log=logging.getLogger("aiohttp.access"))


if __name__ == "__main__":
    main()
