/** The credit ledger's TypeScript kit. FileSpool (Node only) is at "@credit-ledger/ai-sdk/file-spool". */
export * from "./client.js";
export * from "./errors.js";
export { CHARS_PER_TOKEN, estimateInputTokens } from "./estimate.js";
export { type LedgerMiddleware, type LedgerMiddlewareOptions, ledgerMiddleware } from "./middleware.js";
export { UsageShipper } from "./shipper.js";
export { MemorySpool, type UsageSpool } from "./spool.js";
