/**
 * The prompt's token count, estimated before the call, for the hold's worst case.
 *
 * Characters / 3, rounded up: tokenizers average about four characters per token on
 * English prose and fewer on code, numbers and non-Latin scripts, so three over-estimates
 * most prompts a little. Over-estimating only holds a few more credits for the length of
 * the call (the debit comes from the usage the provider reports), while under-estimating
 * would let a call start that the balance cannot cover. No tokenizer is bundled: the kit
 * works for every model without one, and adds no runtime dependency.
 */
import type { LanguageModelV2CallOptions } from "@ai-sdk/provider";

export const CHARS_PER_TOKEN = 3;
// A message's role and framing cost a few tokens on every provider.
const MESSAGE_OVERHEAD_CHARS = 12;
// An image or file part: about what providers charge for a large image.
const FILE_PART_TOKENS = 1_600;

export function estimateInputTokens(params: LanguageModelV2CallOptions): number {
  let chars = 0;
  for (const message of params.prompt) {
    chars += MESSAGE_OVERHEAD_CHARS;
    if (typeof message.content === "string") {
      chars += message.content.length;
      continue;
    }
    for (const part of message.content) {
      switch (part.type) {
        case "text":
        case "reasoning":
          chars += part.text.length;
          break;
        case "tool-call":
          chars += part.toolName.length + JSON.stringify(part.input ?? null).length;
          break;
        case "tool-result":
          chars += part.toolName.length + JSON.stringify(part.output ?? null).length;
          break;
        case "file":
          chars += FILE_PART_TOKENS * CHARS_PER_TOKEN;
          break;
      }
    }
  }
  // Tool definitions are sent with the prompt and counted as input.
  if (params.tools?.length) chars += JSON.stringify(params.tools).length;
  if (params.responseFormat?.type === "json" && params.responseFormat.schema) {
    chars += JSON.stringify(params.responseFormat.schema).length;
  }
  return Math.ceil(chars / CHARS_PER_TOKEN);
}
