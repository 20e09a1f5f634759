"""Where a request comes from, by the operator's GeoIP database (MaxMind's .mmdb format).

Optional: releasehub ships no database (they are licensed and change monthly). When the
operator names one (`RELEASEHUB_GEOIP_DATABASE`), country rules check the located country as
well as the declared one.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import maxminddb


class GeoIP:
    def __init__(self, path: str | Path) -> None:
        self._reader = maxminddb.open_database(str(path))

    def country(self, ip: str) -> str | None:
        """ISO alpha-2 code of the address, or None (private, unknown or not in the database)."""
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return None
        record = self._reader.get(str(address))
        if not isinstance(record, dict):
            return None
        country = record.get("country") or record.get("registered_country")
        if isinstance(country, dict) and isinstance(country.get("iso_code"), str):
            return str(country["iso_code"]).upper()
        return None

    def close(self) -> None:
        self._reader.close()
