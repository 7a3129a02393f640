"""docs/hooks.md works as written: its Python and Node signature checks accept the requests
the server really sends (and refuse tampered ones), and the example application
(docs/examples/hooks_app.py) allows, denies, rewrites and takes each webhook once."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import TEST_SECRET
from hookapp import HookApp
from serverproc import free_port, wait_for
from test_browser import node_or_skip, require, run_node
from test_rooms_ws import Chat, create_room
from tornado.httpclient import HTTPClientError
from tornado.websocket import websocket_connect

from config import Settings

pytestmark = pytest.mark.parametrize("database", ["sqlite"], indirect=True)

ROOT = Path(__file__).resolve().parent.parent
SECRET = "the-application-and-the-server-share-this"


def doc_block(marker: str) -> str:
    """Returns the fenced code block of docs/hooks.md that contains marker."""
    text = (ROOT / "docs" / "hooks.md").read_text(encoding="utf-8")
    for block in re.findall(r"```[a-z]+\n(.*?)```", text, re.S):
        if marker in block:
            return block
    raise AssertionError(f"no code block with {marker!r} in docs/hooks.md")


class ExampleApp:
    """docs/examples/hooks_app.py as a process, its printed webhooks collected."""

    def __init__(self, tmp_path: Path, secret: str = SECRET) -> None:
        self.port = free_port()
        self.out = tmp_path / "example.out"
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "docs" / "examples" / "hooks_app.py"),
             "--port", str(self.port), "--secret", secret, "--banned", "1"],
            stdout=self.out.open("wb"), stderr=subprocess.STDOUT, env={**os.environ})
        assert wait_for(lambda: "listening" in self.text(), 10), self.text()

    def text(self) -> str:
        return self.out.read_text(encoding="utf-8", errors="replace")

    def webhooks(self) -> list[dict]:
        return [json.loads(line) for line in self.text().splitlines() if line.startswith("{")]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def settings(request, tmp_path) -> Settings:
    """The server asks the example application (started here with `example_secret`), or with
    `capture=True` sends its webhooks to a HookApp that keeps the raw requests (both given
    to @pytest.mark.settings)."""
    base = Settings(data_dir=str(tmp_path / "data"), jwt_secret=TEST_SECRET,
                    health_interval=3600, hook_secret=SECRET, rate_limits=False)
    marker = request.node.get_closest_marker("settings")
    options = dict(marker.kwargs) if marker else {}
    if options.pop("capture", False):
        app = request.getfixturevalue("hook_app")
        return replace(base, webhook_url=app.webhook_url, webhook_events=("connection.opened",))
    example = ExampleApp(tmp_path, options.pop("example_secret", SECRET))
    request.addfinalizer(example.stop)
    request.node.example = example
    url = f"http://127.0.0.1:{example.port}"
    return replace(base, hook_url=f"{url}/hooks", hooks=("connect", "subscribe", "publish"),
                   webhook_url=f"{url}/webhooks")


@pytest.fixture
def hook_app(io_loop):
    app = HookApp()
    app.start()
    yield app
    io_loop.run_sync(app.stop)


@pytest.mark.settings(capture=True)
@pytest.mark.gen_test(timeout=30)
async def test_the_docs_python_check_verifies_what_the_server_sends(api, hook_app):
    """The Python block accepts a real webhook's signature and refuses a wrong secret, a
    changed body and an old timestamp."""
    conn = await api.ws((await api.register())["access_token"])
    await hook_app.wait(lambda: hook_app.webhooks)
    request = hook_app.webhooks[0]
    scope: dict = {}
    exec(compile(doc_block("def verify_signature"), "docs/hooks.md", "exec"), scope)  # noqa: S102
    check = scope["verify_signature"]
    assert check(SECRET, request.raw, request.signature) is True
    assert check("some-other-secret-value", request.raw, request.signature) is False
    assert check(SECRET, request.raw.replace(b"websocket", b"Websocket"),
                 request.signature) is False
    assert check(SECRET, request.raw, request.signature, tolerance=-1) is False
    assert check(SECRET, request.raw, "v1=" + request.signature.split("v1=")[1]) is False
    conn.close()


@pytest.mark.settings(capture=True)
@pytest.mark.gen_test(timeout=30)
async def test_the_docs_node_check_verifies_what_the_server_sends(api, hook_app, tmp_path):
    """The Node block, run by node, gives the same verdicts on a real webhook."""
    node = node_or_skip()
    conn = await api.ws((await api.register())["access_token"])
    await hook_app.wait(lambda: hook_app.webhooks)
    request = hook_app.webhooks[0]
    (tmp_path / "body.json").write_bytes(request.raw)
    script = tmp_path / "verify.js"
    script.write_text(doc_block("function verifySignature") + """
const fs = require('fs');
const body = fs.readFileSync(process.argv[2]);
const [secret, header] = [process.argv[3], process.argv[4]];
console.log(JSON.stringify([verifySignature(secret, body, header),
  verifySignature('some-other-secret-value', body, header),
  verifySignature(secret, Buffer.concat([body, Buffer.from(' ')]), header)]));
""")
    out = subprocess.run([node, str(script), str(tmp_path / "body.json"), SECRET,
                          request.signature], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [True, False, False]
    conn.close()


@pytest.mark.gen_test(timeout=30)
async def test_the_example_application_allows_denies_and_rewrites(api, request):
    """Banned user 1 cannot connect (403); a user cannot join a staff room; a link is refused;
    masked words come back masked, to every subscriber and in the stored history."""
    banned = await api.register()
    assert banned["user"]["id"] == 1
    with pytest.raises(HTTPClientError) as refused:
        await websocket_connect(f"{api.ws_url}/ws?token={banned['access_token']}")
    assert refused.value.code == 403
    admin = await api.admin()
    staff = await create_room(api, Chat(api, admin, None), "staff-room")
    chat = await Chat.open(api)
    denied = await chat.request("subscribe", {"channel": staff})
    assert denied["data"] == {"code": "forbidden", "message": "staff only"}
    await chat.subscribe()
    for text, expected in (("see http://spam.example", None), ("oh darn, heck", "oh d***, h***"),
                           ("fine", "fine")):
        request_id = await chat.send("publish", {"channel": "room:lobby",
                                                 "data": {"text": text}})
        got = [await chat.event()]
        if expected is not None:
            got.append(await chat.event())
        reply = next(e for e in got if e.get("id") == request_id)
        if expected is None:
            assert reply["data"] == {"code": "forbidden",
                                     "message": "links are not allowed here"}
            continue
        message = next(e for e in got if e["type"] == "channel.message")
        assert message["data"]["body"] == {"text": expected}
    example = request.node.example
    await api.ctx.messages.flush()
    wanted = {"channel.message": 2, "presence.joined": 1, "connection.opened": 1}
    for _ in range(100):
        seen = [w["webhook"] for w in example.webhooks()]
        if all(seen.count(t) == n for t, n in wanted.items()):
            break
        await asyncio.sleep(0.1)
    assert [w["data"]["body"]["text"] for w in example.webhooks()
            if w["webhook"] == "channel.message"] == ["oh d***, h***", "fine"]
    ids = [w["id"] for w in example.webhooks()]
    assert len(ids) == len(set(ids))


@pytest.mark.settings(example_secret="not-the-secret-the-server-signs-with")
@pytest.mark.gen_test(timeout=30)
async def test_the_example_application_refuses_requests_it_cannot_verify(api):
    """With another secret the application answers 401, so the server fails closed."""
    token = (await api.register())["access_token"]
    with pytest.raises(HTTPClientError) as refused:
        await websocket_connect(f"{api.ws_url}/ws?token={token}")
    assert refused.value.code == 503


@pytest.mark.gen_test(timeout=60)
async def test_the_docs_walkthrough_with_the_node_script(api, request):
    """The docs' Node command publishes `oh darn` and gets `oh d***` back."""
    require(shutil.which("node"), "node is not installed")
    await api.register()  # user 1 is the banned one
    token = (await api.register())["access_token"]
    code, out, err = await run_node("--seconds", "3", "--subscribe", "room:lobby",
                                    "--publish", '{"text": "oh darn"}',
                                    env={"TOKEN": token, "WS_URL": f"{api.ws_url}/ws"})
    assert code == 0, err
    assert '"text": "oh d***"' in out, out
