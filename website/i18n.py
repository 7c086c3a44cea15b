"""The website's interface strings in both languages (简体中文 | English)."""

from __future__ import annotations

from typing import Literal

Lang = Literal["zh", "en"]
LANGS: tuple[Lang, ...] = ("zh", "en")
HTML_LANG = {"zh": "zh-CN", "en": "en"}

MESSAGES: dict[str, tuple[str, str]] = {
    "skip": ("跳到主要内容", "Skip to main content"),
    "home": ("首页", "Home"),
    "disclosure": ("政府信息公开", "Government Information Disclosure"),
    "search": ("搜索", "Search"),
    "search_label": ("站内搜索关键词", "Search keywords"),
    "solicitations": ("意见征集", "Public Consultations"),
    "cases": ("互动交流", "Questions and Answers"),
    "report_error": ("我为政府网站找错", "Report an error on this website"),
    "elder_on": ("长者模式", "Elder-friendly mode"),
    "elder_off": ("标准模式", "Standard mode"),
    "lang_switch": ("English", "简体中文"),
    "nav": ("主导航", "Main navigation"),
    "latest": ("最新信息", "Latest"),
    "press_releases": ("新闻发布", "Press releases"),
    "open_solicitations": ("正在征集", "Open consultations"),
    "answered": ("最新答复", "Recently answered questions"),
    "none": ("暂无信息", "Nothing here yet"),
    "more": ("更多", "More"),
    "categories": ("公开目录", "Catalog"),
    "columns": ("公开栏目", "Columns"),
    "all": ("全部", "All"),
    "category": ("信息分类", "Category"),
    "year": ("年份", "Year"),
    "subject": ("主题分类", "Subject"),
    "genre": ("体裁", "Genre"),
    "issuing_body": ("发布机构", "Issuing body"),
    "filter": ("筛选", "Filter"),
    "title": ("信息名称", "Title"),
    "index_number": ("索引号", "Index number"),
    "document_number": ("文号", "Document number"),
    "written_on": ("成文日期", "Date written"),
    "published_on": ("发布日期", "Publication date"),
    "keywords": ("关键词", "Keywords"),
    "validity": ("有效性", "Validity"),
    "audience": ("服务对象", "Audience"),
    "summary": ("内容概述", "Summary"),
    "source": ("来源", "Source"),
    "attachments": ("附件", "Attachments"),
    "explanation": ("政策解读", "Policy explanation"),
    "metadata": ("目录信息", "Catalog information"),
    "body": ("正文", "Text"),
    "hits": ("浏览次数", "Views"),
    "prev": ("上一页", "Previous page"),
    "next": ("下一页", "Next page"),
    "page_of": (
        "第 {page} 页，共 {pages} 页（{total} 条）",
        "Page {page} of {pages} ({total} items)",
    ),
    "results_for": ("“{q}”的搜索结果：共 {total} 条", "{total} results for “{q}”"),
    # Beyond the counting cap the total is an estimate.
    "results_about": ("“{q}”的搜索结果：约 {total} 条", "About {total} results for “{q}”"),
    "no_results": (
        "没有找到相关信息，请换个关键词试试。",
        "No results. Please try other keywords.",
    ),
    "amended_banner": ("本文件已被修改，请以新文件为准：", "This document has been amended. See:"),
    "repealed_banner": ("本文件已废止。", "This document has been repealed."),
    "expired_banner": ("本文件已失效。", "This document has expired."),
    "replaced_by": ("现行文件", "Replacing document"),
    "gone_title": ("信息已撤回", "Item withdrawn"),
    "gone_text": ("该信息已由发布机关撤回，不再公开。", "This item was withdrawn by its issuer."),
    "not_found_title": ("页面不存在", "Page not found"),
    "not_found_text": ("您访问的页面不存在或已移动。", "The page does not exist or has moved."),
    "bad_request_title": ("请求无效", "Bad request"),
    "english_version": ("英文版", "English version"),
    "chinese_version": ("中文版", "Chinese version"),
    "opens": ("征集开始", "Opens"),
    "closes": ("征集截止", "Closes"),
    "status_open": ("征集中", "Open"),
    "status_closed": ("已结束", "Closed"),
    "archive": ("按月归档", "Archive by month"),
    "feed": ("订阅 (Atom)", "Subscribe (Atom)"),
    "report_error_text": (
        "发现本网站的错别字、链接错误、信息过时或无法访问等问题，请通过全国政府网站找错平台或"
        "下方邮箱告诉我们。",
        "Found a typo, a broken link, outdated information or a page that does not work? "
        "Tell us through the national government website error-reporting platform or by email.",
    ),
    "national_platform": ("全国政府网站找错平台", "National error-reporting platform"),
    "site_id": ("网站标识码", "Site ID"),
    "category_decision": ("决策公开", "Decision-making"),
    "category_implementation": ("执行公开", "Implementation"),
    "category_management": ("管理公开", "Management"),
    "category_service": ("服务公开", "Services"),
    "category_results": ("结果公开", "Results"),
    "category_key_area": ("重点领域信息", "Key areas"),
    "column_latest": ("最新信息", "Latest information"),
    "column_guide": ("政府信息公开指南", "Disclosure guide"),
    "column_rules": ("政府信息公开制度", "Disclosure rules"),
    "column_statutory": ("法定主动公开内容", "Statutory proactive disclosure"),
    "column_annual_report": ("政府信息公开年报", "Annual reports"),
    "column_news": ("政务动态", "News"),
    "column_notices": ("通知公告", "Notices"),
    "column_policy": ("政策文件", "Policy documents"),
    "column_press_conference": ("新闻发布会", "Press conferences"),
    "column_solicitation": ("意见征集", "Public consultations"),
    "validity_in_force": ("有效", "In force"),
    "validity_amended": ("已修改", "Amended"),
    "validity_repealed": ("已废止", "Repealed"),
    "validity_expired": ("已失效", "Expired"),
}


def translate(lang: Lang, key: str, **values: object) -> str:
    """The interface string ``key`` in ``lang``; unknown keys show themselves (visible in tests)."""
    pair = MESSAGES.get(key)
    if pair is None:
        return key
    message = pair[0] if lang == "zh" else pair[1]
    return message.format(**values) if values else message
