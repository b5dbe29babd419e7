/**
 * The client against the project's contract documents: every route it calls exists in
 * docs/openapi.json with the method it uses, every field its request and answer types name
 * is a property of the route's schema, and every error code it types is in
 * docs/contracts.md. A change of the API that the client does not follow fails here.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import {
  BALANCE_FIELDS,
  GRANT_ACCEPTED_FIELDS,
  GRANT_REQUEST_FIELDS,
  HOLD_BY_CREDITS_FIELDS,
  HOLD_BY_MODEL_FIELDS,
  QUOTE_FIELDS,
  QUOTE_REQUEST_FIELDS,
  REJECTED_ITEM_FIELDS,
  ROUTES,
  USAGE_ACCEPTED_FIELDS,
  USAGE_RECORDED_FIELDS,
} from "../src/index.js";
import type { ApiErrorCode, UsageRejectionCode } from "../src/index.js";

// dist/test/ -> the repository root
const root = new URL("../../../../", import.meta.url);
const openapi = JSON.parse(readFileSync(new URL("docs/openapi.json", root), "utf8"));
const contracts = readFileSync(new URL("docs/contracts.md", root), "utf8");
const usageSchema = JSON.parse(
  readFileSync(new URL("schemas/json/usage.recorded.json", root), "utf8"),
);

type Schema = { properties?: Record<string, unknown>; $ref?: string };

function schema(name: string): Schema {
  const found = openapi.components.schemas[name];
  assert.ok(found, `docs/openapi.json has no schema ${name}`);
  return found;
}

function resolve(node: Schema): Schema {
  return node.$ref ? schema(node.$ref.split("/").pop() ?? "") : node;
}

function operation(route: keyof typeof ROUTES) {
  const [method, path] = ROUTES[route];
  const found = openapi.paths[path]?.[method];
  assert.ok(found, `docs/openapi.json has no ${method.toUpperCase()} ${path} (client.${route})`);
  return found;
}

function requestSchema(route: keyof typeof ROUTES): Schema {
  return resolve(operation(route).requestBody.content["application/json"].schema);
}

function answerSchema(route: keyof typeof ROUTES, status: string): Schema {
  return resolve(operation(route).responses[status].content["application/json"].schema);
}

function assertFields(fields: object, target: Schema, what: string) {
  const known = Object.keys(target.properties ?? {});
  for (const field of Object.keys(fields)) {
    assert.ok(known.includes(field), `${what}: the client names ${field}, the API has ${known}`);
  }
}

test("every route the client calls is in docs/openapi.json", () => {
  for (const route of Object.keys(ROUTES) as (keyof typeof ROUTES)[]) operation(route);
});

test("request bodies name only fields the API's schemas have", () => {
  assertFields(HOLD_BY_MODEL_FIELDS, requestSchema("placeHold"), "hold by model");
  assertFields(HOLD_BY_CREDITS_FIELDS, requestSchema("placeHold"), "hold by credits");
  assertFields(QUOTE_REQUEST_FIELDS, requestSchema("quote"), "quote request");
  assertFields(GRANT_REQUEST_FIELDS, requestSchema("grant"), "grant request");
  assert.ok(requestSchema("postUsage").properties?.["events"], "POST /v1/usage takes events");
  assertFields(USAGE_RECORDED_FIELDS, usageSchema, "usage.recorded");
});

test("answers name only fields the API's schemas have", () => {
  assertFields(BALANCE_FIELDS, answerSchema("balance", "200"), "balance");
  assertFields(USAGE_ACCEPTED_FIELDS, answerSchema("postUsage", "202"), "usage answer");
  assertFields(REJECTED_ITEM_FIELDS, schema("RejectedItem"), "usage rejection");
  assertFields(QUOTE_FIELDS, answerSchema("quote", "200"), "quote");
  assertFields(GRANT_ACCEPTED_FIELDS, answerSchema("grant", "202"), "grant answer");
  const hold = operation("placeHold").responses;
  for (const status of ["200", "201", "402", "409", "422"]) {
    assert.ok(hold[status], `POST holds answers ${status}`);
  }
});

test("every error code the client types is documented in docs/contracts.md", () => {
  // Records keyed by the unions: the compiler makes them list every member, exactly.
  const apiCodes: Record<ApiErrorCode, true> = {
    bad_request: true, invalid_json: true, validation_error: true,
    invalid_idempotency_key: true, missing_idempotency_key: true, invalid_cursor: true,
    invalid_period: true, invalid_webhook_url: true, payload_too_large: true,
    unauthorized: true, forbidden: true, not_found: true, method_not_allowed: true,
    account_not_found: true, key_not_found: true, hold_not_found: true, hold_settled: true,
    idempotency_conflict: true, insufficient_credits: true, budget_exceeded: true,
    balance_limit: true, unknown_model: true, exceeds_context: true,
    database_unavailable: true, kafka_unavailable: true,
    projection_unavailable: true, ledger_unavailable: true,
  };
  const usageCodes: Record<UsageRejectionCode, true> = {
    invalid_json: true, invalid_event: true, unknown_model: true, exceeds_context: true,
  };
  const missing = [...Object.keys(apiCodes), ...Object.keys(usageCodes)].filter(
    (code) => !contracts.includes(`\`${code}\``),
  );
  assert.deepEqual(missing, [], "codes the client types but docs/contracts.md does not name");
});
