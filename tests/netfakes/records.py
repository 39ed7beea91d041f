"""RDAP JSON shaped like the real answers of the five RIRs and of a domain registry.

Trimmed from the structure of real answers (rdap.db.ripe.net, rdap.arin.net,
rdap.apnic.net, rdap.lacnic.net, rdap.afrinic.net, rdap.verisign.com): the same
nesting of entities, vCards, cidr0 prefixes, notices and links; the values are made up.
"""

from __future__ import annotations

import ipaddress
from typing import Any


def _vcard(fn: str, *, kind: str = "org", email: str | None = None,
           address: str | None = None) -> list[Any]:
    props: list[Any] = [["version", {}, "text", "4.0"], ["fn", {}, "text", fn],
                        ["kind", {}, "text", kind]]
    if address:
        props.append(["adr", {"label": address}, "text", ["", "", "", "", "", "", ""]])
    if email:
        props.append(["email", {}, "text", email])
    return ["vcard", props]


def _range(prefix: str) -> dict[str, Any]:
    network = ipaddress.ip_network(prefix)
    return {"startAddress": str(network.network_address),
            "endAddress": str(network.broadcast_address),
            "ipVersion": f"v{network.version}"}


def _cidr0(prefix: str) -> list[dict[str, Any]]:
    network = ipaddress.ip_network(prefix)
    key = "v4prefix" if network.version == 4 else "v6prefix"
    return [{key: str(network.network_address), "length": network.prefixlen}]


def _links(base: str, path: str) -> list[dict[str, Any]]:
    return [{"value": f"{base}{path}", "rel": "self", "href": f"{base}{path}",
             "type": "application/rdap+json"}]


NOTICE = [{"title": "Terms and Conditions",
           "description": ["This is test data served on loopback."],
           "links": [{"value": "https://example.net/terms", "rel": "terms-of-service",
                      "href": "https://example.net/terms", "type": "text/html"}]}]


def ripe_network(prefix: str, *, name: str = "EXAMPLE-NET", country: str = "NL",
                 org: str = "Example Hosting B.V.", abuse_email: str | None = "abuse@example.nl",
                 base: str = "https://rdap.db.ripe.net/") -> dict[str, Any]:
    network = ipaddress.ip_network(prefix)
    entities: list[dict[str, Any]] = [
        {"handle": "ORG-EH1-RIPE", "vcardArray": _vcard(org, address="Amsterdam\nNETHERLANDS"),
         "roles": ["registrant"], "objectClassName": "entity",
         "links": _links(base, "entity/ORG-EH1-RIPE")},
        {"handle": "EH1-RIPE", "roles": ["administrative", "technical"],
         "objectClassName": "entity", "links": _links(base, "entity/EH1-RIPE")},
    ]
    if abuse_email:
        entities.append({"handle": "AR1-RIPE", "vcardArray": _vcard(
            "Abuse contact", kind="group", email=abuse_email), "roles": ["abuse"],
            "objectClassName": "entity", "links": _links(base, "entity/AR1-RIPE")})
    return {
        "handle": f"{network.network_address} - {network.broadcast_address}",
        **_range(prefix), "name": name, "type": "ASSIGNED PA", "country": country,
        "parentHandle": "0.0.0.0 - 255.255.255.255",
        "cidr0_cidrs": _cidr0(prefix), "entities": entities,
        "links": _links(base, f"ip/{prefix}"),
        "events": [{"eventAction": "registration", "eventDate": "2012-03-01T10:00:00Z"},
                   {"eventAction": "last changed", "eventDate": "2023-05-04T09:12:00Z"}],
        "rdapConformance": ["cidr0", "rdap_level_0", "nro_rdap_profile_0", "redacted"],
        "notices": NOTICE, "port43": "whois.ripe.net", "objectClassName": "ip network",
        "status": ["active"],
    }


def arin_network(prefix: str, *, name: str = "EXAMPLE-1", org: str = "Example Cloud Inc.",
                 abuse_email: str | None = "abuse@example.com",
                 origin_asns: list[int] | None = None,
                 base: str = "https://rdap.arin.net/registry/") -> dict[str, Any]:
    """ARIN: no country on the network; the abuse entity nests inside the registrant;
    the origin ASNs are listed (arin_originas0)."""
    nested = []
    if abuse_email:
        nested.append({"handle": "ABUSE123-ARIN", "vcardArray": _vcard(
            "Abuse", kind="group", email=abuse_email), "roles": ["abuse"],
            "objectClassName": "entity", "links": _links(base, "entity/ABUSE123-ARIN")})
    body: dict[str, Any] = {
        "rdapConformance": ["nro_rdap_profile_0", "rdap_level_0", "cidr0", "arin_originas0"],
        "notices": NOTICE, "handle": "NET-" + prefix.replace(".", "-").replace("/", "-"),
        **_range(prefix), "name": name, "type": "DIRECT ALLOCATION",
        "parentHandle": "NET-0-0-0-0-0",
        "events": [{"eventAction": "registration", "eventDate": "2014-03-14T16:52:05-04:00"}],
        "links": _links(base, f"ip/{prefix}"),
        "entities": [{"handle": "EXC-1", "vcardArray": _vcard(
            org, address="1 Main Street\nSeattle\nWA\n98101\nUnited States"),
            "roles": ["registrant"], "entities": nested, "objectClassName": "entity",
            "links": _links(base, "entity/EXC-1")}],
        "port43": "whois.arin.net", "status": ["active"], "objectClassName": "ip network",
        "cidr0_cidrs": _cidr0(prefix),
    }
    if origin_asns:
        body["arin_originas0_originautnums"] = origin_asns
    return body


def apnic_network(prefix: str, *, name: str = "EXAMPLE-AP", country: str = "AU",
                  org: str = "Example Pty Ltd", abuse_email: str | None = "abuse@example.au",
                  base: str = "https://rdap.apnic.net/") -> dict[str, Any]:
    entities: list[dict[str, Any]] = [
        {"handle": "ORG-EPL1-AP", "vcardArray": _vcard(org), "roles": ["registrant"],
         "objectClassName": "entity"},
    ]
    if abuse_email:
        entities.append({"handle": "IRT-EXAMPLE-AU", "vcardArray": _vcard(
            "IRT-EXAMPLE-AU", kind="group", email=abuse_email), "roles": ["abuse"],
            "objectClassName": "entity"})
    return {
        "handle": f"{ipaddress.ip_network(prefix).network_address} - "
                  f"{ipaddress.ip_network(prefix).broadcast_address}",
        **_range(prefix), "name": name, "type": "ASSIGNED PORTABLE", "country": country,
        "parentHandle": "0.0.0.0 - 255.255.255.255", "cidr0_cidrs": _cidr0(prefix),
        "entities": entities, "remarks": [{"title": "description",
                                           "description": ["Example network"]}],
        "links": _links(base, f"ip/{prefix}"), "events": [],
        "rdapConformance": ["history_version_0", "nro_rdap_profile_0", "cidr0",
                            "rdap_level_0"],
        "notices": NOTICE, "port43": "whois.apnic.net", "objectClassName": "ip network",
        "status": ["active"],
    }


def lacnic_network(prefix: str, *, country: str = "BR", org: str = "Exemplo Ltda",
                   abuse_email: str | None = "abuse@exemplo.com.br",
                   base: str = "https://rdap.lacnic.net/rdap/") -> dict[str, Any]:
    """LACNIC: no cidr0; the range only as start and end addresses."""
    nested = []
    if abuse_email:
        nested.append({"handle": "EXA2", "vcardArray": _vcard(
            "Abuse Exemplo", kind="individual", email=abuse_email), "roles": ["abuse"],
            "objectClassName": "entity"})
    return {
        "rdapConformance": ["rdap_level_0", "nro_rdap_profile_0"],
        "notices": NOTICE, "handle": prefix, **_range(prefix), "name": "EXEMPLO",
        "type": "ALLOCATED PA", "country": country, "parentHandle": "0.0.0.0/0",
        "entities": [{"handle": "BR-EXLT-LACNIC", "vcardArray": _vcard(org),
                      "roles": ["registrant"], "entities": nested,
                      "objectClassName": "entity"}],
        "links": _links(base, f"ip/{prefix}"), "events": [], "status": ["active"],
        "port43": "whois.lacnic.net", "objectClassName": "ip network",
    }


def afrinic_network(prefix: str, *, country: str = "ZA", org: str = "Example (Pty) Ltd",
                    abuse_handle: str | None = "AFRINIC-ABUSE-1",
                    base: str = "https://rdap.afrinic.net/rdap/") -> dict[str, Any]:
    """AFRINIC: the abuse role names an entity by handle only; its e-mail is in the
    entity's own answer (/entity/<handle>)."""
    entities: list[dict[str, Any]] = [
        {"handle": "ORG-EX1-AFRINIC", "vcardArray": _vcard(org), "roles": ["registrant"],
         "objectClassName": "entity"},
    ]
    if abuse_handle:
        entities.append({"handle": abuse_handle, "roles": ["abuse"],
                         "objectClassName": "entity",
                         "links": _links(base, f"entity/{abuse_handle}")})
    return {
        "handle": f"{ipaddress.ip_network(prefix).network_address} - "
                  f"{ipaddress.ip_network(prefix).broadcast_address}",
        **_range(prefix), "name": "EXAMPLE-ZA", "type": "ASSIGNED PA", "country": country,
        "cidr0_cidrs": _cidr0(prefix), "entities": entities,
        "links": _links(base, f"ip/{prefix}"), "events": [],
        "rdapConformance": ["rdap_level_0", "cidr0"], "notices": NOTICE,
        "port43": "whois.afrinic.net", "objectClassName": "ip network", "status": ["active"],
    }


def entity(handle: str, *, name: str = "Abuse desk", email: str | None = "abuse@example.za"
           ) -> dict[str, Any]:
    return {"handle": handle, "vcardArray": _vcard(name, kind="group", email=email),
            "roles": ["abuse"], "objectClassName": "entity",
            "rdapConformance": ["rdap_level_0"], "notices": NOTICE}


def domain(name: str, *, registrar: str = "Example Registrar, Inc.",
           registrar_abuse_email: str | None = "abuse@registrar.example",
           nameservers: tuple[str, ...] = ("ns1.example.net", "ns2.example.net"),
           base: str = "https://rdap.verisign.com/com/v1/") -> dict[str, Any]:
    """Verisign-style: the registrar entity, its abuse contact nested without a handle."""
    abuse = []
    if registrar_abuse_email:
        abuse.append({"objectClassName": "entity", "roles": ["abuse"], "vcardArray": [
            "vcard", [["version", {}, "text", "4.0"], ["fn", {}, "text", ""],
                      ["tel", {"type": "voice"}, "uri", "tel:+1.5555551234"],
                      ["email", {}, "text", registrar_abuse_email]]]})
    return {
        "objectClassName": "domain", "handle": f"{abs(hash(name)) % 10**9}_DOMAIN_COM-VRSN",
        "ldhName": name.upper(), "links": _links(base, f"domain/{name.upper()}"),
        "status": ["client transfer prohibited"],
        "entities": [{"objectClassName": "entity", "handle": "9999", "roles": ["registrar"],
                      "publicIds": [{"type": "IANA Registrar ID", "identifier": "9999"}],
                      "vcardArray": ["vcard", [["version", {}, "text", "4.0"],
                                               ["fn", {}, "text", registrar]]],
                      "entities": abuse}],
        "events": [{"eventAction": "registration", "eventDate": "2001-01-01T00:00:00Z"}],
        "secureDNS": {"delegationSigned": False},
        "nameservers": [{"objectClassName": "nameserver", "ldhName": ns.upper()}
                        for ns in nameservers],
        "rdapConformance": ["rdap_level_0", "icann_rdap_technical_implementation_guide_0"],
        "notices": NOTICE,
    }
