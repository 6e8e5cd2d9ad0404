// Realtime inspector: which tables publish changes (enable/disable), and a live feed of one table's
// changes over the same WebSocket a supabase-js client uses.

import { useEffect, useState } from "react";
import { admin, message } from "../api";
import { watchTable, type Change } from "../realtime";
import { serviceKey } from "../serviceKey";
import { listTables, tablePath, type TableSummary } from "../tables";
import { Button, ErrorBanner, Grid, Loading, PageHeader, Select, useAction, useAsync, when } from "../ui";

const MAX_EVENTS = 200;

export function RealtimeInspector() {
  const tables = useAsync(listTables, []);
  const toggle = useAction();
  const [watched, setWatched] = useState("");
  const [status, setStatus] = useState("not listening");
  const [events, setEvents] = useState<Change[]>([]);
  const [error, setError] = useState<string | null>(null);

  const setRealtime = async (t: TableSummary) => {
    const done = await toggle.run(() =>
      t.realtime_enabled
        ? admin(`/realtime${tablePath(t.schema, t.name)}`, { method: "DELETE" })
        : admin("/realtime/tables", { method: "POST", body: { schema: t.schema, table: t.name } }),
    );
    if (done !== undefined) void tables.reload();
  };

  useEffect(() => {
    if (!watched) return;
    const [schema, ...rest] = watched.split(".");
    let stop: (() => void) | null = null;
    let cancelled = false;
    setEvents([]);
    setStatus("connecting");
    setError(null);
    serviceKey()
      .then((key) => {
        if (cancelled) return;
        const watch = watchTable(key, schema, rest.join("."), {
          onStatus: setStatus,
          onChange: (change) => setEvents((list) => [change, ...list].slice(0, MAX_EVENTS)),
        });
        stop = watch.close;
      })
      .catch((e) => setError(message(e)));
    return () => {
      cancelled = true;
      stop?.();
    };
  }, [watched]);

  const enabled = (tables.data ?? []).filter((t) => t.realtime_enabled);
  return (
    <>
      <PageHeader title="Realtime" />
      <ErrorBanner error={tables.error ?? toggle.error ?? error} />
      {tables.loading && !tables.data ? <Loading what="tables" /> : null}
      {tables.data ? (
        <Grid
          caption="Tables and their realtime state"
          columns={["table", "realtime"]}
          rows={tables.data.map((t) => ({ table: `${t.schema}.${t.name}`, realtime: t.realtime_enabled ? "on" : "off", _t: t }))}
          actions={(row) => {
            const t = row._t as TableSummary;
            return (
              <Button onClick={() => void setRealtime(t)} busy={toggle.busy} label={`${t.realtime_enabled ? "Disable" : "Enable"} realtime for ${t.schema}.${t.name}`}>
                {t.realtime_enabled ? "Disable" : "Enable"}
              </Button>
            );
          }}
        />
      ) : null}
      <section aria-labelledby="feed-title">
        <h2 id="feed-title">Live changes</h2>
        <div className="row">
          <Select
            label="Watch table"
            value={watched}
            onChange={setWatched}
            options={[{ value: "", label: "—" }, ...enabled.map((t) => ({ value: `${t.schema}.${t.name}`, label: `${t.schema}.${t.name}` }))]}
          />
          <span className="status" role="status" data-testid="realtime-status">
            {status}
          </span>
          <Button onClick={() => setEvents([])} disabled={!events.length}>
            Clear
          </Button>
        </div>
        <p className="muted small">
          Changes arrive as the service role sees them (every row); apps see only what their policies allow.
        </p>
        <div aria-live="polite">
          <Grid
            caption="Changes, newest first"
            columns={["time", "type", "table", "record"]}
            rows={events.map((e) => ({
              time: when(e.commit_timestamp),
              type: e.type,
              table: `${e.schema}.${e.table}`,
              record: JSON.stringify(e.record ?? e.old_record ?? {}),
            }))}
          />
        </div>
      </section>
    </>
  );
}
