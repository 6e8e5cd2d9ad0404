// Table editor: schemas and tables (admin API), rows with paging, sort and filters through /rest/v1,
// insert, edit and delete with inputs that follow each column's type.

import { useEffect, useId, useMemo, useState, type FormEvent } from "react";
import { message } from "../api";
import {
  deleteRow,
  fetchRows,
  foreignKeys,
  formText,
  getTable,
  inputKind,
  insertRow,
  keyFilters,
  listTables,
  parseInput,
  updateRow,
  type Column,
  type Filter,
  type Operator,
  type TableDetail,
} from "../tables";
import { Button, cellText, Confirm, ErrorBanner, Grid, Loading, Modal, Notice, PageHeader, Select, useAction, useAsync } from "../ui";

const PAGE_SIZES = [25, 50, 100];
const OPERATORS: Operator[] = ["eq", "neq", "gt", "gte", "lt", "lte", "like", "ilike", "is"];

export function TableEditor() {
  const tables = useAsync(listTables, []);
  const [schema, setSchema] = useState("public");
  const [table, setTable] = useState("");
  // Following a foreign key opens the referenced table filtered to the referenced row.
  const [followed, setFollowed] = useState<Filter[]>([]);
  const schemas = useMemo(() => [...new Set((tables.data ?? []).map((t) => t.schema))], [tables.data]);
  const inSchema = (tables.data ?? []).filter((t) => t.schema === schema);

  useEffect(() => {
    if (tables.data && !schemas.includes(schema) && schemas.length) setSchema(schemas[0]);
  }, [tables.data, schemas, schema]);

  return (
    <>
      <PageHeader title="Table editor">
        <Button onClick={() => void tables.reload()} busy={tables.loading && tables.data !== undefined}>
          Reload tables
        </Button>
      </PageHeader>
      <ErrorBanner error={tables.error} />
      {tables.data === undefined ? (
        tables.loading ? <Loading what="tables" /> : null
      ) : (
        <div className="split">
          <nav className="table-list" aria-label="Tables">
            <Select
              label="Schema"
              value={schema}
              onChange={(value) => {
                setSchema(value);
                setTable("");
              }}
              options={schemas.map((s) => ({ value: s, label: s }))}
            />
            {inSchema.length === 0 ? <p className="muted">No tables in this schema. Create one in the SQL editor.</p> : null}
            <ul className="plain">
              {inSchema.map((t) => (
                <li key={t.name}>
                  <button
                    type="button"
                    className={`list-item${t.name === table ? " selected" : ""}`}
                    aria-pressed={t.name === table}
                    onClick={() => {
                      setFollowed([]);
                      setTable(t.name);
                    }}
                  >
                    {t.name}
                    <span className="muted small"> ~{Math.max(t.estimated_rows, 0)} rows</span>
                  </button>
                </li>
              ))}
            </ul>
          </nav>
          <section className="grow" aria-label="Rows">
            {table ? (
              <Rows
                key={`${schema}.${table}.${JSON.stringify(followed)}`}
                schema={schema}
                table={table}
                initialFilters={followed}
                onFollow={(t, filter) => {
                  setFollowed([filter]);
                  setTable(t);
                }}
              />
            ) : (
              <p className="muted">Choose a table.</p>
            )}
          </section>
        </div>
      )}
    </>
  );
}

function Rows({
  schema,
  table,
  initialFilters,
  onFollow,
}: {
  schema: string;
  table: string;
  initialFilters: Filter[];
  onFollow: (table: string, filter: Filter) => void;
}) {
  const detail = useAsync(() => getTable(schema, table), [schema, table]);
  const links = useAsync(() => foreignKeys(schema, table), [schema, table]);
  const [limit, setLimit] = useState(25);
  const [offset, setOffset] = useState(0);
  const [order, setOrder] = useState<{ column: string; ascending: boolean } | null>(null);
  const [filters, setFilters] = useState<Filter[]>(initialFilters);
  const [draft, setDraft] = useState<Filter>({ column: "", operator: "eq", value: "" });
  const rows = useAsync(
    () => fetchRows({ schema, table, limit, offset, order, filters }),
    [schema, table, limit, offset, order, filters],
  );
  const [editing, setEditing] = useState<Record<string, unknown> | "new" | null>(null);
  const [deleting, setDeleting] = useState<Record<string, unknown> | null>(null);
  const removal = useAction();
  const [notice, setNotice] = useState<string | null>(null);

  // A result line belongs to the view it was made in.
  useEffect(() => setNotice(null), [limit, offset, order, filters]);
  const columns = detail.data?.columns ?? [];
  const names = columns.map((c) => c.name);
  const total = rows.data?.total ?? null;

  const sortBy = (column: string) => {
    setOrder((o) => (o?.column === column ? { column, ascending: !o.ascending } : { column, ascending: true }));
    setOffset(0);
  };

  const confirmDelete = async () => {
    if (!deleting || !detail.data) return;
    const row = deleting;
    const done = await removal.run(async () => {
      await deleteRow(schema, table, keyFilters(columns, row));
      return true;
    });
    if (done) {
      setDeleting(null);
      setNotice("Row deleted");
      void rows.reload();
    }
  };

  return (
    <>
      <h2>
        {schema}.{table}
      </h2>
      <ErrorBanner error={detail.error} />
      {detail.data ? (
        <p className="muted small">
          {columns.map((c) => `${c.name} ${c.type}${c.primary_key ? " (key)" : ""}`).join(" · ")}
        </p>
      ) : null}
      <form
        className="row filters"
        aria-label="Filter rows"
        onSubmit={(e) => {
          e.preventDefault();
          if (!draft.column) return;
          setFilters([...filters, draft]);
          setDraft({ ...draft, value: "" });
          setOffset(0);
        }}
      >
        <Select
          label="Column"
          value={draft.column}
          onChange={(column) => setDraft({ ...draft, column })}
          options={[{ value: "", label: "—" }, ...names.map((n) => ({ value: n, label: n }))]}
        />
        <Select
          label="Operator"
          value={draft.operator}
          onChange={(operator) => setDraft({ ...draft, operator: operator as Operator })}
          options={OPERATORS.map((o) => ({ value: o, label: o }))}
        />
        <FilterValue value={draft.value} onChange={(value) => setDraft({ ...draft, value })} />
        <Button type="submit" disabled={!draft.column}>
          Add filter
        </Button>
        <Button kind="primary" onClick={() => setEditing("new")} disabled={!detail.data}>
          Insert row
        </Button>
      </form>
      {filters.length ? (
        <ul className="chips" aria-label="Active filters">
          {filters.map((f, i) => (
            <li key={i}>
              <code>
                {f.column} {f.operator} {f.value}
              </code>
              <button
                type="button"
                className="linkish"
                aria-label={`Remove filter ${f.column} ${f.operator} ${f.value}`}
                onClick={() => setFilters(filters.filter((_, j) => j !== i))}
              >
                ✕
              </button>
            </li>
          ))}
        </ul>
      ) : null}
      {notice ? <Notice>{notice}</Notice> : null}
      <ErrorBanner error={rows.error} />
      {rows.loading ? <Loading what="rows" /> : null}
      {rows.data ? (
        <Grid
          caption={`Rows of ${schema}.${table}`}
          columns={names.length ? names : Object.keys(rows.data.rows[0] ?? {})}
          rows={rows.data.rows}
          sort={order}
          onSort={sortBy}
          cell={(column, row) => {
            const fk = links.data?.[column];
            const value = row[column];
            if (!fk || value === null || value === undefined) return cellText(value);
            return (
              <button
                type="button"
                className="linkish"
                aria-label={`${cellText(value)}: open ${fk.table} where ${fk.column} = ${cellText(value)}`}
                onClick={() => onFollow(fk.table, { column: fk.column, operator: "eq", value: String(value) })}
              >
                {cellText(value)} →
              </button>
            );
          }}
          actions={(row) => (
            <div className="row">
              <Button onClick={() => setEditing(row)}>Edit</Button>
              <Button kind="danger" onClick={() => setDeleting(row)}>
                Delete
              </Button>
            </div>
          )}
        />
      ) : null}
      <div className="row pager">
        <Button onClick={() => setOffset(Math.max(0, offset - limit))} disabled={offset === 0}>
          Previous page
        </Button>
        <span className="muted">
          {rows.data ? `Rows ${rows.data.rows.length ? offset + 1 : 0}–${offset + rows.data.rows.length}` : ""}
          {total !== null ? ` of ${total}` : ""}
        </span>
        <Button
          onClick={() => setOffset(offset + limit)}
          disabled={!rows.data || rows.data.rows.length < limit || (total !== null && offset + limit >= total)}
        >
          Next page
        </Button>
        <Select
          label="Rows per page"
          value={String(limit)}
          onChange={(v) => {
            setLimit(Number(v));
            setOffset(0);
          }}
          options={PAGE_SIZES.map((n) => ({ value: String(n), label: String(n) }))}
        />
      </div>
      {editing && detail.data ? (
        <RowForm
          detail={detail.data}
          row={editing === "new" ? null : editing}
          onClose={() => setEditing(null)}
          onSaved={(what) => {
            setEditing(null);
            setNotice(what);
            void rows.reload();
          }}
        />
      ) : null}
      {deleting ? (
        <Confirm
          title="Delete this row?"
          confirmLabel="Delete row"
          busy={removal.busy}
          error={removal.error}
          onCancel={() => {
            setDeleting(null);
            removal.setError(null);
          }}
          onConfirm={() => void confirmDelete()}
        >
          <p>
            The row of <code>{schema}.{table}</code> with{" "}
            {(() => {
              try {
                return keyFilters(columns, deleting)
                  .map((f) => `${f.column} = ${f.value}`)
                  .join(", ");
              } catch (e) {
                return message(e);
              }
            })()}{" "}
            is deleted for good.
          </p>
        </Confirm>
      ) : null}
    </>
  );
}

function FilterValue({ value, onChange }: { value: string; onChange: (v: string) => void }) {
  const id = useId();
  return (
    <div className="field">
      <label htmlFor={id}>Value</label>
      <input id={id} value={value} onChange={(e) => onChange(e.target.value)} />
    </div>
  );
}

function RowForm({
  detail,
  row,
  onClose,
  onSaved,
}: {
  detail: TableDetail;
  row: Record<string, unknown> | null;
  onClose: () => void;
  onSaved: (what: string) => void;
}) {
  const [values, setValues] = useState<Record<string, string>>(() =>
    Object.fromEntries(detail.columns.map((c) => [c.name, row ? formText(c, row[c.name]) : ""])),
  );
  // On insert, an untouched column with a default is left out so the database fills it.
  const [touched, setTouched] = useState<Set<string>>(new Set());
  const { busy, error, run } = useAction();

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const saved = await run(async () => {
      const body: Record<string, unknown> = {};
      for (const c of detail.columns) {
        const text = values[c.name];
        if (row === null && !touched.has(c.name) && (c.default !== null || text === "")) continue;
        if (row !== null && !touched.has(c.name)) continue;
        body[c.name] = parseInput(c, text);
      }
      if (row === null) {
        await insertRow(detail.schema, detail.name, body);
        return "Row inserted";
      }
      if (!Object.keys(body).length) return "Nothing changed";
      await updateRow(detail.schema, detail.name, keyFilters(detail.columns, row), body);
      return "Row updated";
    });
    if (saved) onSaved(saved);
  };

  return (
    <Modal title={row ? "Edit row" : "Insert row"} onClose={onClose} wide>
      <form onSubmit={submit}>
        <div className="form-grid">
          {detail.columns.map((c) => (
            <ColumnInput
              key={c.name}
              column={c}
              value={values[c.name]}
              onChange={(v) => {
                setValues({ ...values, [c.name]: v });
                setTouched(new Set(touched).add(c.name));
              }}
            />
          ))}
        </div>
        <ErrorBanner error={error} />
        <div className="row end">
          <Button onClick={onClose}>Cancel</Button>
          <Button kind="primary" type="submit" busy={busy}>
            {row ? "Save" : "Insert"}
          </Button>
        </div>
      </form>
    </Modal>
  );
}

function ColumnInput({ column, value, onChange }: { column: Column; value: string; onChange: (v: string) => void }) {
  const id = useId();
  const kind = inputKind(column.type);
  const hint = [column.type, column.nullable ? "nullable" : "required", column.default ? `default ${column.default}` : ""]
    .filter(Boolean)
    .join(" · ");
  return (
    <div className="field">
      <label htmlFor={id}>
        {column.name}
        {column.primary_key ? " (key)" : ""}
      </label>
      {kind === "boolean" ? (
        <select id={id} value={value} onChange={(e) => onChange(e.target.value)} aria-describedby={`${id}-hint`}>
          <option value="">{column.nullable ? "NULL" : "—"}</option>
          <option value="true">true</option>
          <option value="false">false</option>
        </select>
      ) : kind === "json" ? (
        <textarea id={id} rows={3} className="code" value={value} onChange={(e) => onChange(e.target.value)} aria-describedby={`${id}-hint`} />
      ) : (
        <input
          id={id}
          value={value}
          inputMode={kind === "number" ? "decimal" : undefined}
          placeholder={kind === "datetime" ? "2026-01-31T12:00:00Z" : kind === "date" ? "2026-01-31" : column.default ? "default" : ""}
          onChange={(e) => onChange(e.target.value)}
          aria-describedby={`${id}-hint`}
        />
      )}
      <small id={`${id}-hint`} className="muted">
        {hint}
      </small>
    </div>
  );
}
