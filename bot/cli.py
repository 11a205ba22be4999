"""The ``troly`` command line (also ``python -m bot``)."""

from __future__ import annotations

import json
import sys
from collections.abc import Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from bot.cli_common import (
    check_knowledge,
    err,
    fail,
    get_settings,
    load_knowledge_or_exit,
    out,
    run_db,
    secrets_of,
)

__all__ = ["app", "main"]

app = typer.Typer(
    name="troly",
    help="Trợ lý Kết luận: trả lời câu hỏi của cán bộ, theo dõi tiến độ, nhắc việc. "
    "Answers officials' questions, tracks progress, sends reminders.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
kb_app = typer.Typer(help="Kho kiến thức — the knowledge base.", no_args_is_help=True)
db_app = typer.Typer(help="Lược đồ cơ sở dữ liệu — the database schema.", no_args_is_help=True)
app.add_typer(kb_app, name="kb")
app.add_typer(db_app, name="db")


def _register_admin_commands() -> None:
    from bot import cli_admin, cli_audit

    cli_admin.register(app)
    cli_audit.register(app)


# --------------------------------------------------------------------------- run / chat


@app.command()
def run() -> None:
    """Chạy trợ lý trên mọi kênh có token; chưa có kênh nào thì trò chuyện tại đây.

    Run every channel that has a token; with none, start the terminal chat.
    """
    from bot.logs import setup_logging
    from bot.runner import run_assistant

    settings = get_settings()
    setup_logging(settings.log_level, secrets_of(settings), settings.log_format)
    knowledge = load_knowledge_or_exit(settings)
    _run_app(run_assistant(settings, knowledge, notice=err))


@app.command()
def chat() -> None:
    """Trò chuyện với trợ lý trong cửa sổ dòng lệnh. Chat with the assistant in the terminal."""
    from bot.logs import setup_logging
    from bot.runner import run_terminal

    settings = get_settings()
    setup_logging("WARNING", secrets_of(settings), settings.log_format)
    knowledge = load_knowledge_or_exit(settings)
    _run_app(run_terminal(settings, knowledge))


def _run_app(coro: Coroutine[Any, Any, None]) -> None:
    """Run the assistant; problems found on start become clear errors, not tracebacks."""
    from bot.runner import run_event_loop
    from bot.services import SchemaError
    from knowledge import KnowledgeError

    try:
        run_db(coro, runner=run_event_loop)
    except KeyboardInterrupt:
        pass
    except KnowledgeError as exc:  # a tasks file is invalid
        for problem in exc.problems:
            err.print(str(problem), markup=False)
        fail(
            "Định nghĩa nhiệm vụ có lỗi (các dòng trên), trợ lý không khởi động với các "
            "định nghĩa này."
        )
    except (SchemaError, RuntimeError) as exc:  # RuntimeError: e.g. Telegram refused the token
        fail(str(exc))


@app.command()
def ask(
    questions: Annotated[
        list[str] | None,
        typer.Argument(
            help="Câu hỏi; không có thì đọc mỗi dòng stdin một câu / "
            "questions; one per line on stdin when none."
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Mỗi câu một dòng JSON / one JSON object per question.")
    ] = False,
    conversation: Annotated[
        bool,
        typer.Option(
            "--conversation",
            help="Các câu hỏi là một cuộc trò chuyện / the questions are the turns of one "
            "conversation (follow-ups such as "
            "«còn cấp tỉnh thì sao?» refer to the question before); default: each is alone.",
        ),
    ] = False,
) -> None:
    """Trả lời câu hỏi từ kho kiến thức (dùng trong tập lệnh; không lưu gì).

    Answer questions from the knowledge base (scriptable; nothing is stored).
    """
    from bot.render import numbered, plain_text
    from handlers.qa import result_reply

    settings = get_settings()
    knowledge = load_knowledge_or_exit(settings)
    items = questions or [line.rstrip("\n") for line in sys.stdin if line.strip()]
    previous = None
    for question in items:
        result = knowledge.search(question, previous)
        if conversation:
            previous = result.turn
        answer = plain_text(numbered(result_reply(result)))
        if as_json:
            record = {
                "question": question,
                "matched": result.matched,
                "answer": answer,
                "entry_id": result.entry.id if result.matched and result.entry else None,
                "score": result.score,
                "citation": result.entry.citation if result.matched and result.entry else None,
                "suggestions": [{"entry_id": e.id, "title": e.title} for e in result.suggestions],
            }
            sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
        else:
            sys.stdout.write(f"? {question}\n{answer}\n\n")
    sys.stdout.flush()


# --------------------------------------------------------------------------- doctor


@app.command(
    help="Kiểm tra trước khi chạy: cấu hình, cơ sở dữ liệu (đã migration đến bản mới nhất), "
    "kho kiến thức, token bot Telegram/Zalo và webhook Telegram. Mỗi mục một dòng; mã thoát 1 "
    "khi có mục chưa đạt.\n\n"
    "Operator checks: configuration, database reachable and migrated to head, knowledge base, "
    "Telegram/Zalo bot tokens and the Telegram webhook. One line per check; exit code 1 when "
    "any check fails. Secrets are never printed.",
    short_help="Kiểm tra cài đặt / check the installation.",
)
def doctor(
    timeout: Annotated[
        float,
        typer.Option(
            min=0.1,
            help="Số giây chờ mỗi lần gọi mạng / seconds to wait for each network call.",
        ),
    ] = 10.0,
) -> None:
    from bot.doctor import run_doctor

    def write(line: str) -> None:
        out.print(line, markup=False)

    if not run_doctor(write, timeout=timeout):
        raise typer.Exit(1)


# --------------------------------------------------------------------------- kb


@kb_app.command("check")
def kb_check(
    directory: Annotated[
        Path | None, typer.Argument(help="Mặc định / default: KNOWLEDGE_DIR.")
    ] = None,
) -> None:
    """Kiểm tra các tệp kiến thức; mỗi lỗi một dòng tệp:dòng: lỗi, mã thoát 1 khi có lỗi.

    Validate knowledge files; print file:line: problem for each, exit 1 if any.
    """
    directory = directory or get_settings().knowledge_dir
    problems, base = check_knowledge(directory)
    for problem in problems:
        sys.stdout.write(f"{problem}\n")
    if base is None:
        err.print(f"Có {len(problems)} lỗi trong kho kiến thức.", markup=False)
        raise typer.Exit(1)
    out.print(
        f"Kho kiến thức hợp lệ: {len(base.entries)} mục, {len(base.deadlines)} hạn, "
        f"{len(base.sources)} nguồn trong {len(base.files)} tệp ({directory}).",
        markup=False,
    )


@kb_app.command("build")
def kb_build() -> None:
    """Validate and index the knowledge base once, keeping the result in KNOWLEDGE_CACHE_DIR
    (e.g. while building an image), so that `troly run` starts without indexing.
    Kiểm tra và lập chỉ mục kho kiến thức một lần, lưu vào KNOWLEDGE_CACHE_DIR."""
    settings = get_settings()
    if settings.knowledge_cache_dir is None:
        fail("KNOWLEDGE_CACHE_DIR đang trống: không có chỗ lưu chỉ mục")
    knowledge = load_knowledge_or_exit(settings)
    out.print(
        f"Đã lập chỉ mục {len(knowledge.base.entries)} mục kiến thức, lưu tại "
        f"{settings.knowledge_cache_dir}.",
        markup=False,
    )


@kb_app.command("unanswered")
def kb_unanswered(
    limit: Annotated[int, typer.Option(help="Số nhóm câu hỏi / how many groups to list.")] = 20,
    days: Annotated[int, typer.Option(help="Số ngày gần đây / look back this many days.")] = 30,
) -> None:
    """Câu hỏi chưa trả lời được, gộp các câu gần giống nhau (như trang «Câu hỏi chưa trả lời»).

    The most frequent questions the knowledge base could not answer, near-duplicates grouped
    (the web console's «Câu hỏi chưa trả lời»).
    """
    from bot.core import utcnow
    from bot.storage.db import create_engine, make_session_factory
    from handlers.formatting import vn_datetime, vn_number
    from handlers.questions import Unanswered, group_questions, unanswered_questions

    settings = get_settings()

    async def fetch() -> list[Unanswered]:
        engine = create_engine(settings.database_url)
        try:
            async with make_session_factory(engine)() as session:
                since = utcnow() - timedelta(days=days)
                return await unanswered_questions(session, since=since)
        finally:
            await engine.dispose()

    groups = group_questions(run_db(fetch()))
    if not groups:
        out.print(f"Không có câu hỏi nào chưa trả lời trong {days} ngày qua.", markup=False)
        return
    table = Table(title=f"Câu hỏi chưa trả lời, {days} ngày qua")
    table.add_column("Số lần", justify="right")
    table.add_column("Câu hỏi (cách hỏi nhiều nhất)")
    table.add_column("Lần hỏi gần nhất")
    table.add_column("Gợi ý đã đưa ra")
    for group in groups[:limit]:
        assert group.last_asked is not None
        text = group.text[:200]
        if group.variants:
            text += f" (và {vn_number(len(group.wordings) - 1)} cách hỏi khác)"
        offered = "; ".join(f"{title} ({times})" for title, times in group.offered[:3])
        table.add_row(
            vn_number(group.count),
            text,
            vn_datetime(group.last_asked.astimezone(settings.zone)),
            offered or "—",
        )
    out.print(table)
    asked = sum(group.count for group in groups)
    out.print(f"{vn_number(asked)} lượt hỏi, {vn_number(len(groups))} nhóm câu hỏi.", markup=False)


# --------------------------------------------------------------------------- db


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Nâng cấp lược đồ cơ sở dữ liệu (chạy lại nhiều lần không sao).

    Apply database migrations (idempotent).
    """
    from bot.storage.db import create_engine, current_revision, upgrade_database

    settings = get_settings()

    async def upgrade() -> str | None:
        engine = create_engine(settings.database_url)
        try:
            await upgrade_database(engine, revision)
            return await current_revision(engine)
        finally:
            await engine.dispose()

    current = run_db(upgrade())
    out.print(f"Lược đồ cơ sở dữ liệu đang ở phiên bản {current}.", markup=False)


@db_app.command("current")
def db_current() -> None:
    """Phiên bản lược đồ của cơ sở dữ liệu. Show the database's schema revision."""
    from bot.services import head_revision
    from bot.storage.db import create_engine, current_revision

    settings = get_settings()

    async def current() -> str | None:
        engine = create_engine(settings.database_url)
        try:
            return await current_revision(engine)
        finally:
            await engine.dispose()

    revision = run_db(current())
    head = head_revision()
    if revision is None:
        out.print("Cơ sở dữ liệu chưa có bảng nào: chạy `troly db upgrade`.", markup=False)
    elif revision == head:
        out.print(f"Lược đồ cơ sở dữ liệu đang ở phiên bản {revision}, bản mới nhất.", markup=False)
    else:
        out.print(
            f"Lược đồ cơ sở dữ liệu đang ở phiên bản {revision}, chưa phải bản mới nhất "
            f"({head}): chạy `troly db upgrade`.",
            markup=False,
        )


_register_admin_commands()


def main() -> None:
    app()
