"""The reference of bench/head_rps.py: a bare FastAPI app served exactly like `releasehub serve`.

One async GET/HEAD route with the same URL shape as `/resolve/`, returning a tiny Response, and no
auth, no database, no middleware. It is served by granian with the options that
`releasehub.cli.serve.run_server` uses (ASGI interface, factory, 1 worker, default loop and
threads, no access log), so the difference to releasehub is the application's own work.

    .venv/bin/python bench/bare_app.py --port 8123
"""

from __future__ import annotations

import argparse

from fastapi import FastAPI, Response

BODY = b'{"model_type": "bench"}\n'


def create_app() -> FastAPI:
    app = FastAPI()

    @app.api_route("/{namespace}/{repo}/resolve/{revision}/{path:path}", methods=["GET", "HEAD"])
    async def resolve(namespace: str, repo: str, revision: str, path: str) -> Response:
        return Response(BODY, media_type="application/json")

    # Informational only: the same route as a sync `def`, so FastAPI runs it in its threadpool
    # (releasehub's /resolve also does one threadpool hop for its database work).
    @app.api_route("/sync/{namespace}/{repo}/resolve/{revision}/{path:path}", methods=["GET", "HEAD"])
    def resolve_sync(namespace: str, repo: str, revision: str, path: str) -> Response:
        return Response(BODY, media_type="application/json")

    @app.get("/api/health")
    def health() -> dict:
        return {"status": "ok"}

    return app


def main() -> None:
    from granian import Granian
    from granian.constants import Interfaces

    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    Granian(
        "bare_app:create_app",
        factory=True,
        address=args.host,
        port=args.port,
        interface=Interfaces.ASGI,
        workers=args.workers,
        log_access=False,
    ).serve()


if __name__ == "__main__":
    main()
