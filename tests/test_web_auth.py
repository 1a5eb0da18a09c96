"""Access rules of the web app that need no server: account, binding, redirects, login throttle."""

from __future__ import annotations

import pytest

from ordersync.runtime.settings import Settings
from ordersync.web.auth import Access, LoginThrottle, safe_next


def access(**env: str) -> Access:
    return Access.from_settings(Settings.from_env(env))


def test_without_an_account_only_loopback() -> None:
    assert access().problem("127.0.0.1") is None
    assert access().problem("::1") is None
    assert "not a loopback address" in (access().problem("0.0.0.0") or "")
    assert "not a loopback address" in (access().problem("192.168.1.5") or "")


def test_an_account_allows_any_address_and_checks_its_password() -> None:
    account = access(ORDERSYNC_WEB_USER="m", ORDERSYNC_WEB_PASSWORD="pw", ORDERSYNC_WEB_LISTS="1, 3")
    assert account.problem("0.0.0.0") is None
    assert account.check("m", "pw") and not account.check("m", "PW") and not account.check("x", "pw")
    assert account.lists == ("1", "3") and account.sees("3") and not account.sees("2")
    assert "both" in (access(ORDERSYNC_WEB_USER="m").problem("127.0.0.1") or "")


def test_no_account_never_logs_in() -> None:
    assert not access().check("", "")


@pytest.mark.parametrize(
    ("target", "goes_to"),
    [("/segments/3", "/segments/3"), ("https://evil.example", "/contacts"), ("//evil.example", "/contacts"),
     ("/\\evil.example", "/contacts"), (None, "/contacts")],
)  # fmt: skip
def test_after_login_only_paths_of_this_app(target: str | None, goes_to: str) -> None:
    assert safe_next(target) == goes_to


def test_wrong_passwords_slow_down_one_address_for_the_window() -> None:
    throttle = LoginThrottle(attempts=3, window_s=60)
    for t in (0.0, 1.0, 2.0):
        assert throttle.blocked_for("a", t) == 0
        throttle.failed("a", t)
    assert throttle.blocked_for("a", 3.0) == pytest.approx(57.0)
    assert throttle.blocked_for("b", 3.0) == 0  # another address is not affected
    assert throttle.blocked_for("a", 61.0) == 0  # the oldest failure left the window
    throttle.succeeded("a")
    assert throttle.blocked_for("a", 61.5) == 0
