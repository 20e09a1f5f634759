"""`Permission.SERVER_ADMIN` and `decide_org_admin`: who manages accounts and organisations."""

from __future__ import annotations

from releasehub.access import Permission
from releasehub.access.decide import decide_org_admin, decide_subject
from releasehub.accounts.subject import ANONYMOUS, Subject

ADMIN = Subject(user_id=1, name="root", is_admin=True, scope="write")
ADMIN_READ = Subject(user_id=1, name="root", is_admin=True, scope="read")
PLAIN = Subject(user_id=2, name="ada", scope="write", org_roles={"lab": "admin", "club": "read"})
PLAIN_READ = Subject(user_id=2, name="ada", scope="read", org_roles={"lab": "admin"})


def test_server_admin_needs_an_admins_write_token() -> None:
    assert decide_subject(ADMIN, Permission.SERVER_ADMIN).allowed
    anonymous = decide_subject(ANONYMOUS, Permission.SERVER_ADMIN)
    assert (anonymous.allowed, anonymous.status) == (False, 401)
    plain = decide_subject(PLAIN, Permission.SERVER_ADMIN)
    assert (plain.allowed, plain.status, plain.error_code) == (False, 403, "Forbidden")
    assert "admin token" in plain.reason
    read = decide_subject(ADMIN_READ, Permission.SERVER_ADMIN)
    assert (read.allowed, read.status) == (False, 403) and "read-only" in read.reason


def test_org_admin_needs_write_scope_then_the_admin_role() -> None:
    assert decide_subject(PLAIN, Permission.ORG_ADMIN).allowed
    assert decide_subject(PLAIN_READ, Permission.ORG_ADMIN).status == 403
    assert decide_subject(ANONYMOUS, Permission.ORG_ADMIN).status == 401
    assert decide_org_admin(PLAIN, "lab").allowed
    member = decide_org_admin(PLAIN, "club")
    assert (member.allowed, member.status) == (False, 403)
    # An organisation the subject has no role in answers as a missing one.
    hidden, missing = decide_org_admin(PLAIN, "secret"), decide_org_admin(PLAIN, "nowhere")
    assert (hidden.status, hidden.error_code) == (missing.status, missing.error_code) == (404, "NotFound")
    assert hidden.reason.replace("secret", "X") == missing.reason.replace("nowhere", "X")
    # Their own user name is no organisation to manage.
    assert decide_org_admin(PLAIN, "ada").status == 404
    # A server admin manages every organisation, whatever their own role in it.
    assert decide_org_admin(ADMIN, "club").allowed
    assert decide_org_admin(Subject(user_id=1, name="root", is_admin=True, scope="write",
                                    org_roles={"club": "read"}), "club").allowed
