// The key the dashboard uses for the public APIs (/rest/v1, /storage/v1, realtime), which refuse
// dashboard tokens by design.  It is an ordinary service_role API key made through the admin API
// (POST /api/v1/admin/api-keys): visible in the API keys page, audited, short-lived, revoked at
// sign-out.  It lives in this tab's sessionStorage so a reload does not mint another.

import { admin, errorFrom } from "./api";

const STORAGE_KEY = "fluxbase.dashboard.serviceKey";
const LIFETIME_MS = 8 * 3600 * 1000;

interface Stored {
  id: string;
  key: string;
  expiresAt: number;
  owner: string;
}

interface CreatedKey {
  id: string;
  key: string;
}

let pending: Promise<Stored> | null = null;

/** A new key reaches each server's key registry by NOTIFY, a moment after it is made: wait for it. */
async function untilAccepted(key: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (let delay = 50; ; delay = Math.min(delay * 2, 1000)) {
    const response = await fetch("/rest/v1/", { headers: { apikey: key }, credentials: "omit" });
    if (response.status !== 401 || Date.now() > deadline) return;
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
}

function stored(owner: string): Stored | null {
  try {
    const value = JSON.parse(sessionStorage.getItem(STORAGE_KEY) ?? "null") as Stored | null;
    if (value && value.owner === owner && value.expiresAt - Date.now() > 5 * 60 * 1000) return value;
  } catch {
    // A damaged entry: make a new key.
  }
  return null;
}

let currentOwner = "";

export function setKeyOwner(email: string): void {
  currentOwner = email;
}

/** The dashboard's service key, made on first use. */
export async function serviceKey(): Promise<string> {
  const existing = stored(currentOwner);
  if (existing) return existing.key;
  pending ??= (async () => {
    try {
      const expiresAt = Date.now() + LIFETIME_MS;
      const created = await admin<CreatedKey>("/api-keys", {
        method: "POST",
        body: {
          name: `dashboard session (${currentOwner}, ${new Date().toISOString().slice(0, 16)}Z)`,
          scopes: ["rest:read", "rest:write", "storage", "realtime"],
          role: "service_role",
          expires_at: new Date(expiresAt).toISOString(),
        },
      });
      await untilAccepted(created.key);
      const value = { id: created.id, key: created.key, expiresAt, owner: currentOwner };
      sessionStorage.setItem(STORAGE_KEY, JSON.stringify(value));
      return value;
    } finally {
      pending = null;
    }
  })();
  return (await pending).key;
}

/** Revokes the tab's key (sign-out); failures are ignored, since the key expires anyway. */
export async function dropServiceKey(): Promise<void> {
  const raw = sessionStorage.getItem(STORAGE_KEY);
  sessionStorage.removeItem(STORAGE_KEY);
  if (!raw) return;
  try {
    const value = JSON.parse(raw) as Stored;
    await admin(`/api-keys/${value.id}/revoke`, { method: "POST", noRefresh: true });
  } catch {
    // Already revoked or expired.
  }
}

/** A call to a public API with the service key; the answer, or the server's error. */
export async function publicApi(path: string, init: RequestInit = {}): Promise<Response> {
  const key = await serviceKey();
  const headers = new Headers(init.headers);
  headers.set("apikey", key);
  headers.set("Authorization", `Bearer ${key}`);
  const response = await fetch(path, { ...init, headers, credentials: "omit" });
  if (!response.ok) throw await errorFrom(response);
  return response;
}
