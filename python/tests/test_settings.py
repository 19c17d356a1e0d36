"""OrgSettings and Profile: ranges, messages, read-only properties, replace()."""

from __future__ import annotations

import ipaddress
from datetime import timedelta

import pytest

import sessionward as sw

M = timedelta(minutes=1)
H = timedelta(hours=1)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (14 * M, "inactivity_timeout: 14m is outside the allowed range 15m..=24h"),
        (24 * H + M, "inactivity_timeout: 24h 1m is outside the allowed range 15m..=24h"),
        (timedelta(0), "inactivity_timeout: 0s is outside the allowed range 15m..=24h"),
    ],
)
def test_inactivity_timeout_out_of_range_is_refused_with_the_core_message(
    value: timedelta, message: str
) -> None:
    with pytest.raises(sw.SettingsError) as refused:
        sw.OrgSettings(inactivity_timeout=value)
    assert str(refused.value) == message
    assert isinstance(refused.value, ValueError)
    assert isinstance(refused.value, sw.SessionwardError)


@pytest.mark.parametrize("value", [15 * M, 2 * H, 24 * H])
def test_inactivity_timeout_inside_the_range_is_kept(value: timedelta) -> None:
    assert sw.OrgSettings(inactivity_timeout=value).inactivity_timeout == value


def test_max_session_length_range() -> None:
    for ok in (H, 24 * H):
        assert sw.OrgSettings(max_session_length=ok).max_session_length == ok
    for bad, shown in ((59 * M, "59m"), (24 * H + M, "24h 1m")):
        with pytest.raises(sw.SettingsError, match=f"max_session_length: {shown} is outside"):
            sw.OrgSettings(max_session_length=bad)


def test_negative_and_wrong_typed_durations() -> None:
    with pytest.raises(sw.SettingsError, match="inactivity_timeout: .* is negative"):
        sw.OrgSettings(inactivity_timeout=timedelta(minutes=-30))
    with pytest.raises(TypeError, match="inactivity_timeout: expected datetime.timedelta, got int"):
        sw.OrgSettings(inactivity_timeout=1800)  # type: ignore[arg-type]


def test_defaults_and_read_only_properties() -> None:
    settings = sw.OrgSettings()
    assert settings.inactivity_timeout == 2 * H
    assert settings.max_session_length == 12 * H
    assert settings.force_relogin_on_browser_close is False
    assert settings.lock_sessions_to_ip is False
    assert settings.enforce_login_ranges_every_request is False
    assert settings.trusted_ranges == ()
    assert settings.high_assurance_operations == frozenset()
    assert settings.method_levels[sw.LoginMethod.PASSWORD] == sw.SecurityLevel.STANDARD
    assert settings.method_levels[sw.LoginMethod.MFA] == sw.SecurityLevel.HIGH_ASSURANCE
    assert settings.level_for(sw.LoginMethod.CLIENT_CREDENTIALS) == sw.SecurityLevel.LOW
    with pytest.raises(AttributeError):
        settings.inactivity_timeout = H  # type: ignore[misc]


def test_ranges_accept_strings_and_ipaddress_networks_and_are_normalized() -> None:
    settings = sw.OrgSettings(
        trusted_ranges=[
            "10.1.2.3/8",
            ipaddress.ip_network("2001:db8::/32"),
            "::ffff:192.168.0.0/112",
        ]
    )
    assert settings.trusted_ranges == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("192.168.0.0/16"),
        ipaddress.ip_network("2001:db8::/32"),
    )


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "banana", "", "10.0.0/8", "x" * 10_000])
def test_bad_ranges_are_settings_errors_naming_the_field(bad: str) -> None:
    with pytest.raises(sw.SettingsError, match="trusted_ranges") as refused:
        sw.OrgSettings(trusted_ranges=[bad])
    assert len(str(refused.value)) < 200, "the value is echoed shortened"


def test_a_single_string_for_a_list_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="single str"):
        sw.OrgSettings(trusted_ranges="10.0.0.0/8")
    with pytest.raises(TypeError, match="single str"):
        sw.OrgSettings(high_assurance_operations="setup")
    with pytest.raises(TypeError, match="trusted_ranges: expected str"):
        sw.OrgSettings(trusted_ranges=[42])  # type: ignore[list-item]


def test_method_levels_override_and_type_checks() -> None:
    settings = sw.OrgSettings(
        method_levels={sw.LoginMethod.SSO: sw.SecurityLevel.HIGH_ASSURANCE}
    )
    assert settings.level_for(sw.LoginMethod.SSO) == sw.SecurityLevel.HIGH_ASSURANCE
    assert settings.level_for(sw.LoginMethod.PASSWORD) == sw.SecurityLevel.STANDARD
    with pytest.raises(TypeError, match="keys must be LoginMethod"):
        sw.OrgSettings(method_levels={"sso": sw.SecurityLevel.LOW})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="values must be SecurityLevel"):
        sw.OrgSettings(method_levels={sw.LoginMethod.SSO: 2})  # type: ignore[dict-item]


def test_replace_changes_only_what_is_given_and_validates() -> None:
    base = sw.OrgSettings(inactivity_timeout=30 * M, high_assurance_operations=["setup"])
    changed = base.replace(lock_sessions_to_ip=True)
    assert changed.lock_sessions_to_ip and not base.lock_sessions_to_ip
    assert changed.inactivity_timeout == 30 * M
    assert changed.high_assurance_operations == {"setup"}
    assert changed != base and base.replace() == base
    with pytest.raises(sw.SettingsError):
        base.replace(inactivity_timeout=10 * M)


def test_profile_overrides_and_ranges() -> None:
    profile = sw.Profile(
        "admins",
        session_timeout=15 * M,
        max_session_length=H,
        login_ranges=["203.0.113.0/24"],
        required_level=sw.SecurityLevel.HIGH_ASSURANCE,
        max_sessions_per_user=3,
        on_session_cap=sw.CapAction.REFUSE_NEW,
    )
    assert profile.name == "admins"
    assert profile.session_timeout == 15 * M
    assert profile.max_session_length == H
    assert profile.login_ranges == (ipaddress.ip_network("203.0.113.0/24"),)
    assert profile.required_level == sw.SecurityLevel.HIGH_ASSURANCE
    assert profile.max_sessions_per_user == 3
    assert profile.on_session_cap == sw.CapAction.REFUSE_NEW
    assert profile.allows("203.0.113.9") and not profile.allows(ipaddress.ip_address("10.0.0.1"))
    plain = sw.Profile("p")
    assert plain.session_timeout is None and plain.max_sessions_per_user is None
    assert plain.login_ranges == ()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"session_timeout": 14 * M}, "session_timeout: 14m is outside the allowed range"),
        ({"session_timeout": 24 * H + M}, "session_timeout: 24h 1m is outside"),
        ({"max_session_length": 59 * M}, "max_session_length: 59m is outside"),
        ({"required_level": sw.SecurityLevel.LOW}, "required_level: LOW is outside"),
        ({"max_sessions_per_user": 0}, "max_sessions_per_user: 0 is outside"),
        ({"max_sessions_per_user": 1001}, "max_sessions_per_user: 1001 is outside"),
        ({"max_sessions_per_user": -1}, "max_sessions_per_user: -1 is outside"),
        ({"max_sessions_per_user": 2**80}, "max_sessions_per_user: 1208925819614629174706176"),
        ({"login_ranges": ["nope"]}, "login_ranges"),
    ],
)
def test_profile_refusals(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(sw.SettingsError, match=message):
        sw.Profile("p", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["", "x" * 257, "a\nb"])
def test_profile_names_are_checked(name: str) -> None:
    with pytest.raises(sw.SettingsError, match="profile"):
        sw.Profile(name)


def test_profile_boundaries_accepted() -> None:
    assert sw.Profile("p", session_timeout=15 * M).session_timeout == 15 * M
    assert sw.Profile("p", session_timeout=24 * H).session_timeout == 24 * H
    assert sw.Profile("p", max_sessions_per_user=1000).max_sessions_per_user == 1000


def test_enums_have_names_codes_and_order() -> None:
    assert sw.SecurityLevel.LOW < sw.SecurityLevel.STANDARD < sw.SecurityLevel.HIGH_ASSURANCE
    assert sw.LoginMethod.CLIENT_CREDENTIALS.code == "client_credentials"
    assert sw.LoginMethod.from_code("mfa") == sw.LoginMethod.MFA
    assert sw.EndReason.PASSWORD_RESET.name == "PASSWORD_RESET"
    assert str(sw.EndReason.PASSWORD_RESET) == "password_reset"
    assert len(sw.EndReason.members()) == 9
    assert {sw.SessionType.UI: 1}[sw.SessionType.UI] == 1
    with pytest.raises(sw.InvalidInput, match="LoginMethod"):
        sw.LoginMethod.from_code("telepathy")
    assert repr(sw.SessionType.OAUTH2) == "SessionType.OAUTH2"
