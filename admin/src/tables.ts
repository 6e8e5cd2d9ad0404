// What the table editor, policies and realtime pages know of tables: the admin API's descriptions,
// and rows through /rest/v1 (PostgREST's query language) with the dashboard's service key.

import { admin } from "./api";
import { publicApi } from "./serviceKey";

export interface TableSummary {
  schema: string;
  name: string;
  rls_enabled: boolean;
  rls_forced: boolean;
  estimated_rows: number;
  realtime_enabled: boolean;
  policy_count: number;
}

export interface Column {
  name: string;
  type: string;
  nullable: boolean;
  default: string | null;
  primary_key: boolean;
}

export interface Policy {
  name: string;
  command: string;
  permissive: boolean;
  roles: string[];
  using: string | null;
  with_check: string | null;
}

export interface TableDetail extends TableSummary {
  columns: Column[];
  policies: Policy[];
}

export const listTables = () => admin<TableSummary[]>("/tables");

export const tablePath = (schema: string, name: string) =>
  `/tables/${encodeURIComponent(schema)}/${encodeURIComponent(name)}`;

export const getTable = (schema: string, name: string) => admin<TableDetail>(tablePath(schema, name));

export type Operator = "eq" | "neq" | "gt" | "gte" | "lt" | "lte" | "like" | "ilike" | "is";

export interface Filter {
  column: string;
  operator: Operator;
  value: string;
}

export interface RowQuery {
  schema: string;
  table: string;
  limit: number;
  offset: number;
  order: { column: string; ascending: boolean } | null;
  filters: Filter[];
}

function profile(schema: string, write: boolean): Record<string, string> {
  return write ? { "Content-Profile": schema } : { "Accept-Profile": schema };
}

function filterParams(params: URLSearchParams, filters: Filter[]): void {
  for (const f of filters) {
    if (!f.column) continue;
    params.append(f.column, `${f.operator}.${f.value}`);
  }
}

export async function fetchRows(q: RowQuery): Promise<{ rows: Record<string, unknown>[]; total: number | null }> {
  const params = new URLSearchParams({ select: "*", limit: String(q.limit), offset: String(q.offset) });
  if (q.order) params.set("order", `${q.order.column}.${q.order.ascending ? "asc" : "desc"}.nullslast`);
  filterParams(params, q.filters);
  const response = await publicApi(`/rest/v1/${encodeURIComponent(q.table)}?${params}`, {
    headers: { ...profile(q.schema, false), Prefer: "count=exact" },
  });
  const range = response.headers.get("Content-Range") ?? "";
  const total = Number.parseInt(range.split("/")[1] ?? "", 10);
  return { rows: (await response.json()) as Record<string, unknown>[], total: Number.isNaN(total) ? null : total };
}

/** The primary key's filters for one row: how an edit or a delete names it. */
export function keyFilters(columns: Column[], row: Record<string, unknown>): Filter[] {
  const keys = columns.filter((c) => c.primary_key);
  if (!keys.length) throw new Error("This table has no primary key: edit its rows with SQL");
  return keys.map((c) => ({ column: c.name, operator: "eq", value: String(row[c.name]) }));
}

export async function insertRow(schema: string, table: string, values: Record<string, unknown>) {
  const response = await publicApi(`/rest/v1/${encodeURIComponent(table)}`, {
    method: "POST",
    headers: { ...profile(schema, true), "Content-Type": "application/json", Prefer: "return=representation" },
    body: JSON.stringify(values),
  });
  return (await response.json()) as Record<string, unknown>[];
}

export async function updateRow(schema: string, table: string, key: Filter[], values: Record<string, unknown>) {
  const params = new URLSearchParams();
  filterParams(params, key);
  const response = await publicApi(`/rest/v1/${encodeURIComponent(table)}?${params}`, {
    method: "PATCH",
    headers: { ...profile(schema, true), "Content-Type": "application/json", Prefer: "return=representation" },
    body: JSON.stringify(values),
  });
  return (await response.json()) as Record<string, unknown>[];
}

export async function deleteRow(schema: string, table: string, key: Filter[]) {
  const params = new URLSearchParams();
  filterParams(params, key);
  await publicApi(`/rest/v1/${encodeURIComponent(table)}?${params}`, {
    method: "DELETE",
    headers: profile(schema, true),
  });
}

export type InputKind = "boolean" | "number" | "json" | "datetime" | "date" | "text" | "uuid";

/** Which input a column's type gets in the row form. */
export function inputKind(type: string): InputKind {
  const t = type.toLowerCase();
  if (t === "boolean") return "boolean";
  if (/^(smallint|integer|bigint|real|double precision|numeric|decimal)/.test(t)) return "number";
  if (t.startsWith("json")) return "json";
  if (t.startsWith("timestamp")) return "datetime";
  if (t === "date") return "date";
  if (t === "uuid") return "uuid";
  return "text";
}

/** A form's text as the JSON value REST expects for the column; throws with a message a person reads. */
export function parseInput(column: Column, text: string): unknown {
  const kind = inputKind(column.type);
  if (text === "" && column.nullable) return null;
  switch (kind) {
    case "boolean":
      if (text === "true" || text === "false") return text === "true";
      throw new Error(`${column.name}: choose true or false`);
    case "number": {
      const value = Number(text);
      if (text.trim() === "" || Number.isNaN(value)) throw new Error(`${column.name}: ${text || "empty"} is not a number`);
      // bigint and numeric stay text, so no precision is lost on the way.
      return /^(bigint|numeric|decimal)/.test(column.type) ? text.trim() : value;
    }
    case "json":
      try {
        return JSON.parse(text);
      } catch {
        throw new Error(`${column.name}: not valid JSON`);
      }
    default:
      return text;
  }
}

export function formText(column: Column, value: unknown): string {
  if (value === null || value === undefined) return "";
  if (inputKind(column.type) === "json") return JSON.stringify(value, null, 2);
  return String(value);
}

export interface ForeignKey {
  table: string;
  column: string;
}

/** Each column's foreign key, read from the REST root's OpenAPI notes (PostgREST's <fk .../> tags). */
export async function foreignKeys(schema: string, table: string): Promise<Record<string, ForeignKey>> {
  const response = await publicApi("/rest/v1/", { headers: { "Accept-Profile": schema, Accept: "application/openapi+json" } });
  type Schemas = Record<string, { properties?: Record<string, { description?: string }> }>;
  // OpenAPI 3 (components.schemas, ours) or Swagger 2 (definitions, PostgREST's).
  const spec = (await response.json()) as { components?: { schemas?: Schemas }; definitions?: Schemas };
  const schemas = spec.components?.schemas ?? spec.definitions ?? {};
  const found: Record<string, ForeignKey> = {};
  for (const [column, property] of Object.entries(schemas[table]?.properties ?? {})) {
    const match = /<fk table='([^']+)' column='([^']+)'\/>/.exec(property.description ?? "");
    if (match) found[column] = { table: match[1], column: match[2] };
  }
  return found;
}
