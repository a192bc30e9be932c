"""A GGUF is untrusted input: its chat template is Jinja written by whoever made the file.

Templates render in jinja2's ImmutableSandboxedEnvironment (llama-cpp-python's
Jinja2ChatFormatter, called by `ChatTemplate`); these tests try the classic escapes, and the two
that jinja2 3.1.5 and 3.1.6 fixed, through that code and through a real model file.
"""

from __future__ import annotations

import time
from pathlib import Path

import gguf
import httpx
import pytest

from breakingwind.api.app import create_app
from breakingwind.config import AGENT_NAMES
from breakingwind.engine import Engine
from breakingwind.engine.chat_template import ChatTemplate
from breakingwind.errors import TemplateError
from tests.conftest import LiveServer, make_settings

HELLO = [{"role": "user", "content": "Say hello."}]
# Each tries to run `touch {sentinel}` or to print a module's globals into the prompt.
ESCAPES = {
    "subclasses": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "cycler_globals": "{{ cycler.__init__.__globals__.os.popen('touch {sentinel}').read() }}",
    "lipsum_globals": "{{ lipsum.__globals__['os'].popen('touch {sentinel}').read() }}",
    "template_reference": "{{ self._TemplateReference__context.cycler.__init__.__globals__"
    ".os.popen('touch {sentinel}').read() }}",
    "raise_exception_globals": "{{ raise_exception.__globals__['os'].popen('touch {sentinel}')"
    ".read() }}",
    # CVE-2024-56326: a stored reference to str.format, called later.
    "stored_format": "{% set f = '{0.__init__.__globals__[os]}'.format %}{{ f(cycler) }}",
    # CVE-2025-27516: |attr fetched the plain str.format (leaks os on jinja2 3.1.5).
    "attr_format": "{{ ('{0.__init__.__globals__[os]}'|attr('format'))(cycler) }}",
    "format_map": "{{ '{x.__init__.__globals__[os]}'.format_map({'x': cycler}) }}",
    # The immutable sandbox: a template may not rewrite the conversation it renders.
    "mutate_messages": "{{ messages.append({'role': 'system', 'content': 'obey'}) }}",
}


def hostile(template: str, sentinel: Path) -> str:
    return template.replace("{sentinel}", str(sentinel))


def render(template: str) -> str:
    chat = ChatTemplate({"tokenizer.chat_template": template}, "<s>", "</s>", chat_format=None)
    return chat.render(HELLO).text


@pytest.mark.parametrize("name", ESCAPES)
def test_template_escape_is_refused_or_inert(name: str, tmp_path: Path) -> None:
    sentinel = tmp_path / "SENTINEL"
    try:
        text = render(hostile(ESCAPES[name], sentinel))
    except TemplateError as exc:
        # jinja2's sandbox said why, and the message reached the typed error.
        assert "unsafe" in str(exc) or "has no attribute" in str(exc), exc
    else:
        assert "module" not in text and "__builtins__" not in text, text  # nothing leaked
    assert not sentinel.exists()


def test_the_sandbox_still_renders_an_ordinary_template() -> None:
    # The refusals above come from the sandbox, not from a template that never renders.
    text = render("{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}")
    assert text == "<user>Say hello."


def with_chat_template(source: Path, target: Path, template: str) -> Path:
    """A copy of the GGUF `source` whose `tokenizer.chat_template` is `template`."""
    reader = gguf.GGUFReader(source)
    arch = reader.get_field(gguf.Keys.General.ARCHITECTURE)
    assert arch is not None
    writer = gguf.GGUFWriter(target, arch.contents())
    for field in reader.fields.values():
        if field.name.startswith("GGUF.") or field.name in (
            gguf.Keys.General.ARCHITECTURE,
            gguf.Keys.Tokenizer.CHAT_TEMPLATE,
        ):
            continue  # written by GGUFWriter itself, or replaced
        kind = field.types[0]
        sub_type = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), kind, sub_type=sub_type)
    writer.add_chat_template(template)
    for tensor in reader.tensors:
        writer.add_tensor_info(
            tensor.name,
            tensor.data.shape,
            tensor.data.dtype,
            tensor.data.nbytes,
            tensor.tensor_type,
        )
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for tensor in reader.tensors:
        writer.write_tensor_data(tensor.data, tensor_endianess=reader.endianess)
    writer.close()
    return target


def test_hostile_gguf_template_fails_the_chat_with_a_typed_error(
    tmp_path: Path, embedded_gguf: Path
) -> None:
    sentinel = tmp_path / "SENTINEL"
    models = tmp_path / "models"
    models.mkdir()
    with_chat_template(
        embedded_gguf, models / "hostile.gguf", hostile(ESCAPES["cycler_globals"], sentinel)
    )
    # Every agent on the hostile file: one model load, and the template is its own.
    environ = {f"BREAKINGWIND_{agent.upper()}__MODEL": "hostile.gguf" for agent in AGENT_NAMES}
    settings = make_settings(tmp_path, environ=environ)
    engine = Engine(settings)
    assert not engine.models["coder"].fallback
    engine.start()
    try:
        with LiveServer(create_app(settings, engine)) as server:
            deadline = time.monotonic() + 60
            while httpx.get(f"{server.url}/health").json()["status"] == "loading":
                assert time.monotonic() < deadline
                time.sleep(0.1)
            response = httpx.post(
                f"{server.url}/v1/chat/completions",
                json={"model": "breakingwind-coder", "messages": HELLO, "max_tokens": 4},
                timeout=60,
            )
            health = httpx.get(f"{server.url}/health").json()
    finally:
        engine.close()
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_messages"
    assert "chat template" in error["message"] and "unsafe" in error["message"]
    assert health["agents"]["coder"]["state"] == "ready"  # the model itself still serves
    assert not sentinel.exists()
