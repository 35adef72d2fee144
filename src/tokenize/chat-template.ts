// Renders chat messages to prompt text with a model's Jinja chat template, the way vLLM does for
// /v1/chat/completions: messages flattened to vLLM's "string" content format, "developer" turns
// turned into "system" when the template does not know that role, and the template called as
// transformers' apply_chat_template calls it (trim_blocks, lstrip_blocks, special tokens as variables).

import { Template } from '@huggingface/jinja';
import { templateMessage, templateTools, type ChatMessage, type ChatTool } from '../common/chat.ts';
import type { ChatTemplateConfig } from './encoder.ts';

export interface ChatRenderOptions {
  /** vLLM's default for chat requests is true. */
  addGenerationPrompt?: boolean;
  /** Extra template variables (vLLM's chat_template_kwargs, e.g. enable_thinking). */
  templateKwargs?: Record<string, unknown>;
  /** Tools the template renders (vLLM's `tools`), passed as vLLM dumps them. */
  tools?: ChatTool[];
}

export type ChatRenderer = (messages: ChatMessage[], options?: ChatRenderOptions) => string;

/** Text of a message's content in vLLM's "string" format: text parts joined by newlines. */
function contentText(content: ChatMessage['content']): string {
  if (content === null || content === undefined) return '';
  if (typeof content === 'string') return content;
  const texts: string[] = [];
  for (const part of content) if (part.type === 'text' && typeof part.text === 'string') texts.push(part.text);
  return texts.join('\n');
}

/** vLLM's developer -> system conversion, merging every system turn into one at the front when needed. */
function convertDeveloperTurns(messages: ChatMessage[]): ChatMessage[] {
  const converted = messages.map((m) => (m.role === 'developer' ? { ...m, role: 'system' } : m));
  const systemTexts: string[] = [];
  const others: ChatMessage[] = [];
  let needsMerge = false;
  converted.forEach((m, i) => {
    if (m.role !== 'system') {
      others.push(m);
      return;
    }
    if (i > 0 || systemTexts.length > 0) needsMerge = true;
    const text = contentText(m.content);
    if (text) systemTexts.push(text);
  });
  if (!needsMerge) return converted;
  return [{ role: 'system', content: systemTexts.join('\n\n') }, ...others];
}

export function createChatRenderer(config: ChatTemplateConfig): ChatRenderer {
  const template = new Template(config.template);
  const knowsDeveloper = config.template.includes('"developer"') || config.template.includes("'developer'");
  return (messages, options = {}) => {
    const hasDeveloper = messages.some((m) => m.role === 'developer');
    const turns = hasDeveloper && !knowsDeveloper ? convertDeveloperTurns(messages) : messages;
    const conversation = turns.map((m, i) => templateMessage(m, contentText(m.content), i));
    return template.render({
      ...config.specialTokens,
      ...options.templateKwargs,
      ...(options.tools ? { tools: templateTools(options.tools) } : {}),
      messages: conversation,
      add_generation_prompt: options.addGenerationPrompt ?? true,
    });
  };
}
