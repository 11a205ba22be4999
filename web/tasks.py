"""«Nhiệm vụ»: the tasks with deadlines (as ``troly tasks list`` shows them) and, for a root
admin, the import of a tasks file of a later directive into ``TASKS_DIR``: preview first
(every ``tên-tệp:dòng: …`` problem, or the tasks to add and change, nothing written), then
apply.

The rules are the command line's and start-up's: the file is checked by
``handlers.tasks.plan_task_file`` with the parser of TASKS_DIR's files; applying
(``handlers.tasks.apply_task_file``) checks it again, writes it into TASKS_DIR and runs the
same synchronisation as start-up, so every worker (they share the database) sees the tasks at
once. As on «Đơn vị» (web/units.py), the preview page carries the file back in a hidden
field: the server keeps nothing between the two steps and trusts nothing it gets back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web
from sqlmodel import col, select

from bot.storage.models import Task
from handlers.audit import Actor
from handlers.formatting import vn_number
from handlers.tasks import (
    KNOWLEDGE_ORIGIN,
    TaskFilePlan,
    apply_task_file,
    plan_task_file,
    task_file_name,
)
from knowledge import KnowledgeError
from web.auth import COOKIE, SECURITY_HEADERS, SignedIn, csrf_ok
from web.uploads import carried, carry, read_upload

if TYPE_CHECKING:
    from web.app import Console

__all__ = ["MAX_FILE", "TaskPages", "register"]

log = logging.getLogger(__name__)

MAX_FILE = 256 * 1024  # a tasks file is a few kB of YAML
MAX_BODY = MAX_FILE * 4 // 3 + 64 * 1024  # the apply form carries it in base64
NO_TASKS_DIR = (
    "Máy chủ chưa cấu hình thư mục nhiệm vụ nên chưa nhập được tệp nhiệm vụ từ trang này. "
    "Người vận hành đặt biến môi trường TASKS_DIR (đường dẫn một thư mục mà trợ lý ghi được) "
    "rồi khởi động lại trợ lý."
)
FIELD_NAMES = {
    "title": "tên",
    "levels": "cấp áp dụng",
    "due": "hạn",
    "due_text": "cách ghi hạn",
    "citation": "trích dẫn",
    "entry_id": "mục hỏi đáp",
    "origin": "nguồn",
    "active": "đang theo dõi",
}


def origin_name(origin: str) -> str:
    return "cơ sở tri thức" if origin == KNOWLEDGE_ORIGIN else f"tệp {Path(origin).name}"


@dataclass
class TaskPages:
    console: Console

    @property
    def tasks_dir(self) -> Path | None:
        return self.console.services.settings.tasks_dir

    def _help(self) -> dict[str, Any]:
        return {
            "max_kb": vn_number(MAX_FILE // 1024),
            "tasks_dir": self.tasks_dir,
            "no_tasks_dir": NO_TASKS_DIR,
            "origin_name": origin_name,
            "field_names": FIELD_NAMES,
        }

    async def show(self, request: web.Request) -> web.StreamResponse:
        """``GET /nhiem-vu``: every task, by due date; the upload form for a root admin."""
        raw = request.cookies.get(COOKIE)
        async with self.console.services.sessions() as db:
            signed_in = await self.console._signed_in(db, request)
            statement = select(Task).order_by(col(Task.due), col(Task.id))
            tasks = list((await db.exec(statement)).all())
        return self.console.page(
            "tasks.html",
            signed_in=signed_in,
            raw=raw,
            title="Nhiệm vụ",
            tasks=tasks,
            stopped=sum(1 for task in tasks if not task.active),
            may_import=signed_in.identity.role == "admin",
            **self._help(),
        )

    # ------------------------------------------------------------------ import

    def _forbidden(self) -> web.HTTPForbidden:
        return web.HTTPForbidden(
            text=self.console._render_message(
                "Không có quyền truy cập",
                "Chỉ quản trị hệ thống nhập được tệp nhiệm vụ. Đồng chí vẫn xem được danh sách "
                "nhiệm vụ ở trang «Nhiệm vụ».",
            ),
            content_type="text/html",
            headers=SECURITY_HEADERS,
        )

    def _too_large(self) -> web.HTTPRequestEntityTooLarge:
        return web.HTTPRequestEntityTooLarge(
            max_size=MAX_BODY,
            actual_size=MAX_BODY + 1,
            text=self.console._render_message(
                "Tệp quá lớn",
                f"Tệp nhiệm vụ tối đa {vn_number(MAX_FILE // 1024)} kB. Đồng chí chia thành "
                "nhiều tệp rồi nhập lần lượt.",
            ),
            content_type="text/html",
            headers=SECURITY_HEADERS,
        )

    async def _form(self, request: web.Request) -> dict[str, str | bytes | None]:
        return await read_upload(
            request, max_body=MAX_BODY, max_file=MAX_FILE, too_large=self._too_large
        )

    async def _admin(self, request: web.Request) -> tuple[str | None, dict[str, Any], SignedIn]:
        """The form of a root admin's POST with a valid CSRF token (else the refusal)."""
        raw = request.cookies.get(COOKIE)
        form = await self._form(request)
        if not csrf_ok(raw, form.get("csrf")):
            raise web.HTTPForbidden(
                text=self.console._forbidden_form().text,
                content_type="text/html",
                headers=SECURITY_HEADERS,
            )
        async with self.console.services.sessions() as db:
            signed_in = await self.console._signed_in(db, request)
        if signed_in.identity.role != "admin":
            raise self._forbidden()
        return raw, form, signed_in

    def _no_tasks_dir(self, signed_in: SignedIn) -> web.Response:
        return self.console.message(
            "Chưa cấu hình thư mục nhiệm vụ", NO_TASKS_DIR, status=409, signed_in=signed_in
        )

    def _preview_page(
        self,
        raw: str | None,
        signed_in: SignedIn,
        *,
        data: bytes,
        plan: TaskFilePlan,
        problems: list[str],
    ) -> web.Response:
        changes = len(plan.added) + len(plan.changed) + len(plan.stopped)
        return self.console.page(
            "tasks_preview.html",
            status=400 if problems else 200,
            signed_in=signed_in,
            raw=raw,
            title="Xem trước tệp nhiệm vụ",
            plan=plan,
            problems=problems,
            changes=changes,
            content=carry(data) if changes and not problems else "",
            may_import=True,
            **self._help(),
        )

    async def preview(self, request: web.Request) -> web.StreamResponse:
        """``POST /nhiem-vu/xem-truoc``: the uploaded file checked, nothing written."""
        raw, form, signed_in = await self._admin(request)
        if self.tasks_dir is None:
            return self._no_tasks_dir(signed_in)
        upload = form.get("tep")
        filename = str(form.get("ten") or "")
        if not isinstance(upload, bytes) or not upload:
            return self.console.message(
                "Chưa chọn tệp",
                "Đồng chí chưa chọn tệp nhiệm vụ (.yaml). Đồng chí quay lại trang «Nhiệm vụ» "
                "để chọn tệp.",
                status=400,
                signed_in=signed_in,
            )
        if len(upload) > MAX_FILE:
            raise self._too_large()
        problems: list[str] = []
        if not filename.lower().endswith((".yaml", ".yml")):
            problems.append(f"{filename or 'tệp'}: tệp nhiệm vụ phải là tệp YAML (.yaml hoặc .yml)")
        async with self.console.services.sessions() as db:
            plan = await plan_task_file(
                db, self.console.services.knowledge, self.tasks_dir, filename, upload
            )
        problems.extend(str(p) for p in plan.problems)
        return self._preview_page(raw, signed_in, data=upload, plan=plan, problems=problems)

    async def apply(self, request: web.Request) -> web.StreamResponse:
        """``POST /nhiem-vu/ap-dung``: the previewed file, checked again, written and
        synchronised."""
        raw, form, signed_in = await self._admin(request)
        if self.tasks_dir is None:
            return self._no_tasks_dir(signed_in)
        filename = str(form.get("ten") or "")
        data = carried(form.get("tep"))
        if not data:
            return self.console.message(
                "Không đọc được tệp",
                "Biểu mẫu không mang theo tệp đã xem trước. Đồng chí vui lòng tải tệp lên lại "
                "ở trang «Nhiệm vụ».",
                status=400,
                signed_in=signed_in,
            )
        if len(data) > MAX_FILE:
            raise self._too_large()
        person = signed_in.identity.person
        async with self.console.services.sessions() as db:
            try:
                plan, (created, updated, deactivated) = await apply_task_file(
                    db,
                    self.console.services.knowledge,
                    self.tasks_dir,
                    filename,
                    data,
                    actor=Actor("web", person.id),
                    now=self.console.now(),
                )
            except KnowledgeError as rejected:
                # Something changed since the preview (or the form was altered): the problems
                # as a preview shows them; nothing was written, the session closes uncommitted.
                problems = [str(p) for p in rejected.problems]
                plan = TaskFilePlan(task_file_name(filename))
                return self._preview_page(raw, signed_in, data=data, plan=plan, problems=problems)
            except OSError as failed:
                log.exception("cannot write a tasks file into %s", self.tasks_dir)
                return self.console.message(
                    "Không ghi được tệp nhiệm vụ",
                    f"Máy chủ không ghi được tệp vào thư mục nhiệm vụ (TASKS_DIR) "
                    f"({failed.strerror or failed}). Chưa thay đổi gì; đồng chí báo người vận "
                    "hành kiểm tra quyền ghi của thư mục này.",
                    status=500,
                    signed_in=signed_in,
                )
            await db.commit()
        log.info(
            "tasks file %s imported from the console by person %s: %d created, %d updated, "
            "%d deactivated",
            plan.name,
            person.id,
            created,
            updated,
            deactivated,
        )
        return self.console.page(
            "tasks_done.html",
            signed_in=signed_in,
            raw=raw,
            title="Đã nhập tệp nhiệm vụ",
            plan=plan,
            created=created,
            updated=updated,
            deactivated=deactivated,
            **self._help(),
        )


def register(app: web.Application, console: Console) -> None:
    pages = TaskPages(console)
    router = app.router
    router.add_get("/nhiem-vu", pages.show)
    router.add_post("/nhiem-vu/xem-truoc", pages.preview)
    router.add_post("/nhiem-vu/ap-dung", pages.apply)
