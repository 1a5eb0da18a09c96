"""The connectors' health file: what the Stores page and /health read."""

from __future__ import annotations

from pathlib import Path

from ordersync.runtime.store_health import HealthBoard, WebhookBoard, read


def test_backfill_progress_reaches_the_file(tmp_path: Path) -> None:
    path = tmp_path / "health.json"
    board = HealthBoard(["w", "p"], str(path))
    board.backfilled("w", 100, 400)
    board.backfilled("p", 30, None, complete=True)  # PrestaShop: no total from the shop
    on_disk = read(path)
    assert (on_disk["p"].backfill_published, on_disk["p"].backfill_total, on_disk["p"].backfill_complete) == (
        30,
        None,
        True,
    )
    assert on_disk["p"].last_success is not None and on_disk["p"].consecutive_failures == 0
    board.backfilled("w", 400, 400, complete=True)
    assert read(path)["w"].backfill_complete  # the end is written at once, not throttled


def test_files_written_before_backfill_progress_existed_still_read(tmp_path: Path) -> None:
    path = tmp_path / "health.json"
    path.write_text('{"w": {"store_id": "w", "last_success": 1.0, "consecutive_failures": 0}}')
    assert read(path)["w"].backfill_published == 0


def test_the_webhook_receivers_file_joins_the_connectors(tmp_path: Path) -> None:
    path = tmp_path / "stores.health.json"
    HealthBoard(["w"], str(path)).succeeded("w")
    webhooks = WebhookBoard(str(path))
    webhooks.accepted("w")
    webhooks.accepted("only-webhooks")
    both = read(path)
    assert both["w"].last_success is not None and both["w"].last_webhook is not None
    assert both["only-webhooks"].last_webhook is not None and both["only-webhooks"].last_success is None
