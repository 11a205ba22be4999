"""`troly doctor`: the checks an operator runs after installing or changing the set-up.

One line per check, in Vietnamese: the configuration loads, the database answers and its
schema is at the code's migration head, the knowledge base is valid (what `troly kb check`
checks), each configured bot token is accepted (Telegram and Zalo ``getMe``) and, with a
Telegram token, where Telegram delivers updates (``getWebhookInfo``).

Every line goes through :func:`bot.logs.redact` with the configured secrets (bot tokens, the
webhook secret, the database password): an error message that carries a URL with a token
in it cannot print the token.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from bot.logs import redact
from bot.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from aiogram import Bot

__all__ = ["DEFAULT_TIMEOUT", "Check", "Status", "diagnose", "run_doctor"]

DEFAULT_TIMEOUT = 10.0  # seconds for each network call (database, Bot APIs)
_MAX_DETAIL = 300  # characters of an error message shown


class Status(Enum):
    OK = "✓"
    FAILED = "✗"
    WARNING = "!"  # worth a look, but nothing is broken
    SKIPPED = "–"  # not configured or not checkable


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str

    @property
    def failed(self) -> bool:
        return self.status is Status.FAILED

    def line(self) -> str:
        return f"{self.status.value} {self.name}: {self.detail}"


# --------------------------------------------------------------------------- helpers


def _describe(exc: BaseException) -> str:
    """A short, single-line description of an error (the driver's own one when wrapped)."""
    inner = getattr(exc, "orig", None) or exc
    text = " ".join(str(inner).split())
    if not text:
        text = type(inner).__name__
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 1] + "…"


def _where(url: str) -> str:
    """The host (and port) of a URL, without any user name or password in it."""
    parts = urlsplit(url)
    host = parts.hostname or url
    return f"{host}:{parts.port}" if parts.port else host


def _seconds(timeout: float) -> str:
    return f"{timeout:g}"


def secrets_in(settings: Settings) -> list[str]:
    """Every secret value the settings hold, for redaction."""
    from sqlalchemy.engine import make_url

    values = [
        s.get_secret_value()
        for s in (settings.telegram_bot_token, settings.zalo_bot_token, settings.webhook_secret)
        if s is not None
    ]
    try:
        password = make_url(settings.database_url).password
    except Exception:  # an unparsable URL has no password to hide; the DB check reports it
        password = None
    if password:
        values.append(str(password))
    return values


# --------------------------------------------------------------------------- checks


def check_configuration(
    loader: Callable[[], Settings] = load_settings,
) -> tuple[Check, Settings | None]:
    try:
        settings = loader()
    except SettingsError as exc:
        problems = str(exc).splitlines()[1:]  # "VARIABLE: message", never the value
        detail = "; ".join(p.strip() for p in problems) or str(exc)
        return Check("Cấu hình", Status.FAILED, f"không hợp lệ — {detail}"), None
    channels = [
        name
        for name, token in (
            ("Telegram", settings.telegram_bot_token),
            ("Zalo", settings.zalo_bot_token),
        )
        if token is not None
    ]
    mode = (
        f"webhook tại {settings.webhook_base_url}" if settings.webhook_base_url else "long polling"
    )
    if not channels:
        return (
            Check(
                "Cấu hình",
                Status.WARNING,
                "hợp lệ, nhưng chưa có token bot nào (TELEGRAM_BOT_TOKEN, ZALO_BOT_TOKEN): "
                "`troly run` sẽ chỉ mở trò chuyện trong terminal",
            ),
            settings,
        )
    return (
        Check("Cấu hình", Status.OK, f"hợp lệ (kênh: {', '.join(channels)}; chế độ: {mode})"),
        settings,
    )


def _missing_sqlite_file(backend: str, database: str) -> bool:
    return (
        backend == "sqlite"
        and database not in ("", ":memory:")
        and not database.startswith("file:")
        and not Path(database).is_file()
    )


async def check_database(settings: Settings, seconds: float = DEFAULT_TIMEOUT) -> Check:
    from sqlalchemy.engine import make_url

    from bot.services import head_revision
    from bot.storage.db import create_engine, current_revision

    name = "Cơ sở dữ liệu"
    url = make_url(settings.database_url)
    shown = url.render_as_string(hide_password=True)
    database = url.database or ""
    if _missing_sqlite_file(url.get_backend_name(), database):
        # Connecting would create an empty file: say what is missing instead.
        return Check(
            name,
            Status.FAILED,
            f"chưa có tệp {database} — chạy `troly db upgrade` để tạo ({shown})",
        )
    head = head_revision()
    engine = create_engine(settings.database_url)
    try:
        async with asyncio.timeout(seconds):
            current = await current_revision(engine)
    except TimeoutError:
        return Check(
            name,
            Status.FAILED,
            f"không kết nối được (không có phản hồi sau {_seconds(seconds)} giây; {shown})",
        )
    except Exception as exc:
        return Check(name, Status.FAILED, f"không kết nối được ({_describe(exc)}; {shown})")
    finally:
        await engine.dispose()
    if current is None:
        return Check(
            name,
            Status.FAILED,
            f"kết nối được nhưng chưa có bảng nào (chưa chạy migration) — chạy "
            f"`troly db upgrade` ({shown})",
        )
    if current != head:
        return Check(
            name,
            Status.FAILED,
            f"lược đồ ở phiên bản {current}, mã này cần {head} — chạy `troly db upgrade` ({shown})",
        )
    return Check(name, Status.OK, f"kết nối được, lược đồ mới nhất ({head}; {shown})")


def check_knowledge_base(settings: Settings) -> Check:
    from bot.cli_common import check_knowledge

    name = "Kho kiến thức"
    try:
        problems, base = check_knowledge(settings.knowledge_dir)
    except Exception as exc:  # e.g. the folder is unreadable
        return Check(name, Status.FAILED, f"không đọc được ({_describe(exc)})")
    if base is None:
        first = str(problems[0]) if problems else ""
        return Check(
            name,
            Status.FAILED,
            f"{len(problems)} lỗi, ví dụ «{first}» — xem tất cả bằng `troly kb check`",
        )
    return Check(
        name,
        Status.OK,
        f"hợp lệ ({len(base.entries)} mục, {len(base.deadlines)} hạn, "
        f"{len(base.sources)} nguồn trong {len(base.files)} tệp; {settings.knowledge_dir})",
    )


async def check_telegram(settings: Settings, seconds: float = DEFAULT_TIMEOUT) -> list[Check]:
    """``getMe`` (the token) and ``getWebhookInfo`` (where updates go)."""
    from aiogram import Bot
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer
    from aiogram.exceptions import (
        TelegramAPIError,
        TelegramNetworkError,
        TelegramNotFound,
        TelegramUnauthorizedError,
    )

    name = "Telegram"
    if settings.telegram_bot_token is None:
        return [Check(name, Status.SKIPPED, "chưa cấu hình (TELEGRAM_BOT_TOKEN trống)")]
    base_url = settings.telegram_api_base_url
    host = _where(base_url)
    no_answer = f"không có phản hồi sau {_seconds(seconds)} giây ({host})"
    session = AiohttpSession(api=TelegramAPIServer.from_base(base_url), timeout=seconds)
    bot = Bot(token=settings.telegram_bot_token.get_secret_value(), session=session)
    try:
        try:
            async with asyncio.timeout(seconds):
                me = await bot.get_me()
        except TimeoutError:
            return [Check(name, Status.FAILED, no_answer)]
        except (TelegramUnauthorizedError, TelegramNotFound) as exc:
            return [
                Check(
                    name,
                    Status.FAILED,
                    f"token bị từ chối ({_describe(exc)}) — kiểm tra TELEGRAM_BOT_TOKEN "
                    "với @BotFather",
                )
            ]
        except TelegramNetworkError as exc:
            if "timeout" in str(exc).lower():
                return [Check(name, Status.FAILED, no_answer)]
            return [Check(name, Status.FAILED, f"không kết nối được tới {host} ({_describe(exc)})")]
        except TelegramAPIError as exc:
            return [Check(name, Status.FAILED, f"Telegram báo lỗi ({_describe(exc)})")]
        checks = [Check(name, Status.OK, f"token hợp lệ (@{me.username}, id {me.id})")]
        checks.append(await _telegram_webhook(bot, settings, seconds))
        return checks
    finally:
        await bot.session.close()


async def _telegram_webhook(bot: Bot, settings: Settings, seconds: float) -> Check:
    from aiogram.exceptions import TelegramAPIError

    from bot.channels.telegram import WEBHOOK_PATH

    name = "Telegram webhook"
    try:
        async with asyncio.timeout(seconds):
            info = await bot.get_webhook_info()
    except TimeoutError:
        return Check(name, Status.FAILED, f"không có phản hồi sau {_seconds(seconds)} giây")
    except TelegramAPIError as exc:
        return Check(name, Status.FAILED, f"không đọc được ({_describe(exc)})")
    pending = f"{info.pending_update_count} cập nhật đang chờ"
    expected = f"{settings.webhook_base_url}{WEBHOOK_PATH}" if settings.webhook_base_url else None
    notes: list[str] = []
    status = Status.OK
    if not info.url:
        where = "chưa đặt"
        if expected:
            status = Status.WARNING
            notes.append(f"bot sẽ đặt {expected} khi khởi động (`troly run`)")
        else:
            notes.append("đúng với chế độ long polling")
    else:
        where = info.url
        if expected is None:
            status = Status.WARNING
            notes.append(
                "cấu hình đang là long polling (WEBHOOK_BASE_URL trống): "
                "`troly run` sẽ xoá webhook này"
            )
        elif info.url != expected:
            status = Status.WARNING
            notes.append(f"cấu hình cần {expected}; bot sẽ đặt lại khi khởi động")
    if info.last_error_message:
        status = Status.WARNING
        when = (
            f" lúc {info.last_error_date.astimezone(settings.zone):%d/%m/%Y %H:%M}"
            if info.last_error_date
            else ""
        )
        notes.append(f"lỗi gần nhất{when}: {' '.join(info.last_error_message.split())}")
    detail = f"{where}, {pending}"
    if notes:
        detail += "; " + "; ".join(notes)
    return Check(name, status, detail)


async def check_zalo(settings: Settings, seconds: float = DEFAULT_TIMEOUT) -> Check:
    from bot.channels.zalo import ZaloAPIError, ZaloClient, ZaloError

    name = "Zalo"
    if settings.zalo_bot_token is None:
        return Check(name, Status.SKIPPED, "chưa cấu hình (ZALO_BOT_TOKEN trống)")
    host = _where(settings.zalo_api_base_url)
    no_answer = f"không có phản hồi sau {_seconds(seconds)} giây ({host})"
    client = ZaloClient(
        settings.zalo_bot_token.get_secret_value(),
        base_url=settings.zalo_api_base_url,
        request_timeout=seconds,
    )
    try:
        async with asyncio.timeout(seconds):
            me = await client.get_me()
    except TimeoutError:
        return Check(name, Status.FAILED, no_answer)
    except ZaloAPIError as exc:
        if exc.code in (401, 403) or exc.status in (401, 403):
            return Check(
                name,
                Status.FAILED,
                f"token bị từ chối ({_describe(exc)}) — kiểm tra ZALO_BOT_TOKEN",
            )
        return Check(name, Status.FAILED, f"Zalo báo lỗi ({_describe(exc)})")
    except ZaloError as exc:
        if "timed out" in str(exc):
            return Check(name, Status.FAILED, no_answer)
        return Check(name, Status.FAILED, f"không kết nối được tới {host} ({_describe(exc)})")
    finally:
        await client.close()
    who = me.get("display_name") or me.get("name") or me.get("account_name") or "bot"
    return Check(name, Status.OK, f"token hợp lệ ({who}, id {me.get('id', '?')})")


# --------------------------------------------------------------------------- the run


async def diagnose(
    settings: Settings, report: Callable[[Check], None], seconds: float = DEFAULT_TIMEOUT
) -> None:
    """Run every check after the configuration one, reporting each as soon as it is done."""
    report(await check_database(settings, seconds))
    report(await asyncio.to_thread(check_knowledge_base, settings))
    for check in await check_telegram(settings, seconds):
        report(check)
    report(await check_zalo(settings, seconds))


def run_doctor(
    write: Callable[[str], None],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    loader: Callable[[], Settings] = load_settings,
) -> bool:
    """Print one line per check through ``write``; True when none failed."""
    results: list[Check] = []
    secrets: Iterable[str] = ()

    def report(check: Check) -> None:
        results.append(check)
        write(redact(check.line(), secrets))

    configuration, settings = check_configuration(loader)
    report(configuration)
    if settings is None:
        write(f"{Status.SKIPPED.value} Các kiểm tra khác: bỏ qua vì cấu hình không hợp lệ")
        return False
    secrets = secrets_in(settings)
    asyncio.run(diagnose(settings, report, timeout))
    failed = sum(check.failed for check in results)
    if failed:
        write(f"Có {failed} mục chưa đạt.")
    else:
        write("Mọi kiểm tra đều đạt.")
    return failed == 0
