"""Tool calls in and out of the model's text.

In: a conversation with tools -> template messages. A chat template that takes
``tools`` (Qwen-style) renders them, the assistant's earlier ``tool_calls`` and the
``tool`` results in its own format; any other template gets the tools described in a
system message, earlier calls written as ``<tool_call>`` blocks and results as user
turns in ``<tool_response>`` blocks.

Out: ``ToolCallReader`` splits the streamed completion into content and OpenAI
``tool_calls`` deltas: a call's header (index, id, name) once its name is read,
then argument fragments as they arrive. Held back: only text that may still turn
out to open a call. The same reader builds the non-streamed message.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from gateway.chat.structured import CALL_CLOSE, CALL_OPEN, Tool

_HEAD = re.compile(r'\s*\{\s*"name"\s*:\s*"([^"\\]*)"\s*,\s*"arguments"\s*:\s*(?=\S)')
_TAIL = re.compile(r"\s*\}\s*" + re.escape(CALL_CLOSE))
_DECODER = json.JSONDecoder()


def template_takes_tools(tokenizer: Any) -> bool:
    return "tools" in (getattr(tokenizer, "chat_template", None) or "")


def tools_json(tools: list[Tool]) -> list[dict[str, Any]]:
    return [t.model_dump(exclude_none=True, by_alias=True) for t in tools]


def tools_system_text(tools: list[Tool]) -> str:
    """How a model whose template knows no tools learns of them: one line per function
    (name, description, compact JSON schema of its arguments), then the call format."""
    lines = []
    for t in tools:
        f = t.function
        params = "" if f.parameters is None else " Arguments: " + compact(f.parameters)
        lines.append(f"{f.name}: {f.description or ''}{params}".strip())
    return (
        "Functions you can call:\n" + "\n".join(lines) + "\nCall one with:\n"
        f'{CALL_OPEN}\n{{"name": "<function name>", "arguments": {{<arguments>}}}}\n{CALL_CLOSE}'
    )


def compact(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def call_text(name: str, arguments: str) -> str:
    return f'{CALL_OPEN}\n{{"name": "{name}", "arguments": {arguments}}}\n{CALL_CLOSE}'


def render(messages: list[dict[str, Any]], tools: list[Tool], native: bool) -> list[dict]:
    """Template messages for a conversation that may hold tool calls and results.
    ``messages``: role, content (text), tool_calls (OpenAI's shape) per message."""
    out: list[dict[str, Any]] = []
    for m in messages:
        calls = m.get("tool_calls") or []
        if native:
            entry = {"role": m["role"], "content": m["content"]}
            if calls:
                entry["tool_calls"] = [
                    {"type": "function", "function": {
                        "name": c["function"]["name"],
                        "arguments": json.loads(c["function"]["arguments"]),
                    }} for c in calls
                ]  # fmt: skip
            out.append(entry)
        elif m["role"] == "tool":
            text = f"<tool_response>\n{m['content']}\n</tool_response>"
            out.append({"role": "user", "content": text})
        elif calls:
            text = "\n".join(call_text(c["function"]["name"], c["function"]["arguments"])
                             for c in calls)  # fmt: skip
            text = "\n".join(filter(None, [m["content"], text]))
            out.append({"role": m["role"], "content": text})
        else:
            out.append({"role": m["role"], "content": m["content"]})
    if tools and not native:
        note = tools_system_text(tools)
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": f"{out[0]['content']}\n\n{note}"}
        else:
            out.insert(0, {"role": "system", "content": note})
    return out


@dataclass
class Call:
    id: str
    name: str
    arguments: str = ""


@dataclass
class ToolCallReader:
    """Content and tool-call deltas from a completion's text, fed in pieces. Text
    after the first call is held to the end and kept only if it is not blank."""

    parallel: bool = True  # read more than one call (a second one stays text otherwise)
    calls: list[Call] = field(default_factory=list)
    _buf: str = ""
    _state: str = "text"  # text | head | args | tail
    _done: bool = False

    def feed(self, text: str) -> tuple[str, list[dict[str, Any]]]:
        """(content released, tool_calls deltas) for the next piece of text."""
        self._buf += text
        content: list[str] = []
        deltas: list[dict[str, Any]] = []
        while self._step(content, deltas):
            pass
        return "".join(content), deltas

    def finish(self) -> str:
        """The content still held back once the completion has ended."""
        self._done = True
        content, _ = self.feed("")
        if self._state == "head":  # a call that never got its name: it was text
            content += CALL_OPEN + self._buf
        elif self._state == "text" and self.calls:
            content += self._buf.strip()
        self._buf = ""
        return content

    def _step(self, content: list[str], deltas: list[dict[str, Any]]) -> bool:
        """Consume what the current state can; False when it needs more text."""
        buf = self._buf
        if self._state == "text":
            at = buf.find(CALL_OPEN) if self.parallel or not self.calls else -1
            if at < 0:
                if not self.calls:
                    keep = 0 if self._done else _partial_prefix(buf, CALL_OPEN)
                    content.append(buf[: len(buf) - keep])
                    self._buf = buf[len(buf) - keep :]
                return False
            if not self.calls:
                content.append(buf[:at])
            self._buf, self._state = buf[at + len(CALL_OPEN) :], "head"
        elif self._state == "head":
            m = _HEAD.match(buf)
            if m is None:
                return False
            call = Call(f"call_{secrets.token_hex(12)}", m.group(1))
            self.calls.append(call)
            deltas.append({"index": len(self.calls) - 1, "id": call.id, "type": "function",
                           "function": {"name": call.name, "arguments": ""}})  # fmt: skip
            self._buf, self._state = buf[m.end() :], "args"
        elif self._state == "args":
            call = self.calls[-1]
            whole = call.arguments + buf
            try:
                _, end = _DECODER.raw_decode(whole)
                closed = True
            except json.JSONDecodeError:  # not closed yet: all of it is arguments
                end, closed = len(whole), False
            piece = whole[len(call.arguments) : end]
            if piece:
                deltas.append({"index": len(self.calls) - 1, "function": {"arguments": piece}})
            call.arguments, self._buf = whole[:end], whole[end:]
            if not closed:
                return False
            self._state = "tail"
        else:  # tail: the call's closing brace and tag
            m = _TAIL.match(buf)
            if m is None:
                return False
            self._buf, self._state = buf[m.end() :], "text"
        return True


def _partial_prefix(text: str, tag: str) -> int:
    """Length of the longest end of ``text`` that begins ``tag``."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0
