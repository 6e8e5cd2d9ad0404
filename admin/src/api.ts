// Calls to Fluxbase from the dashboard: the admin API and /dashboard/auth with the session cookie
// (HttpOnly, set by the server) and the CSRF header on every change; errors carry the server's message.

export class ApiError extends Error {
  status: number;
  code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function cookie(name: string): string | null {
  for (const part of document.cookie.split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return decodeURIComponent(rest.join("="));
  }
  return null;
}

const SAFE = new Set(["GET", "HEAD", "OPTIONS"]);
// The admin check's answers that mean the session is gone (security/dashboard_auth.py).
const SESSION_ERRORS = new Set(["token_expired", "invalid_token", "no_session", "session_not_found"]);

/** The server's words for a failed answer: GoTrue (msg, error_description), PostgREST and ours (message). */
export async function errorFrom(response: Response): Promise<ApiError> {
  let code = `http_${response.status}`;
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    code = String(body.code ?? body.error_code ?? body.error ?? code);
    message = String(body.message ?? body.msg ?? body.error_description ?? body.error ?? message);
    if (body.hint) message += ` (${body.hint})`;
  } catch {
    // Not JSON: the status line is all there is.
  }
  return new ApiError(response.status, code, message);
}

let refreshing: Promise<boolean> | null = null;
let onSignedOut: () => void = () => {};

export function whenSignedOut(callback: () => void): void {
  onSignedOut = callback;
}

/** One refresh at a time: the refresh token rotates, so two racing refreshes would end the session. */
async function refreshSession(): Promise<boolean> {
  refreshing ??= (async () => {
    try {
      const response = await fetch("/dashboard/auth/refresh", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": cookie("fluxbase_csrf") ?? "" },
        body: "{}",
      });
      return response.ok;
    } finally {
      setTimeout(() => (refreshing = null), 0);
    }
  })();
  return refreshing;
}

export interface RequestOptions {
  method?: string;
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Do not try a refresh on 401 (the sign-in calls themselves). */
  noRefresh?: boolean;
}

/** A JSON call with the dashboard session; a 401 refreshes the session once and retries. */
export async function request<T>(path: string, options: RequestOptions = {}): Promise<T> {
  const method = options.method ?? "GET";
  const send = () => {
    const headers: Record<string, string> = { Accept: "application/json", ...options.headers };
    if (!SAFE.has(method)) headers["X-CSRF-Token"] = cookie("fluxbase_csrf") ?? "";
    if (options.body !== undefined) headers["Content-Type"] = "application/json";
    return fetch(path, {
      method,
      credentials: "same-origin",
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      signal: options.signal,
    });
  };
  let response = await send();
  if (response.status === 401 && !options.noRefresh) {
    // A wrong 2FA code or password is a 401 too: only a session error means "sign in again".
    const error = await errorFrom(response.clone());
    if (!SESSION_ERRORS.has(error.code)) throw error;
    if (await refreshSession()) response = await send();
    if (response.status === 401) {
      const after = await errorFrom(response);
      if (SESSION_ERRORS.has(after.code)) onSignedOut();
      throw after;
    }
  }
  if (!response.ok) throw await errorFrom(response);
  if (response.status === 204) return undefined as T;
  const text = await response.text();
  return (text ? JSON.parse(text) : undefined) as T;
}

export const admin = <T>(path: string, options?: RequestOptions) => request<T>(`/api/v1/admin${path}`, options);
export const auth = <T>(path: string, options?: RequestOptions) => request<T>(`/dashboard/auth${path}`, options);

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
