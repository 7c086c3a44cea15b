"""The editable lists the checks use, as one immutable value handed to the checker."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from publisher.checks.findings import Severity


@dataclass(frozen=True)
class Leader:
    """An office holder: ``current`` False marks someone who has left that post."""

    name: str
    title: str
    current: bool = True


# Common misspellings in official writing (wrong -> right). Editable in the console;
# these are only the defaults.
DEFAULT_TYPOS: dict[str, str] = {
    "布署": "部署",
    "既使": "即使",
    "即然": "既然",
    "必竟": "毕竟",
    "按装": "安装",
    "帐号": "账号",
    "帐户": "账户",
    "形像": "形象",
    "再接再励": "再接再厉",
    "迫不急待": "迫不及待",
    "一愁莫展": "一筹莫展",
    "墨守陈规": "墨守成规",
    "穿流不息": "川流不息",
    "松驰": "松弛",
    "渲泄": "宣泄",
    "针贬时弊": "针砭时弊",
    "甘败下风": "甘拜下风",
    "变本加利": "变本加厉",
    "九宵": "九霄",
    "暄闹": "喧闹",
    "侯车": "候车",
    "修茸": "修葺",
    "装祯": "装帧",
    "寒喧": "寒暄",
    "贯彻落实落实": "贯彻落实",
    "截止目前": "截至目前",
    "截止到目前": "截至目前",
    "做为": "作为",
    "权利机关": "权力机关",
    "国家机构改革方按": "国家机构改革方案",
    "凭心而论": "平心而论",
    "不径而走": "不胫而走",
    "提纲携领": "提纲挈领",
    "走头无路": "走投无路",
    "默守成规": "墨守成规",
    "一如继往": "一如既往",
}

# Titles recognised next to a leader's name, besides those in the leader list itself.
COMMON_TITLES = (
    "市长",
    "副市长",
    "常务副市长",
    "代市长",
    "市委书记",
    "市委副书记",
    "书记",
    "副书记",
    "秘书长",
    "副秘书长",
    "主任",
    "副主任",
    "局长",
    "副局长",
    "区长",
    "副区长",
    "县长",
    "副县长",
    "主席",
    "副主席",
    "部长",
    "副部长",
    "厅长",
    "副厅长",
    "处长",
    "副处长",
    "省长",
    "副省长",
    "市委常委",
    "常委",
)


@dataclass(frozen=True)
class CheckLists:
    """Everything editable that the checks depend on."""

    banned_words: tuple[str, ...] = ()  # blocking by default
    sensitive_words: tuple[str, ...] = ()  # warnings by default
    # Exceptions: a banned or sensitive word inside one of these is not flagged
    # ("最佳" banned, "最佳实践" allowed).
    allowed_words: tuple[str, ...] = ()
    typos: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_TYPOS))
    leaders: tuple[Leader, ...] = ()
    # Severity per finding code, overriding each check's default ("off" disables one).
    severities: Mapping[str, Severity] = field(default_factory=dict)
