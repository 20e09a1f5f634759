"""GeoIP country lookup from a MaxMind-format database written by the test (no download)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from mmdb_writer import MMDBWriter
from netaddr import IPSet

from releasehub.access.eligibility import Applicant, check_eligibility
from releasehub.access.geoip import GeoIP
from releasehub.access.policy import Eligibility


def write_db(path: Path) -> Path:
    writer = MMDBWriter(ip_version=4, database_type="GeoIP2-Country")
    writer.insert_network(IPSet(["127.0.0.0/24"]), {"country": {"iso_code": "DE"}})
    writer.insert_network(IPSet(["10.1.0.0/16"]), {"country": {"iso_code": "NO"}})
    writer.to_db_file(str(path))
    return path


def test_lookup_and_country_rules(tmp_path: Path) -> None:
    geo = GeoIP(write_db(tmp_path / "country.mmdb"))
    try:
        assert geo.country("127.0.0.1") == "DE"
        assert geo.country("10.1.2.3") == "NO"
        assert geo.country("192.0.2.1") is None
        assert geo.country("not an address") is None
    finally:
        geo.close()
    # A declared country outside the EU does not help when the request comes from inside it.
    rules = Eligibility(eu_disallowed=True)
    refusal = check_eligibility(rules, Applicant({"Country": "Norway"}, geo_country="DE"), date(2026, 1, 1))
    assert refusal is not None and refusal.rule == "eu_disallowed" and "GeoIP" in refusal.message
    assert check_eligibility(rules, Applicant({"Country": "Norway"}, geo_country="NO"), date(2026, 1, 1)) is None
