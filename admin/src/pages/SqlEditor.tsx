// SQL editor: one statement at a time through the audited admin SQL runner, results in a grid,
// snippets saved in this browser.  Ctrl/Cmd+Enter runs.

import { useState } from "react";
import { admin } from "../api";
import { Button, ErrorBanner, Grid, Notice, PageHeader, TextArea, useAction, Field } from "../ui";

export interface SqlResult {
  columns: string[];
  rows: Record<string, unknown>[];
  row_count: number;
  truncated: boolean;
  status: string;
  duration_ms: number;
}

export function runSql(query: string, readOnly = false): Promise<SqlResult> {
  return admin<SqlResult>("/sql/execute", { method: "POST", body: { query, read_only: readOnly } });
}

const SNIPPETS = "fluxbase.sqlSnippets";

function loadSnippets(): Record<string, string> {
  try {
    return JSON.parse(localStorage.getItem(SNIPPETS) ?? "{}") as Record<string, string>;
  } catch {
    return {};
  }
}

export function SqlEditor() {
  const [query, setQuery] = useState("select now();");
  const [readOnly, setReadOnly] = useState(false);
  const [result, setResult] = useState<SqlResult | null>(null);
  const [snippets, setSnippets] = useState(loadSnippets);
  const [snippetName, setSnippetName] = useState("");
  const { busy, error, run } = useAction();

  const execute = async () => {
    const answer = await run(() => runSql(query, readOnly));
    if (answer) setResult(answer);
  };
  const save = () => {
    if (!snippetName.trim()) return;
    const next = { ...snippets, [snippetName.trim()]: query };
    localStorage.setItem(SNIPPETS, JSON.stringify(next));
    setSnippets(next);
  };
  const remove = (name: string) => {
    const next = { ...snippets };
    delete next[name];
    localStorage.setItem(SNIPPETS, JSON.stringify(next));
    setSnippets(next);
  };

  return (
    <>
      <PageHeader title="SQL editor" />
      <p className="muted">
        Runs one statement as the database owner. Every run is recorded in the activity log (string literals
        blanked); at most 1,000 rows come back.
      </p>
      <div className="split">
        <section className="grow">
          <TextArea
            label="SQL"
            value={query}
            onChange={setQuery}
            rows={8}
            className="code"
            onKeyDown={(e) => {
              if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
                e.preventDefault();
                void execute();
              }
            }}
          />
          <div className="row">
            <Button kind="primary" onClick={() => void execute()} busy={busy}>
              Run
            </Button>
            <label className="check">
              <input type="checkbox" checked={readOnly} onChange={(e) => setReadOnly(e.target.checked)} /> Read-only
              transaction
            </label>
            <span className="muted small">Ctrl+Enter runs</span>
          </div>
        </section>
        <aside className="snippets" aria-labelledby="snippets-title">
          <h2 id="snippets-title">Saved snippets</h2>
          <Field label="Snippet name" value={snippetName} onChange={setSnippetName} />
          <Button onClick={save} disabled={!snippetName.trim()}>
            Save current SQL
          </Button>
          <ul className="plain">
            {Object.keys(snippets).map((name) => (
              <li key={name} className="row">
                <button type="button" className="linkish" onClick={() => setQuery(snippets[name])}>
                  {name}
                </button>
                <button type="button" className="linkish danger" onClick={() => remove(name)} aria-label={`Delete snippet ${name}`}>
                  ✕
                </button>
              </li>
            ))}
          </ul>
        </aside>
      </div>
      <ErrorBanner error={error} />
      {result ? (
        <section aria-label="Results">
          <Notice>
            {result.status} · {result.row_count} row{result.row_count === 1 ? "" : "s"} · {result.duration_ms} ms
            {result.truncated ? " · showing the first 1,000" : ""}
          </Notice>
          {result.columns.length ? <Grid caption="Query results" columns={result.columns} rows={result.rows} /> : null}
        </section>
      ) : null}
    </>
  );
}
