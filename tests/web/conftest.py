"""An in-process site for the page tests: the real app over an ASGI client, on SQLite and PostgreSQL.

`site.browser(user)` signs in through the sign-in form (password) and keeps the session cookie,
as a browser does; `site.csrf(page)` reads a form's CSRF token from a page.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest
from fastapi.testclient import TestClient

from releasehub import publishing
from releasehub.access import service as access_service
from releasehub.accounts import service as accounts
from releasehub.accounts import sessions
from releasehub.app import create_app
from releasehub.repos import service as repos
from releasehub.services import Services
from releasehub.settings import Settings

PASSWORD = "a long test password"
_CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')


def csrf(html: str) -> str:
    match = _CSRF.search(html)
    assert match is not None, "no CSRF field on the page"
    return match.group(1)


@dataclass
class Site:
    services: Services
    client: TestClient
    clients: list[TestClient] = field(default_factory=list)

    def user(self, name: str | None = None, *, admin: bool = False, email: str | None = None) -> str:
        name = name or f"u{uuid.uuid4().hex[:8]}"
        with self.services.db.session() as session:
            accounts.create_user(session, name, admin=admin, email=email)
            sessions.set_password(session, name, PASSWORD)
        return name

    def token(self, user: str, scope: str = "write") -> str:
        with self.services.db.session() as session:
            _, secret = accounts.create_token(session, user, scope=scope)
        return secret

    def org(self, name: str, owner: str) -> str:
        with self.services.db.session() as session:
            accounts.create_org(session, name, owner=owner)
        return name

    def member(self, org: str, user: str, role: str = "write") -> None:
        with self.services.db.session() as session:
            accounts.add_member(session, org, user, role)

    def browser(self, user: str | None = None) -> TestClient:
        """A new client (its own cookie jar); signed in as `user` through the sign-in form."""
        # Not entered: the app's lifespan runs once, in the site's own client; this one only has its own cookies.
        client = TestClient(self.client.app, base_url="http://testserver")
        self.clients.append(client)
        if user is not None:
            page = client.get("/login")
            answer = client.post("/login", data={"csrf_token": csrf(page.text), "username": user,
                                                 "password": PASSWORD, "next": "/"}, follow_redirects=False)
            assert answer.status_code == 303, answer.text
        return client

    def repo(self, owner: str, name: str | None = None, *, files: dict[str, bytes] | None = None,
             visibility: str = "public", policy: dict[str, Any] | None = None, title: str = "Add files",
             gated: str | None = None) -> str:
        """A repo of `owner` with `files` committed by `owner` (as the commit endpoint does), `policy` set
        (as `PUT /policy` does) and gated ("auto" or "manual", as the settings route does)."""
        name = name or f"m{uuid.uuid4().hex[:6]}"
        with self.services.db.session() as session:
            repo = repos.create_repo(session, self.services.store, owner, name, author=owner, visibility=visibility)
            session.commit()
            if files:
                owner_subject = _subject(session, owner)
                operations: list[repos.Operation] = []
                for path, data in files.items():
                    if path.endswith((".safetensors", ".bin", ".gguf")):
                        sha = self.services.store.put_bytes(data)
                        repos.insert_blob_rows(session, [(sha, len(data))])
                        repos.record_claims(session, repo.id, owner_subject.user_id or 0, [sha])
                        operations.append(repos.AddLfs(path, sha, len(data)))
                    else:
                        operations.append(repos.AddRegular(path, data))
                publishing.commit(session, self.services.store, repo, owner_subject, branch=repos.DEFAULT_BRANCH,
                                  operations=operations, title=title)
            repo = repos.get_repo(session, owner, name)
            if policy is not None:
                access_service.set_policy(session, repo, policy, owner)
            if gated is not None:
                access_service.update_settings(session, repo, visibility=None, gated=gated, actor=owner)
            session.commit()
            return f"{owner}/{name}"


def _subject(session: Any, user: str) -> Any:
    from releasehub.accounts.subject import Subject

    row = accounts.get_user(session, user)
    roles = {m.org.name: m.role for m in row.memberships}
    return Subject(user_id=row.id, name=row.name, is_admin=row.is_admin, scope="write", org_roles=roles)


@pytest.fixture(scope="session")
def web_postgres_url(postgres_url: str) -> Iterator[str]:
    """A PostgreSQL database of the web tests' own. They empty its tables before each test, which
    must never touch the database the session's servers share: emptying that one replaced the
    signing key under a running server (its xorb links then failed the tests that sign their own)."""
    import psycopg

    base, name = postgres_url.rsplit("/", 1)
    web = f"{name}_web"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{web}"')
        conn.execute(f'CREATE DATABASE "{web}"')
    yield f"{base}/{web}"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{web}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    database_url = request.getfixturevalue("web_postgres_url") if request.param == "postgres" else ""
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url)
    services = Services.build(settings)
    if database_url:
        _empty_postgres(services)
    app = create_app(settings, services)
    with TestClient(app) as client:
        built = Site(services, client)
        yield built
        for extra in built.clients:
            extra.close()


def _empty_postgres(services: Services) -> None:
    """The web tests' PostgreSQL database is shared by them all: start each from empty tables."""
    from releasehub.db import Base

    with services.db.engine.begin() as conn:
        names = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
        conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    services.signing_key = __import__("releasehub.services", fromlist=["load_signing_key"]).load_signing_key(services.db)
