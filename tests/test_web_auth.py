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
        assert throttle.blocked_for("10.0.0.1", "m", t) == 0
        throttle.failed("10.0.0.1", "m", t)
    assert throttle.blocked_for("10.0.0.1", "m", 3.0) == pytest.approx(57.0)
    assert throttle.blocked_for("10.0.0.2", "m", 3.0) == 0  # another address is not affected
    assert throttle.blocked_for("10.0.0.1", "m", 61.0) == 0  # the oldest failure left the window
    throttle.succeeded("10.0.0.1", "m")
    assert throttle.blocked_for("10.0.0.1", "m", 61.5) == 0


def test_an_ipv6_client_cannot_rotate_through_its_64() -> None:
    throttle = LoginThrottle(attempts=3, window_s=60)
    for t, host in enumerate(("2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::3")):
        throttle.failed(host, "m", float(t))
    assert throttle.blocked_for("2001:db8:1:2:abcd::9", "m", 3.0) > 0
    assert throttle.blocked_for("2001:db8:1:3::1", "m", 3.0) == 0  # another /64
    assert throttle.blocked_for("::ffff:10.0.0.1", "m", 3.0) == 0  # an IPv4 client seen over IPv6


def test_one_account_is_throttled_for_every_address_that_guessed() -> None:
    throttle = LoginThrottle(attempts=3, window_s=60, account_attempts=10)
    for n in range(10):
        throttle.failed(f"10.0.{n}.1", "m", float(n))
    assert throttle.blocked_for("10.0.3.1", "m", 10.0) > 0  # one wrong guess of its own, then the account's
    assert throttle.blocked_for("10.0.3.1", "other", 10.0) == 0
    assert throttle.blocked_for("10.9.9.9", "m", 10.0) == 0  # a clean client: never locked out


def test_the_throttle_forgets_old_failures_and_bounds_its_memory() -> None:
    throttle = LoginThrottle(attempts=3, window_s=60, max_keys=50)
    for n in range(1_000):
        throttle.failed(f"10.{n // 256}.{n % 256}.1", f"user{n}", float(n) / 100)
    assert len(throttle) <= 50
    throttle.failed("10.200.0.1", "late", 10_000.0)  # everything before is past the window
    assert len(throttle) == 2
