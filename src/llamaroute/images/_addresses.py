"""Which addresses an image may be fetched from, and what address a URL's host really is.

The address check is written out as tables here rather than left to ``ipaddress``'s
``is_private`` / ``is_global``, whose answers differ between Python patch releases and which
take ``::127.0.0.1`` or ``64:ff9b:1::7f00:1`` for public addresses.

* IPv4: everything in the IANA special-purpose registry that is not globally reachable is
  refused (0/8, 10/8, 100.64/10, 127/8, 169.254/16, 172.16/12, 192.0.0/24, 192.0.2/24,
  192.88.99/24, 192.168/16, 198.18/15, 198.51.100/24, 203.0.113/24, 224/4, 240/4 and
  255.255.255.255).
* IPv6: only global unicast (2000::/3) may be fetched, minus its special blocks (2001::/23,
  2001:db8::/32, 2002::/16, 3fff::/20). Everything else is refused: ::/8 (so ``::1``, ``::``
  and the deprecated IPv4-compatible ``::a.b.c.d``), 100::/64, ULA fc00::/7, site-local
  fec0::/10 (deprecated, the old private range), link-local fe80::/10, multicast ff00::/8.
* IPv6 addresses that carry an IPv4 address are judged by that address as well:
  IPv4-mapped (``::ffff:a.b.c.d``) and NAT64 with the well-known prefix (``64:ff9b::a.b.c.d``)
  are judged by the IPv4 address only, so a public one passes, as it would over IPv4.
  IPv4-compatible (``::a.b.c.d``), IPv4-translated (``::ffff:0:a.b.c.d``), 6to4 (2002::/16)
  and Teredo (2001::/32, its server and its client address) are refused outright, as
  non-global; the IPv4 address inside decides only whether the refusal holds even with
  ``allow_private=True`` (a metadata or link-local address inside always refuses). NAT64
  local-use (64:ff9b:1::/48) is always refused: its translator is inside the local network
  and its prefix length, so where the IPv4 address sits, cannot be known from outside.
* Not recognised, because nothing in the address says so: NAT64 with a network-specific
  prefix that a network chose itself. Such an address is judged as the IPv6 address it is.

URL hosts are read the way a browser (the WHATWG URL standard) and the C library's
``inet_aton`` read them, so that ``http://2130706433/``, ``http://0x7f.1/``,
``http://0177.0.0.1/`` and ``http://127.1/`` are all 127.0.0.1 here, and never a name sent to
DNS. Whatever the spelling, the connection is then made to the canonical form of the address
that was checked (``str()`` of the parsed address), so the check and the connection cannot
read one host two ways.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TypeAlias

__all__ = ["IPAddress", "Verdict", "address_problem", "host_address", "judge", "parse_address"]

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class Verdict:
    """Why an address is refused. ``always``: even with ``allow_private=True``."""

    text: str
    always: bool = False


_METADATA = Verdict("a cloud metadata service address", always=True)
_UNSPECIFIED = Verdict("an unspecified address", always=True)
_MULTICAST = Verdict("a multicast address", always=True)
_BROADCAST = Verdict("a broadcast address", always=True)
_LINK_LOCAL = Verdict("a link-local address", always=True)
_LOOPBACK = Verdict("a loopback address")
_PRIVATE = Verdict("a private address")
_SHARED = Verdict("a shared (carrier-grade NAT) address")
_RESERVED = "a reserved, non-public address"

# Instance-metadata endpoints hold cloud credentials: refused even with allow_private=True.
_METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",  # AWS, GCP, Azure, Oracle, OpenStack IMDS
        "169.254.170.2",  # AWS ECS task metadata and credentials
        "169.254.170.23",  # AWS EKS Pod Identity agent (credentials)
        "100.100.100.200",  # Alibaba Cloud metadata
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "fd00:ec2::23",  # AWS EKS Pod Identity agent over IPv6
        "fd20:ce::254",  # GCP metadata over IPv6
    )
)


def _reserved(why: str) -> Verdict:
    return Verdict(f"{_RESERVED} ({why})")


def _table(
    rows: tuple[tuple[str, Verdict], ...],
) -> tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, Verdict], ...]:
    return tuple((ipaddress.ip_network(network), verdict) for network, verdict in rows)


# First match wins.
_IPV4 = _table((
    ("0.0.0.0/8", _UNSPECIFIED),  # "this network"; Linux connects 0.0.0.0 to the local host
    ("10.0.0.0/8", _PRIVATE),
    ("100.64.0.0/10", _SHARED),
    ("127.0.0.0/8", _LOOPBACK),
    ("169.254.0.0/16", _LINK_LOCAL),
    ("172.16.0.0/12", _PRIVATE),
    ("192.0.0.0/24", _reserved("IETF protocol assignments, 192.0.0.0/24")),
    ("192.0.2.0/24", _reserved("documentation, 192.0.2.0/24")),
    ("192.88.99.0/24", _reserved("the retired 6to4 relay anycast, 192.88.99.0/24")),
    ("192.168.0.0/16", _PRIVATE),
    ("198.18.0.0/15", _reserved("benchmarking, 198.18.0.0/15")),
    ("198.51.100.0/24", _reserved("documentation, 198.51.100.0/24")),
    ("203.0.113.0/24", _reserved("documentation, 203.0.113.0/24")),
    ("224.0.0.0/4", _MULTICAST),
    ("255.255.255.255/32", _BROADCAST),
    ("240.0.0.0/4", _reserved("240.0.0.0/4")),
))  # fmt: skip

_IPV6 = _table((
    ("::/128", _UNSPECIFIED),
    ("::1/128", _LOOPBACK),
    ("ff00::/8", _MULTICAST),
    ("fe80::/10", _LINK_LOCAL),
    ("fec0::/10", Verdict("a private address (site-local, fec0::/10, deprecated)")),
    ("fc00::/7", Verdict("a private address (unique local, fc00::/7)")),
    ("100::/64", _reserved("discard-only, 100::/64")),
    ("2001:db8::/32", _reserved("documentation, 2001:db8::/32")),
    ("2001::/23", _reserved("IETF protocol assignments, 2001::/23")),
    ("3fff::/20", _reserved("documentation, 3fff::/20")),
))  # fmt: skip
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")

# IPv6 forms that carry an IPv4 address. Judged by that address alone: a public one passes.
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 well-known prefix
# Refused outright, and always refused if the IPv4 address inside is.
_COMPATIBLE = ipaddress.IPv6Network("::/96")  # RFC 4291, deprecated
_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")  # RFC 2765 (SIIT)
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215 local-use
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")  # RFC 3056, deprecated by RFC 7526
_TEREDO = ipaddress.IPv6Network("2001::/32")  # RFC 4380


def address_problem(address: str, *, allow_private: bool = False) -> str | None:
    """Why llamaroute will not fetch from ``address`` (``"a loopback address"``, ...), or
    ``None`` if it may. IPv4 addresses inside IPv6 ones (mapped, compatible, translated,
    NAT64, 6to4, Teredo) are judged as the IPv4 address they carry (see the module's notes)."""
    ip = parse_address(address)
    if ip is None:
        return "not an IP address"
    verdict = judge(ip)
    if verdict is None or (allow_private and not verdict.always):
        return None
    return verdict.text


def parse_address(address: str) -> IPAddress | None:
    """An address as a resolver gives it (an IPv6 zone, ``%eth0``, is dropped), or ``None``."""
    try:
        return ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        pass
    try:
        return _ipv4_literal(address)
    except ValueError:
        return None


def host_address(host: str) -> IPAddress | None:
    """The address a URL's host is (an IPv6 literal, or IPv4 in any form a browser or
    ``inet_aton`` reads: ``2130706433``, ``0x7f.1``, ``0177.0.0.1``, ``127.1``, ``127.0.0.1.``),
    or ``None`` for a host name to resolve.

    Raises ``ValueError`` for a host that is neither: one ending in a number that is not an
    IPv4 address (``1.2.3.4.5``, ``256.1``), or with a ``%`` outside an IPv6 zone.
    """
    if ":" in host:  # only an IPv6 literal has colons in a URL's host
        return ipaddress.IPv6Address(host.split("%", 1)[0])
    if "%" in host:
        raise ValueError("a host name cannot contain '%'")
    return _ipv4_literal(host)


def judge(ip: IPAddress) -> Verdict | None:
    """Why ``ip`` is refused, or ``None`` for a public address."""
    if ip in _METADATA_ADDRESSES:
        return _METADATA
    if isinstance(ip, ipaddress.IPv4Address):
        return _lookup(_IPV4, ip)
    return _judge_ipv6(ip)


def _judge_ipv6(ip: ipaddress.IPv6Address) -> Verdict | None:
    if ip in _MAPPED:
        return _inside(ip, "an IPv4-mapped IPv6 address", _low32(ip))
    if ip in _NAT64:
        return _inside(ip, "a NAT64 address, 64:ff9b::/96", _low32(ip))
    if ip in _COMPATIBLE and int(ip) > 1:  # :: and ::1 are in the table
        form = "an IPv4-compatible IPv6 address, ::/96, deprecated"
        return _inside(ip, form, _low32(ip), refuse=True)
    if ip in _TRANSLATED:
        return _inside(ip, "an IPv4-translated IPv6 address", _low32(ip), refuse=True)
    if ip in _NAT64_LOCAL:
        return _nat64_local(ip)
    if ip in _SIX_TO_FOUR:
        assert ip.sixtofour is not None
        return _inside(ip, "a 6to4 address, 2002::/16, deprecated", ip.sixtofour, refuse=True)
    if ip in _TEREDO:
        assert ip.teredo is not None
        return _inside(ip, "a Teredo address, 2001::/32", *ip.teredo, refuse=True)
    verdict = _lookup(_IPV6, ip)
    if verdict is None and ip not in _GLOBAL_UNICAST:
        return _reserved("outside global unicast, 2000::/3")
    return verdict


def _inside(
    ip: ipaddress.IPv6Address, form: str, *carried: ipaddress.IPv4Address, refuse: bool = False
) -> Verdict | None:
    """The verdict on an IPv6 address carrying IPv4 ones: the worst verdict on what it carries
    (one that holds even with allow_private first); if they are all public, refused as
    reserved when ``refuse``, else allowed."""
    found = [(verdict, v4) for v4 in carried if (verdict := judge(v4)) is not None]
    if found:
        verdict, v4 = max(found, key=lambda pair: pair[0].always)
        return Verdict(f"{verdict.text} ({v4} inside {form})", verdict.always)
    return _reserved(form) if refuse else None


def _nat64_local(ip: ipaddress.IPv6Address) -> Verdict:
    # A local-use prefix may be any RFC 6052 length inside the /48, each placing the IPv4
    # address elsewhere, and it reaches IPv4 through a translator inside the local network:
    # which IPv4 address it means cannot be known here, so it is always refused. The message
    # names the /96 reading, the usual one.
    v4 = _low32(ip)
    carried = judge(v4)
    reading = f"{v4}, {carried.text}" if carried else str(v4)
    return Verdict(
        "a NAT64 local-use address (64:ff9b:1::/48: a translator inside the local network "
        f"picks the IPv4 address; read with a /96 prefix it is {reading})",
        always=True,
    )


def _low32(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)


def _lookup(
    table: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, Verdict], ...],
    ip: IPAddress,
) -> Verdict | None:
    for network, verdict in table:
        if ip in network:
            return verdict
    return None


_DIGITS = {8: frozenset("01234567"), 10: frozenset("0123456789"),
           16: frozenset("0123456789abcdefABCDEF")}  # fmt: skip


def _ipv4_literal(host: str) -> ipaddress.IPv4Address | None:
    # The WHATWG URL standard's IPv4 parser (which agrees with inet_aton, plus a trailing dot):
    # 1 to 4 parts, each decimal, octal (leading 0) or hex (0x); the last fills the bytes left.
    parts = host.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    final = parts[-1]
    if _number(final) is None and not (final.isascii() and final.isdigit()):
        return None  # a host name: it does not end in a number ("09" does, a bad one)
    numbers = [_number(part) for part in parts]
    if len(parts) > 4 or None in numbers:
        raise ValueError(f"{host!r} ends in a number but is not an IPv4 address")
    *head, last = [number for number in numbers if number is not None]
    if any(value > 255 for value in head) or last >= 256 ** (4 - len(head)):
        raise ValueError(f"{host!r} is out of range for an IPv4 address")
    for index, value in enumerate(head):
        last += value << (8 * (3 - index))
    return ipaddress.IPv4Address(last)


def _number(part: str) -> int | None:
    if part[:2] in ("0x", "0X"):
        digits, base = part[2:], 16
    elif len(part) > 1 and part[0] == "0":
        digits, base = part[1:], 8
    else:
        digits, base = part, 10
    if not digits:
        return 0 if base != 10 else None  # "0x" is 0 to a browser; "" is no number
    if not set(digits) <= _DIGITS[base]:
        return None
    return int(digits, base)
