// Settings: the effective configuration as the server runs it, secrets masked (read-only).

import { admin } from "../api";
import { ErrorBanner, Loading, PageHeader, useAsync } from "../ui";

function flatten(value: unknown, prefix = ""): [string, string][] {
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    return Object.entries(value as Record<string, unknown>).flatMap(([k, v]) => flatten(v, prefix ? `${prefix}.${k}` : k));
  }
  return [[prefix, value === null ? "—" : Array.isArray(value) ? value.join(", ") : String(value)]];
}

export function Settings() {
  const settings = useAsync(() => admin<Record<string, unknown>>("/settings"), []);
  const rows = settings.data ? flatten(settings.data) : [];
  return (
    <>
      <PageHeader title="Settings" />
      <p className="muted">
        The configuration this server runs with (fluxbase.yaml, then FLUXBASE_* variables). Secrets show as ********.
        Change it in the file or the environment and restart.
      </p>
      <ErrorBanner error={settings.error} />
      {settings.loading && !settings.data ? <Loading what="settings" /> : null}
      {settings.data ? (
        <dl className="settings">
          {rows.map(([k, v]) => (
            <div key={k} className="setting">
              <dt>
                <code>{k}</code>
              </dt>
              <dd>{v}</dd>
            </div>
          ))}
        </dl>
      ) : null}
    </>
  );
}
