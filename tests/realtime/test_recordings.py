"""The hub's reading of recording settings (pure helpers of realtime/recordings.py)."""

from pathlib import Path

from realtime.recordings import DEFAULT_RETENTION_DAYS, download_roles, file_of, retention_days


def test_retention_days_default_and_bad_values_fall_back():
    assert retention_days(None) == DEFAULT_RETENTION_DAYS
    assert retention_days({"recordings": "forever"}) == DEFAULT_RETENTION_DAYS
    assert retention_days({"recordings": {"retention_days": 30}}) == 30.0
    assert retention_days({"recordings": {"retention_days": 0.5}}) == 0.5
    for bad in (-1, "30", True, None, [1]):
        assert retention_days({"recordings": {"retention_days": bad}}) == DEFAULT_RETENTION_DAYS, bad


def test_download_roles_default_to_admins():
    assert download_roles({}) == {"admin"}
    assert download_roles({"recordings": {"download_roles": ["admin", "supervisor"]}}) == {"admin", "supervisor"}
    assert download_roles({"recordings": {"download_roles": "supervisor"}}) == {"admin"}


def test_only_plain_file_names_lead_into_the_folder():
    assert file_of("/r", "ab.ogg") == Path("/r/ab.ogg")
    for bad in (None, "", "../x.ogg", "/etc/passwd", "a/b.ogg", ".hidden"):
        assert file_of("/r", bad) is None, bad
