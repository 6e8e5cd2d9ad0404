// Activity log: administrators' actions and sign-ins (dashboard.activity_log), filtered and paged.

import { useState, type FormEvent } from "react";
import { admin } from "../api";
import { Button, ErrorBanner, Field, Grid, Loading, PageHeader, Select, useAsync, when } from "../ui";

interface Entry {
  id: number;
  at: string;
  user_id: string | null;
  api_key_id: string | null;
  action: string;
  resource_type: string | null;
  resource_id: string | null;
  ip: string | null;
  success: boolean;
  details: Record<string, unknown>;
}

const LIMIT = 50;

export function Activity() {
  const [action, setAction] = useState("");
  const [resource, setResource] = useState("");
  const [success, setSuccess] = useState("");
  const [since, setSince] = useState("");
  const [filters, setFilters] = useState<Record<string, string>>({});
  const [offset, setOffset] = useState(0);
  const log = useAsync(() => {
    const params = new URLSearchParams({ limit: String(LIMIT), offset: String(offset) });
    for (const [k, v] of Object.entries(filters)) if (v) params.set(k, v);
    return admin<Entry[]>(`/activity?${params}`);
  }, [filters, offset]);
  const apply = (e: FormEvent) => {
    e.preventDefault();
    setOffset(0);
    setFilters({
      action: action.trim(),
      resource_type: resource.trim(),
      success,
      since: since ? new Date(since).toISOString() : "",
    });
  };
  return (
    <>
      <PageHeader title="Activity log">
        <Button onClick={() => void log.reload()} busy={log.loading && log.data !== undefined}>
          Refresh
        </Button>
      </PageHeader>
      <form className="row filters" onSubmit={apply} aria-label="Filter the activity log">
        <Field label="Action" value={action} onChange={setAction} placeholder="e.g. sql_executed" />
        <Field label="Resource type" value={resource} onChange={setResource} placeholder="e.g. table" />
        <Select
          label="Outcome"
          value={success}
          onChange={setSuccess}
          options={[
            { value: "", label: "any" },
            { value: "true", label: "succeeded" },
            { value: "false", label: "failed" },
          ]}
        />
        <Field label="Since" type="datetime-local" value={since} onChange={setSince} />
        <Button type="submit">Apply filters</Button>
      </form>
      <ErrorBanner error={log.error} />
      {log.loading && !log.data ? <Loading what="activity" /> : null}
      {log.data ? (
        <Grid
          caption="Activity, newest first"
          columns={["time", "action", "resource", "outcome", "by", "ip", "details"]}
          rows={log.data.map((e) => ({
            time: when(e.at),
            action: e.action,
            resource: [e.resource_type, e.resource_id].filter(Boolean).join(" "),
            outcome: e.success ? "ok" : "failed",
            by: e.api_key_id ? `key ${e.api_key_id.slice(0, 8)}` : e.user_id ? e.user_id.slice(0, 8) : "—",
            ip: e.ip,
            details: JSON.stringify(e.details),
          }))}
        />
      ) : null}
      <div className="row pager">
        <Button onClick={() => setOffset(Math.max(0, offset - LIMIT))} disabled={offset === 0}>
          Newer
        </Button>
        <Button onClick={() => setOffset(offset + LIMIT)} disabled={!log.data || log.data.length < LIMIT}>
          Older
        </Button>
      </div>
    </>
  );
}
