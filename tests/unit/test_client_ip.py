"""Client address resolution behind trusted proxies."""

from __future__ import annotations

import re

import pytest

from fluxbase.security.client_ip import parse_networks, resolve_client_ip

PROXIES = parse_networks(["10.0.0.0/8", "127.0.0.1"])


def test_untrusted_peer_cannot_pick_its_address() -> None:
    assert resolve_client_ip("203.0.113.9", ["1.1.1.1"], PROXIES) == "203.0.113.9"


def test_no_trusted_proxies_means_the_socket_peer() -> None:
    assert resolve_client_ip("10.1.1.1", ["1.1.1.1"], ()) == "10.1.1.1"


def test_trusted_proxy_forwards_the_client() -> None:
    assert resolve_client_ip("10.0.0.2", ["198.51.100.7"], PROXIES) == "198.51.100.7"


def test_rightmost_untrusted_hop_wins_over_a_spoofed_left_part() -> None:
    # The client wrote "6.6.6.6" itself; our proxy appended the real address.
    assert resolve_client_ip("10.0.0.2", ["6.6.6.6, 198.51.100.7, 10.0.0.3"], PROXIES) == "198.51.100.7"


def test_missing_header_falls_back_to_the_peer() -> None:
    assert resolve_client_ip("10.0.0.2", [], PROXIES) == "10.0.0.2"


def test_garbled_hop_falls_back_to_the_peer() -> None:
    assert resolve_client_ip("10.0.0.2", ["not-an-ip"], PROXIES) == "10.0.0.2"


def test_bad_network_is_named() -> None:
    with pytest.raises(ValueError, match=re.escape("'10.0.0.0/99'")):
        parse_networks(["10.0.0.0/99"])
