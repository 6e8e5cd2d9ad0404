// API keys: create (the key is shown once), scopes, role, expiry, rate limit; revoke, regenerate, delete.

import { useState, type FormEvent } from "react";
import { admin } from "../api";
import { Button, Confirm, ErrorBanner, Field, Grid, Loading, Modal, Notice, PageHeader, Select, useAction, useAsync, when } from "../ui";

interface ApiKey {
  id: string;
  name: string;
  key_prefix: string;
  scopes: string[];
  role: string;
  rate_limit_per_minute: number;
  expires_at: string | null;
  revoked_at: string | null;
  last_used_at: string | null;
  created_at: string;
}

const SCOPES = [
  { value: "rest:read", label: "REST read" },
  { value: "rest:write", label: "REST write" },
  { value: "storage", label: "Storage" },
  { value: "realtime", label: "Realtime" },
  { value: "admin", label: "Admin API" },
];

function state(k: ApiKey): string {
  if (k.revoked_at) return "revoked";
  if (k.expires_at && new Date(k.expires_at) <= new Date()) return "expired";
  return "active";
}

export function ApiKeys() {
  const keys = useAsync(() => admin<ApiKey[]>("/api-keys"), []);
  const [creating, setCreating] = useState(false);
  const [shown, setShown] = useState<{ name: string; key: string } | null>(null);
  const [confirming, setConfirming] = useState<{ key: ApiKey; action: "revoke" | "regenerate" | "delete" } | null>(null);
  const action = useAction();
  const [notice, setNotice] = useState<string | null>(null);

  const confirm = async () => {
    if (!confirming) return;
    const { key, action: what } = confirming;
    const answer = await action.run(() =>
      what === "delete"
        ? admin(`/api-keys/${key.id}`, { method: "DELETE" }).then((): { key?: string } => ({}))
        : admin<{ key?: string }>(`/api-keys/${key.id}/${what}`, { method: "POST" }),
    );
    if (answer) {
      setConfirming(null);
      if (what === "regenerate" && answer.key) setShown({ name: key.name, key: answer.key });
      setNotice(what === "revoke" ? `Revoked ${key.name}` : what === "delete" ? `Deleted ${key.name}` : `New secret for ${key.name}`);
      void keys.reload();
    }
  };

  const rows = (keys.data ?? []).map((k) => ({
    name: k.name,
    prefix: `${k.key_prefix}…`,
    role: k.role,
    scopes: k.scopes.join(", "),
    "limit / min": k.rate_limit_per_minute,
    expires: when(k.expires_at),
    "last used": when(k.last_used_at),
    state: state(k),
    _key: k,
  }));

  return (
    <>
      <PageHeader title="API keys">
        <Button kind="primary" onClick={() => setCreating(true)}>
          Create key
        </Button>
      </PageHeader>
      <p className="muted">
        Keys start with <code>fbk_</code> and go in the <code>apikey</code> header or as a Bearer token. Only a hash is
        stored: a key is shown once, when it is made or regenerated. Keys named “dashboard session” are the ones this
        dashboard uses for the data, storage and realtime pages; they expire by themselves and are revoked at sign-out.
      </p>
      {notice ? <Notice>{notice}</Notice> : null}
      <ErrorBanner error={keys.error} />
      {keys.loading && !keys.data ? <Loading what="API keys" /> : null}
      {keys.data ? (
        <Grid
          caption="API keys"
          columns={["name", "prefix", "role", "scopes", "limit / min", "expires", "last used", "state"]}
          rows={rows}
          actions={(row) => {
            const k = row._key as ApiKey;
            const live = state(k) === "active";
            return (
              <div className="row">
                {live ? (
                  <>
                    <Button onClick={() => setConfirming({ key: k, action: "regenerate" })} label={`Regenerate ${k.name}`}>
                      Regenerate
                    </Button>
                    <Button kind="danger" onClick={() => setConfirming({ key: k, action: "revoke" })} label={`Revoke ${k.name}`}>
                      Revoke
                    </Button>
                  </>
                ) : null}
                <Button kind="danger" onClick={() => setConfirming({ key: k, action: "delete" })} label={`Delete ${k.name}`}>
                  Delete
                </Button>
              </div>
            );
          }}
        />
      ) : null}
      {creating ? (
        <CreateKey
          onClose={() => setCreating(false)}
          onCreated={(created) => {
            setCreating(false);
            setShown(created);
            void keys.reload();
          }}
        />
      ) : null}
      {shown ? (
        <Modal title="Copy your key now" onClose={() => setShown(null)}>
          <p>
            This is the only time the key for <strong>{shown.name}</strong> is shown. Store it in your secret manager.
          </p>
          <pre className="code secret" data-testid="new-api-key">{shown.key}</pre>
          <div className="row end">
            <Button onClick={() => void navigator.clipboard?.writeText(shown.key)}>Copy</Button>
            <Button kind="primary" onClick={() => setShown(null)}>
              Done
            </Button>
          </div>
        </Modal>
      ) : null}
      {confirming ? (
        <Confirm
          title={`${confirming.action[0].toUpperCase()}${confirming.action.slice(1)} ${confirming.key.name}?`}
          confirmLabel={confirming.action === "revoke" ? "Revoke key" : confirming.action === "delete" ? "Delete key" : "Regenerate key"}
          busy={action.busy}
          error={action.error}
          onCancel={() => setConfirming(null)}
          onConfirm={() => void confirm()}
        >
          <p>
            {confirming.action === "regenerate"
              ? "The current secret stops working on every server within seconds; a new one is shown once."
              : confirming.action === "revoke"
                ? "The key stops working on every server within seconds. This cannot be undone."
                : "The key and its record are deleted. Requests with it are refused."}
          </p>
        </Confirm>
      ) : null}
    </>
  );
}

function CreateKey({ onClose, onCreated }: { onClose: () => void; onCreated: (k: { name: string; key: string }) => void }) {
  const [name, setName] = useState("");
  const [scopes, setScopes] = useState<string[]>(["rest:read"]);
  const [role, setRole] = useState("anon");
  const [expires, setExpires] = useState("");
  const [limit, setLimit] = useState("");
  const { busy, error, run, setError } = useAction();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!scopes.length) {
      setError("Choose at least one scope");
      return;
    }
    const body: Record<string, unknown> = { name, scopes, role };
    if (expires) body.expires_at = new Date(expires).toISOString();
    if (limit) body.rate_limit_per_minute = Number(limit);
    const created = await run(() => admin<{ key: string }>("/api-keys", { method: "POST", body }));
    if (created) onCreated({ name, key: created.key });
  };
  return (
    <Modal title="Create an API key" onClose={onClose}>
      <form onSubmit={submit}>
        <Field label="Name" value={name} onChange={setName} required />
        <fieldset className="field">
          <legend>Scopes</legend>
          {SCOPES.map((s) => (
            <label key={s.value} className="check">
              <input
                type="checkbox"
                checked={scopes.includes(s.value)}
                onChange={(e) => setScopes(e.target.checked ? [...scopes, s.value] : scopes.filter((x) => x !== s.value))}
              />{" "}
              {s.label}
            </label>
          ))}
        </fieldset>
        <Select
          label="Database role"
          value={role}
          onChange={setRole}
          options={[
            { value: "anon", label: "anon (policies apply)" },
            { value: "service_role", label: "service_role (bypasses RLS)" },
          ]}
        />
        <Field label="Expires (optional)" type="datetime-local" value={expires} onChange={setExpires} />
        <Field label="Requests per minute (optional)" value={limit} onChange={setLimit} inputMode="numeric" hint="Default 1,000" />
        <ErrorBanner error={error} />
        <div className="row end">
          <Button onClick={onClose}>Cancel</Button>
          <Button kind="primary" type="submit" busy={busy}>
            Create key
          </Button>
        </div>
      </form>
    </Modal>
  );
}
