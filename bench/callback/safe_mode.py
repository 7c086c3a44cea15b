"""Safe mode's own work per message, in one process: govcast's wire functions against
wechatpy's ``WeChatCrypto`` (what the minimal handler of run.py uses).

The end-to-end overhead in run.py comes from two rates (or two CPU readings) of whole
servers, where body sizes and batch sizes move too; this isolates what safe mode adds to a
message: read the envelope, check ``msg_signature``, decrypt, then encrypt and sign the
reply. Best of several repeats (the least disturbed by other work on the machine).

Run: .venv/bin/python bench/callback/safe_mode.py [--number 20000] [--repeat 7]
"""

# ruff: noqa: S105

from __future__ import annotations

import argparse
import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from wechatpy.crypto import WeChatCrypto

from bot import wire

TOKEN = "spamtest"
AES = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
APPID = "wx2c2769f8efd9abc2"
TIMESTAMP, NONCE = "1700000000", "1234567890"
PUSH = (
    "<xml><ToUserName><![CDATA[gh_bench]]></ToUserName>"
    "<FromUserName><![CDATA[o_bench_1234]]></FromUserName><CreateTime>1700000000</CreateTime>"
    "<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[医保缴费]]></Content>"
    "<MsgId>1234567890123456</MsgId></xml>"
)
REPLY = (
    "<xml><ToUserName><![CDATA[o_bench_1234]]></ToUserName>"
    "<FromUserName><![CDATA[gh_bench]]></FromUserName><CreateTime>1700000001</CreateTime>"
    "<MsgType><![CDATA[text]]></MsgType>"
    "<Content><![CDATA[医保缴费请登录市医保局网站或拨打12345咨询。]]></Content></xml>"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--number", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    key = wire.AESKey(AES, APPID)
    encrypt = key.encrypt(PUSH.encode())
    msg_signature = wire.signature(TOKEN, TIMESTAMP, NONCE, encrypt)
    envelope = (
        f"<xml><ToUserName><![CDATA[gh_bench]]></ToUserName>"
        f"<Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    ).encode()
    crypto = WeChatCrypto(TOKEN, AES, APPID)

    def govcast() -> None:
        # What bot/web.py's callback does beyond plain mode (the inner XML is parsed in
        # both modes, so it is not counted here or for wechatpy).
        fields = wire.parse_xml(envelope)
        wire.check_signature(TOKEN, msg_signature, TIMESTAMP, NONCE, fields["Encrypt"])
        key.decrypt(fields["Encrypt"])
        wire.encrypted_envelope(key, TOKEN, REPLY, TIMESTAMP, NONCE)

    def wechatpy() -> None:
        crypto.decrypt_message(envelope, msg_signature, TIMESTAMP, NONCE)
        crypto.encrypt_message(REPLY, NONCE, TIMESTAMP)

    # Both must do the real thing before they are timed.
    assert key.decrypt(wire.parse_xml(envelope)["Encrypt"]).decode() == PUSH
    assert crypto.decrypt_message(envelope, msg_signature, TIMESTAMP, NONCE) == PUSH
    for name, work in (("govcast (bot/wire.py)", govcast), ("wechatpy WeChatCrypto", wechatpy)):
        best = min(timeit.repeat(work, number=args.number, repeat=args.repeat))
        print(f"{name}: {1e6 * best / args.number:.1f} us per message (safe-mode work)")


if __name__ == "__main__":
    main()
