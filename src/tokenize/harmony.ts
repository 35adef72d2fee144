// Renders chat messages in OpenAI's harmony format, the way vLLM builds gpt-oss prompts for
// /v1/chat/completions (no tools, no browsing): a system message with the model identity, knowledge
// cutoff, conversation start date and reasoning effort; the first system/developer turn becomes the
// developer message's instructions; prior assistant turns go to the final channel.

import type { ChatMessage } from '../common/chat.ts';

export interface HarmonyOptions {
  /** vLLM uses today's date (or VLLM_SYSTEM_START_DATE); pin it to match a pinned pool. YYYY-MM-DD. */
  startDate: string;
  reasoningEffort?: 'low' | 'medium' | 'high';
}

const MODEL_IDENTITY = 'You are ChatGPT, a large language model trained by OpenAI.';
const KNOWLEDGE_CUTOFF = '2024-06';

/** A message as separately tokenized pieces: harmony encodes each content part on its own. */
function message(header: string, body: string | string[]): string[] {
  return [`<|start|>${header}<|message|>`, ...(typeof body === 'string' ? [body] : body), '<|end|>'];
}

/** Harmony text flattens list content without a separator (vLLM's flatten_input_text_content). */
function harmonyText(content: ChatMessage['content']): string {
  if (content === null || content === undefined) return '';
  if (typeof content === 'string') return content;
  return content.map((p) => (typeof p.text === 'string' ? p.text : '')).join('');
}

/** Content parts of a user or assistant turn, each a text piece of its own. */
function harmonyParts(content: ChatMessage['content']): string[] {
  if (content === null || content === undefined) return [''];
  if (typeof content === 'string') return [content];
  return content.map((p) => (typeof p.text === 'string' ? p.text : ''));
}

/**
 * The prompt as pieces that are tokenized one by one and concatenated: openai-harmony encodes every
 * content part separately, so "a." and "b" in two parts never merge into one token.
 */
export function renderHarmonyPieces(messages: ChatMessage[], options: HarmonyOptions): string[] {
  const parts: string[] = [];
  const system = [
    MODEL_IDENTITY,
    `Knowledge cutoff: ${KNOWLEDGE_CUTOFF}`,
    `Current date: ${options.startDate}`,
    '',
    `Reasoning: ${options.reasoningEffort ?? 'medium'}`,
    '',
    '# Valid channels: analysis, commentary, final. Channel must be included for every message.',
  ].join('\n');
  parts.push(...message('system', system));

  let rest = messages;
  const first = messages[0];
  if (first && (first.role === 'system' || first.role === 'developer')) {
    const instructions = harmonyText(first.content);
    if (instructions) parts.push(...message('developer', `# Instructions\n\n${instructions}`));
    rest = messages.slice(1);
  }
  const offset = rest === messages ? 0 : 1;
  rest.forEach((m, i) => {
    if (Array.isArray(m.tool_calls) && m.tool_calls.length > 0) {
      throw new Error(`messages[${i + offset}].tool_calls: tool calls are not supported by the harmony renderer; send "tokens" instead`);
    }
    switch (m.role) {
      case 'system':
      case 'developer':
        parts.push(...message('developer', `# Instructions\n\n${harmonyText(m.content)}`));
        break;
      case 'user':
        parts.push(...message('user', harmonyParts(m.content)));
        break;
      case 'assistant': {
        const reasoning = typeof m.reasoning === 'string' ? m.reasoning : '';
        // Chain of thought before the conversation's last final answer is dropped (vLLM's
        // auto_drop_analysis_messages); a turn's own answer comes after its analysis, so it counts.
        const finalFollows = rest.slice(i).some((n) => n.role === 'assistant' && harmonyParts(n.content)[0] !== '');
        if (reasoning && !finalFollows) parts.push(...message('assistant<|channel|>analysis', reasoning));
        // vLLM keeps an assistant turn when its first part has text.
        const pieces = harmonyParts(m.content);
        if (pieces[0]) parts.push(...message('assistant<|channel|>final', pieces));
        break;
      }
      default:
        throw new Error(
          `messages[${i + offset}].role: "${m.role}" is not supported by the harmony renderer (expected system, developer, user or assistant)`,
        );
    }
  });
  parts.push('<|start|>assistant');
  return parts;
}
