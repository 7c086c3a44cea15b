"""What the bot says, in Chinese (default) and English (``[bot] language = "en"``)."""

from __future__ import annotations

from govcast.settings import Settings

TEXTS: dict[str, dict[str, str]] = {
    "zh": {
        "welcome": (
            "您好，欢迎关注！这里发布本市政府信息公开、新闻发布会和市长专栏。\n"
            "· 直接发送关键词（如“医保”“社保缴费”）即可查询已公开的信息；\n"
            "· 点击菜单“信息公开”查看最新发布；\n"
            "· 回复“留言”或点击“我要留言”向我们提问、反映问题，工作人员将在5个工作日内答复；\n"
            "· 回复“我的留言”查询办理进度。"
        ),
        "help": (
            "我们目前可以识别文字和语音。发送关键词可查询公开信息；"
            "回复“留言”可向我们提问或反映问题。"
        ),
        "nothing_found": (
            "暂未找到相关的公开信息。建议：\n"
            "1. 换用更短的关键词，如“医保”“公积金”“招聘”；\n"
            "2. 点击菜单“信息公开”浏览最新发布；\n"
            "3. 回复“留言”直接向我们提问，工作人员将在5个工作日内答复。"
        ),
        "voice_unclear": "抱歉，没有听清您的语音。请再说一遍，或直接发送文字。",
        "image": "已收到您的图片。如需反映问题，请回复“留言”并用文字描述，我们将尽快办理。",
        "location": "已收到您的位置。如需反映所在地的问题，请回复“留言”并用文字描述。",
        "link": "已收到您分享的链接，谢谢。如需咨询，请直接发送文字。",
        "menu_empty": "暂无相关内容，请稍后再看。",
        "cases_unavailable": "留言功能暂未开通，请直接发送关键词查询公开信息。",
        "apology": "抱歉，系统暂时繁忙，您的消息我们已收到，稍后将尽快答复。",
        "late_template_first": "您好，您之前的咨询有了答复：",
    },
    "en": {
        "welcome": (
            "Welcome! We publish the city's government information, press conferences and "
            "the Mayor's column.\n· Send a keyword to search published information;\n"
            "· Menu 'Disclosure' shows the latest releases;\n"
            "· Reply 'message' to ask us a question: staff answer within 5 working days;\n"
            "· Reply 'my cases' to check progress."
        ),
        "help": (
            "We understand text and voice. Send a keyword to search, or reply 'message' to "
            "ask us a question."
        ),
        "nothing_found": (
            "Nothing published matches. Try a shorter keyword, browse the latest releases in "
            "the menu, or reply 'message' to ask staff directly (answered within 5 working days)."
        ),
        "voice_unclear": "Sorry, we could not make out your voice message. Please type it.",
        "image": "Thank you for the picture. To report a problem, reply 'message' and describe it.",
        "location": "Thank you for your location. To report a problem there, reply 'message'.",
        "link": "Thank you for the link. To ask us something, please send text.",
        "menu_empty": "Nothing here yet, please check again later.",
        "cases_unavailable": "Messages to staff are not open yet; send a keyword to search.",
        "apology": "Sorry, we are busy. Your message has arrived and we will answer soon.",
        "late_template_first": "Your earlier question has an answer:",
    },
}


def get(settings: Settings, key: str) -> str:
    """The text ``key`` in the configured language."""
    return TEXTS[settings.bot.language][key]
