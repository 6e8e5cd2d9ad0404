// Policies per table: RLS on/off, each policy's SQL, create (the SQL shown before it runs) and drop,
// and the security advisor's findings over every table.

import { useEffect, useMemo, useState, type FormEvent } from "react";
import { admin } from "../api";
import { getTable, listTables, tablePath, type Policy, type TableDetail, type TableSummary } from "../tables";
import {
  Button,
  Confirm,
  ErrorBanner,
  Field,
  Loading,
  Notice,
  PageHeader,
  Select,
  TextArea,
  useAction,
  useAsync,
} from "../ui";

interface Finding {
  level: "warning" | "info";
  table: string;
  text: string;
}

/** What an administrator should look at: tables open to the API roles or closed to everyone. */
export function advise(tables: TableSummary[], details: TableDetail[]): Finding[] {
  const findings: Finding[] = [];
  for (const t of tables) {
    const name = `${t.schema}.${t.name}`;
    if (!t.rls_enabled) {
      findings.push({
        level: "warning",
        table: name,
        text: "Row level security is off: the API roles' grants alone decide who reads and writes every row.",
      });
    } else if (t.policy_count === 0) {
      findings.push({
        level: "info",
        table: name,
        text: "Row level security is on with no policy: no API role other than service_role sees any row.",
      });
    }
  }
  for (const d of details) {
    for (const p of d.policies) {
      const open = (expr: string | null) => expr !== null && expr.trim().toLowerCase() === "true";
      if ((open(p.using) || open(p.with_check)) && (p.roles.includes("public") || p.roles.includes("anon"))) {
        findings.push({
          level: "warning",
          table: `${d.schema}.${d.name}`,
          text: `Policy "${p.name}" (${p.command}) lets everyone, signed in or not, through.`,
        });
      }
    }
  }
  return findings;
}

export function Policies() {
  const tables = useAsync(listTables, []);
  const [selected, setSelected] = useState("");
  useEffect(() => {
    if (!selected && tables.data?.length) setSelected(`${tables.data[0].schema}.${tables.data[0].name}`);
  }, [tables.data, selected]);
  const [schema, name] = selected ? [selected.split(".")[0], selected.split(".").slice(1).join(".")] : ["", ""];
  const detail = useAsync(async () => (selected ? getTable(schema, name) : null), [selected]);
  // The advisor reads each table's policies: a handful of calls, made once per visit.
  const details = useAsync(
    async () => Promise.all((tables.data ?? []).filter((t) => t.policy_count > 0).map((t) => getTable(t.schema, t.name))),
    [tables.data],
  );
  const findings = useMemo(() => advise(tables.data ?? [], details.data ?? []), [tables.data, details.data]);
  const rls = useAction();
  const [dropping, setDropping] = useState<Policy | null>(null);
  const drop = useAction();
  const [notice, setNotice] = useState<string | null>(null);

  const refresh = () => {
    void detail.reload();
    void tables.reload();
  };
  const toggleRls = async () => {
    if (!detail.data) return;
    const answer = await rls.run(() =>
      admin<{ sql: string[] }>(`${tablePath(schema, name)}/rls`, { method: "POST", body: { enabled: !detail.data!.rls_enabled } }),
    );
    if (answer) {
      setNotice(`Ran: ${answer.sql.join("; ")}`);
      refresh();
    }
  };
  const confirmDrop = async () => {
    if (!dropping) return;
    const answer = await drop.run(() =>
      admin<{ sql: string }>(`${tablePath(schema, name)}/policies/${encodeURIComponent(dropping.name)}`, { method: "DELETE" }),
    );
    if (answer) {
      setDropping(null);
      setNotice(`Ran: ${answer.sql}`);
      refresh();
    }
  };

  return (
    <>
      <PageHeader title="Policies" />
      <ErrorBanner error={tables.error} />
      {tables.loading && !tables.data ? <Loading what="tables" /> : null}
      {tables.data ? (
        <Select
          label="Table"
          value={selected}
          onChange={setSelected}
          options={tables.data.map((t) => ({ value: `${t.schema}.${t.name}`, label: `${t.schema}.${t.name}` }))}
        />
      ) : null}
      {notice ? <Notice>{notice}</Notice> : null}
      <ErrorBanner error={detail.error} />
      {detail.data ? (
        <section aria-labelledby="rls-title">
          <h2 id="rls-title">Row level security</h2>
          <p>
            RLS is <strong>{detail.data.rls_enabled ? "on" : "off"}</strong> for <code>{selected}</code>
            {detail.data.rls_forced ? " (forced for the owner too)" : ""}.
          </p>
          <ErrorBanner error={rls.error} />
          <Button onClick={() => void toggleRls()} busy={rls.busy} kind={detail.data.rls_enabled ? "danger" : "primary"}>
            {detail.data.rls_enabled ? "Disable RLS" : "Enable RLS"}
          </Button>
          <h2>Policies on {selected}</h2>
          {detail.data.policies.length === 0 ? <p className="muted">No policies.</p> : null}
          <ul className="plain cards">
            {detail.data.policies.map((p) => (
              <li key={p.name} className="card">
                <div className="row spread">
                  <strong>{p.name}</strong>
                  <span className="muted small">
                    {p.permissive ? "permissive" : "restrictive"} · for {p.command} · to {p.roles.join(", ")}
                  </span>
                  <Button kind="danger" onClick={() => setDropping(p)}>
                    Drop
                  </Button>
                </div>
                {p.using !== null ? (
                  <p>
                    using <code>({p.using})</code>
                  </p>
                ) : null}
                {p.with_check !== null ? (
                  <p>
                    with check <code>({p.with_check})</code>
                  </p>
                ) : null}
              </li>
            ))}
          </ul>
          <NewPolicy schema={schema} table={name} onCreated={(sql) => { setNotice(`Ran: ${sql}`); refresh(); }} />
        </section>
      ) : null}
      <section aria-labelledby="advisor-title">
        <h2 id="advisor-title">Security advisor</h2>
        {findings.length === 0 ? <p className="muted">No findings.</p> : null}
        <ul className="plain">
          {findings.map((f, i) => (
            <li key={i} className={`finding finding-${f.level}`}>
              <strong>{f.level === "warning" ? "Warning" : "Note"}</strong> <code>{f.table}</code>: {f.text}
            </li>
          ))}
        </ul>
      </section>
      {dropping ? (
        <Confirm
          title={`Drop policy ${dropping.name}?`}
          confirmLabel="Drop policy"
          busy={drop.busy}
          error={drop.error}
          onCancel={() => setDropping(null)}
          onConfirm={() => void confirmDrop()}
        >
          <p>This runs:</p>
          <pre className="code">{`drop policy "${dropping.name.replace(/"/g, '""')}" on "${schema}"."${name}"`}</pre>
        </Confirm>
      ) : null}
    </>
  );
}

function NewPolicy({ schema, table, onCreated }: { schema: string; table: string; onCreated: (sql: string) => void }) {
  const [name, setName] = useState("");
  const [command, setCommand] = useState("select");
  const [roles, setRoles] = useState("authenticated");
  const [using, setUsing] = useState("");
  const [check, setCheck] = useState("");
  const [permissive, setPermissive] = useState("permissive");
  const [preview, setPreview] = useState<string | null>(null);
  const { busy, error, run } = useAction();
  const body = () => ({
    name,
    command,
    roles: roles.split(",").map((r) => r.trim()).filter(Boolean),
    using: using.trim() || undefined,
    with_check: check.trim() || undefined,
    permissive: permissive === "permissive",
  });
  const showSql = async (e: FormEvent) => {
    e.preventDefault();
    const answer = await run(() =>
      admin<{ sql: string }>(`${tablePath(schema, table)}/policies`, { method: "POST", body: { ...body(), dry_run: true } }),
    );
    if (answer) setPreview(answer.sql);
  };
  const create = async () => {
    const answer = await run(() => admin<{ sql: string }>(`${tablePath(schema, table)}/policies`, { method: "POST", body: body() }));
    if (answer) {
      setPreview(null);
      setName("");
      onCreated(answer.sql);
    }
  };
  return (
    <form onSubmit={showSql} className="card" aria-labelledby="new-policy-title">
      <h2 id="new-policy-title">New policy</h2>
      <div className="form-grid">
        <Field label="Policy name" value={name} onChange={(v) => { setName(v); setPreview(null); }} required />
        <Select
          label="Command"
          value={command}
          onChange={(v) => { setCommand(v); setPreview(null); }}
          options={["all", "select", "insert", "update", "delete"].map((c) => ({ value: c, label: c }))}
        />
        <Select
          label="Kind"
          value={permissive}
          onChange={(v) => { setPermissive(v); setPreview(null); }}
          options={[
            { value: "permissive", label: "permissive" },
            { value: "restrictive", label: "restrictive" },
          ]}
        />
        <Field label="Roles (comma-separated)" value={roles} onChange={(v) => { setRoles(v); setPreview(null); }} />
      </div>
      <TextArea label="using (which rows it sees)" value={using} onChange={(v) => { setUsing(v); setPreview(null); }} rows={2} className="code" />
      <TextArea label="with check (which rows it may write)" value={check} onChange={(v) => { setCheck(v); setPreview(null); }} rows={2} className="code" />
      <ErrorBanner error={error} />
      {preview ? (
        <div aria-live="polite">
          <p>This SQL will run:</p>
          <pre className="code" data-testid="policy-sql">{preview}</pre>
          <div className="row">
            <Button kind="primary" onClick={() => void create()} busy={busy}>
              Create policy
            </Button>
            <Button onClick={() => setPreview(null)}>Change</Button>
          </div>
        </div>
      ) : (
        <Button type="submit" busy={busy}>
          Show SQL
        </Button>
      )}
    </form>
  );
}
