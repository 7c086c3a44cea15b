"""`govcast demo`: clearly marked sample data for an empty database."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass

from sqlalchemy import func, select

from govcast import runtime
from govcast.settings import Settings
from publisher import audit, staff, workflow
from publisher.errors import WorkflowError
from publisher.inputs import publication_from_fields
from publisher.models import Publication, Role

MARK = "【示例】"


@dataclass(frozen=True)
class Sample:
    title: str
    kind: str
    category: str
    issuing_body: str
    body: str
    keywords: tuple[str, ...] = ()
    document_number: str | None = None
    subject: str | None = None


SAMPLES = (
    Sample(
        "关于2026年城乡居民医保集中缴费的通知",
        "disclosure",
        "service",
        "示例市医疗保障局",
        "2026年度城乡居民基本医疗保险集中缴费期为2025年10月1日至12月31日。\n\n"
        "参保人可通过微信、银行网点或社区服务中心缴费。",
        ("医保", "缴费"),
        "示医保〔2026〕3号",
        "社会保障",
    ),
    Sample(
        "示例市人民政府关于印发《示例市优化营商环境若干措施》的通知",
        "disclosure",
        "decision",
        "示例市人民政府",
        "现将《示例市优化营商环境若干措施》印发给你们，请认真贯彻执行。",
        ("营商环境",),
        "示政〔2026〕12号",
        "综合政务",
    ),
    Sample(
        "示例市召开2026年第十次新闻发布会",
        "press_conference",
        "results",
        "示例市人民政府新闻办公室",
        "市政府新闻办公室将于本周五上午10时召开新闻发布会，介绍全市社保工作进展。",
        ("新闻发布会", "社保"),
    ),
    Sample(
        "全市社保卡“一卡通”服务上线",
        "press_release",
        "service",
        "示例市人力资源和社会保障局",
        "即日起，市民持社保卡可在全市公交、图书馆和医院办理相关业务。",
        ("社保卡", "一卡通"),
    ),
    Sample(
        "2026年度重点民生项目实施进展情况",
        "disclosure",
        "implementation",
        "示例市发展和改革委员会",
        "截至10月底，33项重点民生项目已完工28项，完成年度投资计划的91%。",
        ("民生项目",),
    ),
    Sample(
        "示例市2026年第三季度财政预算执行情况",
        "disclosure",
        "key_area",
        "示例市财政局",
        "前三季度全市一般公共预算收入完成年度预算的78.6%。",
        ("财政", "预算"),
    ),
    Sample(
        "市长工作电子阅读（2026年10月）",
        "column_item",
        "results",
        "示例市人民政府办公室",
        "本月市政府重点工作：冬季供暖保障、城乡居民医保缴费、老旧小区改造。",
        ("市长工作电子阅读",),
    ),
)


async def load_demo(settings: Settings) -> list[str]:
    """Create sample staff and publications; returns lines to print."""
    db = runtime.database(settings)
    config = runtime.core_config(settings)
    lines: list[str] = []
    try:
        await runtime.sync_offices(db, settings)
        async with db.transaction() as session:
            count = (
                await session.execute(select(func.count()).select_from(Publication))
            ).scalar_one()
            if count:
                raise WorkflowError(
                    "the database already holds publications; demo data goes only into an empty one"
                )
            roles = {
                "demo_editor": Role.EDITOR,
                "demo_reviewer1": Role.REVIEWER,
                "demo_reviewer2": Role.REVIEWER,
                "demo_approver": Role.APPROVER,
                "demo_admin": Role.ADMIN,
            }
            members = {}
            credentials: list[str] = []
            for name, role in roles.items():
                password = secrets.token_urlsafe(12)
                await staff.add_user(
                    session,
                    name,
                    password,
                    [role],
                    [settings.office.key],
                    actor=audit.CLI,
                    display_name=f"{MARK}{name}",
                )
                credentials.append(f"{name}\t{role.value}\t{password}")
                lines.append(f"staff account {name} ({role.value})")
            for name in roles:
                members[name] = await staff.load_member(session, name)
            # Passwords go to a private file, never to the terminal or the logs.
            secret_file = settings.data_dir / "demo-passwords.txt"
            secret_file.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write("\n".join(credentials) + "\n")
            lines.append(f"their passwords are in {secret_file} (readable by you only)")
            office = await workflow.office_by_key(session, settings.office.key)
            for sample in SAMPLES:
                data = publication_from_fields(
                    {
                        "title": MARK + sample.title,
                        "kind": sample.kind,
                        "category": sample.category,
                        "issuing_body": sample.issuing_body,
                        "body": sample.body,
                        "keywords": list(sample.keywords),
                        "document_number": sample.document_number,
                        "subject": sample.subject,
                        "channels": ["website"],
                        **({"column": "mayor_reading"} if sample.kind == "column_item" else {}),
                    },
                    max_body_chars=config.max_body_chars,
                )
                editor = members["demo_editor"]
                publication = await workflow.create(
                    session, config, office, data, editor.actor("demo"), member=editor
                )
                await workflow.submit(session, publication.id, editor.actor("demo"), member=editor)
                for step_member in _reviewers(config.review_steps, members):
                    await workflow.review(
                        session,
                        config,
                        publication.id,
                        step_member,
                        approve=True,
                        comment="示例数据",
                    )
                lines.append(f"publication {publication.id}: {publication.title}")
    finally:
        await db.dispose()
    lines.append(
        "sample publications go to the website only; the worker of `govcast serve` delivers them"
    )
    return lines


def _reviewers(steps: int, members: dict[str, staff.StaffMember]) -> list[staff.StaffMember]:
    order = {
        1: ["demo_approver"],
        2: ["demo_reviewer1", "demo_approver"],
        3: ["demo_reviewer1", "demo_reviewer2", "demo_approver"],
    }[steps]
    return [members[name] for name in order]
