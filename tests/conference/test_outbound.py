"""Where the conference service may connect, what it follows, what it believes: the pure part."""

from __future__ import annotations

from pathlib import Path

import pytest

from homeport.conference.limits import WellKnownCache
from homeport.conference.outbound import (
    WELL_KNOWN_DEFAULT_SECONDS,
    WELL_KNOWN_FAILURE_SECONDS,
    WELL_KNOWN_MAX_SECONDS,
    WELL_KNOWN_MIN_SECONDS,
    delegation,
    redirect,
    refusal,
    well_known_seconds,
)
from homeport.config.conference import AddressRule, parse_address_rule
from homeport.config.loader import load_deployment_text
from homeport.errors import ConfigError

RULES = tuple(
    parse_address_rule(r) for r in ["10.1.0.0/16", "127.0.0.1:8448", "[fd00::5]:8448", "fe80::1"]
)


@pytest.mark.parametrize(
    ("address", "port", "refused_as"),
    [
        ("93.184.215.14", 443, None),
        ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", 8448, None),
        ("127.0.0.1", 443, "127.0.0.1:443 is loopback"),
        ("127.8.9.10", 8448, "127.8.9.10:8448 is loopback"),
        ("::1", 8448, "[::1]:8448 is loopback"),
        ("0.0.0.0", 8448, "0.0.0.0:8448 is unspecified"),  # noqa: S104
        ("::", 8448, "[::]:8448 is unspecified"),
        ("169.254.169.254", 80, "169.254.169.254:80 is link-local"),  # cloud metadata
        ("fe80::2", 8448, "[fe80::2]:8448 is link-local"),
        ("fe80::2%eth0", 8448, "[fe80::2]:8448 is link-local"),
        ("10.0.0.1", 8448, "10.0.0.1:8448 is private"),
        ("172.16.5.4", 8448, "172.16.5.4:8448 is private"),
        ("192.168.1.1", 8448, "192.168.1.1:8448 is private"),
        ("fd12::1", 8448, "[fd12::1]:8448 is private"),
        ("100.64.1.1", 8448, "100.64.1.1:8448 is shared (carrier-grade NAT)"),
        ("224.0.0.1", 8448, "224.0.0.1:8448 is multicast"),
        ("240.0.0.1", 8448, "240.0.0.1:8448 is private"),
        ("192.0.2.1", 8448, "192.0.2.1:8448 is private"),  # documentation range
        # IPv6 spellings of IPv4 addresses are judged by the IPv4 address.
        ("::ffff:127.0.0.1", 443, ":443 is loopback"),  # shown as Python spells it
        ("64:ff9b::a00:1", 8448, "[64:ff9b::a00:1]:8448 is private"),  # NAT64 of 10.0.0.1
        ("2002:7f00:1::", 443, "[2002:7f00:1::]:443 is loopback"),  # 6to4 of 127.0.0.1
        ("::ffff:93.184.215.14", 443, None),
        # Listed by the operator: a network, or one address on one port.
        ("10.1.2.3", 8448, None),
        ("10.2.0.1", 8448, "10.2.0.1:8448 is private"),
        ("127.0.0.1", 8448, None),
        ("::ffff:127.0.0.1", 8448, None),
        ("127.0.0.1", 8449, "127.0.0.1:8449 is loopback"),
        ("127.0.0.2", 8448, "127.0.0.2:8448 is loopback"),
        ("fd00::5", 8448, None),
        ("fd00::5", 443, "[fd00::5]:443 is private"),
        ("fe80::1", 1234, None),
        ("not-an-address", 443, "not-an-address is not an IP address"),
    ],
)
def test_only_public_or_listed_addresses_are_connected_to(
    address: str, port: int, refused_as: str | None
) -> None:
    reason = refusal(address, port, RULES)
    if refused_as is None:
        assert reason is None
    else:
        assert reason is not None
        assert refused_as in reason, reason


def test_a_refusal_names_the_setting_that_would_allow_it() -> None:
    assert refusal("127.0.0.1", 8448) == (
        "127.0.0.1:8448 is loopback, not in conference.allow_private_addresses"
    )


WK = "https://partner.example/.well-known/matrix/server"


@pytest.mark.parametrize(
    ("why", "url", "status", "location", "followed"),
    [
        (
            "same host, HTTPS",
            WK,
            302,
            "https://partner.example/wk.json",
            "https://partner.example/wk.json",
        ),
        ("relative", WK, 301, "/wk.json?v=2", "https://partner.example/wk.json?v=2"),
        (
            "explicit default port",
            WK,
            308,
            "https://partner.example:443/x",
            "https://partner.example:443/x",
        ),
        (
            "same host and port",
            "https://p.example:8443/a",
            307,
            "https://p.example:8443/b",
            "https://p.example:8443/b",
        ),
        (
            "host names are not case-sensitive",
            WK,
            303,
            "https://PARTNER.example/x",
            "https://PARTNER.example/x",
        ),
        ("plain HTTP", WK, 302, "http://partner.example/x", None),
        (
            "plain HTTP to an admin API on loopback",
            WK,
            302,
            "http://127.0.0.1:8008/_synapse/admin/v1/users",
            None,
        ),
        ("another host", WK, 302, "https://www.partner.example/x", None),
        ("a subdomain", WK, 302, "https://evil.partner.example/x", None),
        ("the host's address", WK, 302, "https://93.184.215.14/x", None),
        ("another port", WK, 302, "https://partner.example:8448/x", None),
        ("scheme-relative to another host", WK, 302, "//127.0.0.1/x", None),
        ("credentials", WK, 302, "https://user:pw@partner.example/x", None),
        ("another scheme", WK, 302, "file:///etc/passwd", None),
        ("a bad port", WK, 302, "https://partner.example:99999/x", None),
        ("no Location", WK, 302, None, None),
        ("not a redirect", WK, 200, "https://partner.example/x", None),
        ("304 is not a redirect", WK, 304, "https://partner.example/x", None),
    ],
)
def test_redirects_are_followed_only_to_https_on_the_same_host(
    why: str, url: str, status: int, location: str | None, followed: str | None
) -> None:
    assert redirect(url, status, location) == followed, why


@pytest.mark.parametrize(
    ("body", "delegated"),
    [
        (b'{"m.server": "matrix.partner.example:443"}', "matrix.partner.example:443"),
        (b'{"m.server": "Matrix.Partner.Example"}', "matrix.partner.example"),
        (b'{"m.server": "[2001:db8::1]:8448"}', "[2001:db8::1]:8448"),
        (b'{"m.server": "127.0.0.1:8008"}', "127.0.0.1:8008"),  # judged when connecting
        (b'{"m.server": ""}', None),
        (b'{"m.server": 8448}', None),
        (b'{"m.server": "https://matrix.partner.example"}', None),
        (b'{"m.server": "matrix.partner.example/path"}', None),
        (b'{"m.server": "a:b:c:x"}', None),
        (b'{"m.server": "host:0"}', None),
        (b'{"m.server": "bad host"}', None),
        (b'["m.server"]', None),
        (b"{}", None),
        (b"not json", None),
        (b"\xff\xfe", None),
    ],
)
def test_a_well_known_delegates_only_to_a_server_name(body: bytes, delegated: str | None) -> None:
    assert delegation(body) == delegated


@pytest.mark.parametrize(
    ("cache_control", "found", "seconds"),
    [
        (None, True, WELL_KNOWN_DEFAULT_SECONDS),
        ("public, max-age=7200", True, 7200),
        ('max-age="600"', True, 600),
        ("MAX-AGE=600", True, 600),
        ("s-maxage=5, max-age=900", True, 900),
        ("max-age=5", True, WELL_KNOWN_MIN_SECONDS),  # not a fetch for every check
        ("no-store", True, WELL_KNOWN_MIN_SECONDS),
        ("no-cache, max-age=7200", True, WELL_KNOWN_MIN_SECONDS),
        ("max-age=31536000", True, WELL_KNOWN_MAX_SECONDS),
        ("max-age=-1", True, WELL_KNOWN_DEFAULT_SECONDS),
        ("max-age=soon", True, WELL_KNOWN_DEFAULT_SECONDS),
        ("max-age=7200", False, WELL_KNOWN_FAILURE_SECONDS),
        (None, False, WELL_KNOWN_FAILURE_SECONDS),
    ],
)
def test_well_knowns_are_believed_for_a_bounded_time(
    cache_control: str | None, found: bool, seconds: float
) -> None:
    assert well_known_seconds(cache_control, found) == seconds


def test_well_knowns_are_remembered_until_they_expire_and_a_flood_of_names_stays_bounded() -> None:
    cache = WellKnownCache(entries=3)
    cache.put("a.example", "matrix.a.example", now=0, seconds=60)
    cache.put("b.example", None, now=0, seconds=10)
    found = cache.get("a.example", now=59)
    assert found is not None
    assert found.delegated == "matrix.a.example"
    none = cache.get("b.example", now=9)
    assert none is not None  # "no well-known" is remembered too
    assert none.delegated is None
    assert cache.get("b.example", now=10) is None
    assert cache.get("a.example", now=60) is None
    for n in range(1000):
        cache.put(f"random{n}.example", None, now=0, seconds=300)
    assert len(cache) == 3
    cache.put("c.example", None, now=0, seconds=300)
    cache.get("random998.example", now=1)  # used: kept
    cache.put("d.example", None, now=0, seconds=300)
    assert cache.get("random998.example", now=1) is not None
    assert cache.get("random999.example", now=1) is None  # the least recently used went


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("10.1.2.3", AddressRule(parse_address_rule("10.1.2.3/32").network)),
        ("10.1.0.0/16", AddressRule(parse_address_rule("10.1.0.0/16").network)),
        ("127.0.0.1:8448", AddressRule(parse_address_rule("127.0.0.1").network, 8448)),
        ("[fd00::5]:8448", AddressRule(parse_address_rule("fd00::5").network, 8448)),
        ("fd00::/8", AddressRule(parse_address_rule("fd00::/8").network)),
    ],
)
def test_address_rules(text: str, rule: AddressRule) -> None:
    assert parse_address_rule(text) == rule


CONFIG = """\
data_dir: data
homeservers:
  internal:
    server_name: localhost:8448
    port: 8448
conference:
  port: 8453
  allow_homeservers: [partner.example]
  allow_private_addresses: [10.1.0.0/16, {bad}]
"""


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ("10.1.2.3/8", "has host bits set"),
        ("'127.0.0.1:x'", "write ADDRESS:PORT"),
        ("'127.0.0.1:0'", "0 is not a port"),
        ("'10.0.0.0/8:80'", "a port goes with one address, not a network"),
        ("localhost", "does not appear to be an IPv4 or IPv6 network"),
        ("'[::1]x'", "write [IPv6]:PORT"),
    ],
)
def test_a_bad_address_rule_is_refused_with_file_line_and_key(bad: str, says: str) -> None:
    source = Path("/etc/homeport/homeport.yaml")
    with pytest.raises(ConfigError) as raised:
        load_deployment_text(CONFIG.format(bad=bad), source)
    message = str(raised.value)
    assert f"{source}:9: conference.allow_private_addresses[1]:" in message, message
    assert says in message, message
    assert "write an address (10.1.2.3), a network (10.1.0.0/16" in message
