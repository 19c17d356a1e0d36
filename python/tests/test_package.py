"""The package's shape: exports, version, stubs, typing marker, exception hierarchy."""

from __future__ import annotations

import importlib.metadata
import pathlib

import sessionward as sw
from sessionward import _native

PACKAGE = pathlib.Path(sw.__file__).parent


def test_all_is_explicit_and_complete() -> None:
    assert len(sw.__all__) == len(set(sw.__all__))
    for name in sw.__all__:
        assert hasattr(sw, name), name
    for name in _native.__all__:
        assert name in sw.__all__, f"{name} is not re-exported"
    for name in ("jobs", "credentials"):
        module = importlib.import_module(f"sessionward.{name}")
        for public in module.__all__:
            assert public in sw.__all__, f"sessionward.{name}.{public} is not re-exported"


def test_version_matches_the_installed_distribution() -> None:
    assert sw.__version__ == importlib.metadata.version("sessionward")


def test_stub_and_typing_marker_are_shipped() -> None:
    assert (PACKAGE / "py.typed").exists()
    stub = (PACKAGE / "_native.pyi").read_text()
    for name in _native.__all__:
        assert name in stub, name


def test_exception_hierarchy() -> None:
    refusals = [
        sw.MalformedToken,
        sw.UnknownSession,
        sw.SessionExpired,
        sw.SessionEnded,
        sw.IpMismatch,
        sw.IpNotAllowed,
        sw.StepUpRequired,
    ]
    for cls in refusals:
        assert issubclass(cls, sw.SessionError) and issubclass(cls, sw.SessionwardError)
        assert cls.__module__ == "sessionward" and cls.__doc__
    for cls in (sw.SettingsError, sw.InvalidInput, sw.AlreadyExists, sw.ProfileInUse):
        assert issubclass(cls, ValueError) and issubclass(cls, sw.SessionwardError)
    for cls in (sw.UnknownUser, sw.UnknownProfile):
        assert issubclass(cls, LookupError)
    assert issubclass(sw.EntropyError, OSError)
    assert not issubclass(sw.SessionError, ValueError)


def test_token_constants_and_helpers() -> None:
    assert sw.TOKEN_PREFIX == "swd_" and sw.TOKEN_LEN == 64
    assert sw.MAX_PAGE_SIZE == 10_000
    assert not sw.is_well_formed("swd_nope") and not sw.is_well_formed(None)
    assert sw.redact_tokens("nothing here") == "nothing here"
