// Account: profile, password, 2FA (QR code, confirm with a code, backup codes shown once), sessions.

import { useState, type FormEvent } from "react";
import { auth } from "../api";
import type { Me } from "../main";
import { Button, Confirm, ErrorBanner, Field, Grid, Loading, Notice, PageHeader, useAction, useAsync, when } from "../ui";

interface Session {
  id: string;
  aal: string;
  ip: string | null;
  user_agent: string | null;
  created_at: string;
  refreshed_at: string | null;
  expires_at: string;
  current: boolean;
}

export function Account({ me, onChange }: { me: Me; onChange: () => void }) {
  return (
    <>
      <PageHeader title="Account" />
      <p>
        Signed in as <strong>{me.email}</strong> ({me.role === "dashboard_viewer" ? "viewer" : "administrator"}), with{" "}
        {me.aal === "aal2" ? "two factors" : "a password"}.
      </p>
      <Profile me={me} onChange={onChange} />
      <Password />
      <TwoFactor me={me} onChange={onChange} />
      <Sessions />
    </>
  );
}

function Profile({ me, onChange }: { me: Me; onChange: () => void }) {
  const [name, setName] = useState(me.full_name);
  const [saved, setSaved] = useState(false);
  const { busy, error, run } = useAction();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const done = await run(() => auth("/profile", { method: "PUT", body: { full_name: name } }));
    if (done !== undefined) {
      setSaved(true);
      onChange();
    }
  };
  return (
    <form className="card" onSubmit={submit} aria-labelledby="profile-title">
      <h2 id="profile-title">Profile</h2>
      <Field label="Full name" value={name} onChange={(v) => { setName(v); setSaved(false); }} autoComplete="name" />
      <ErrorBanner error={error} />
      {saved ? <Notice>Saved</Notice> : null}
      <Button type="submit" busy={busy}>
        Save profile
      </Button>
    </form>
  );
}

function Password() {
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const [done, setDone] = useState<string | null>(null);
  const { busy, error, run } = useAction();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const answer = await run(() =>
      auth<{ message: string }>("/password/change", { method: "POST", body: { current_password: current, new_password: next } }),
    );
    if (answer) {
      setDone(answer.message);
      setCurrent("");
      setNext("");
    }
  };
  return (
    <form className="card" onSubmit={submit} aria-labelledby="password-title">
      <h2 id="password-title">Password</h2>
      <Field label="Current password" type="password" value={current} onChange={setCurrent} required autoComplete="current-password" />
      <Field label="New password" type="password" value={next} onChange={setNext} required autoComplete="new-password" />
      <ErrorBanner error={error} />
      {done ? <Notice>{done}</Notice> : null}
      <Button type="submit" busy={busy}>
        Change password
      </Button>
    </form>
  );
}

interface Setup {
  secret: string;
  otpauth_uri: string;
  qr_code: string;
}

function TwoFactor({ me, onChange }: { me: Me; onChange: () => void }) {
  const [setup, setSetup] = useState<Setup | null>(null);
  const [code, setCode] = useState("");
  const [backupCodes, setBackupCodes] = useState<string[] | null>(null);
  const [disabling, setDisabling] = useState(false);
  const { busy, error, run, setError } = useAction();

  const start = async () => {
    const answer = await run(() => auth<Setup>("/2fa/setup", { method: "POST" }));
    if (answer) setSetup(answer);
  };
  const enable = async (e: FormEvent) => {
    e.preventDefault();
    const answer = await run(() =>
      auth<{ backup_codes: string[] }>("/2fa/enable", { method: "POST", body: { code: code.replace(/\s/g, "") } }),
    );
    if (answer) {
      setBackupCodes(answer.backup_codes);
      setSetup(null);
      setCode("");
      onChange();
    }
  };
  const disable = async () => {
    const value = code.replace(/\s/g, "");
    const body = /^\d{6}$/.test(value) ? { code: value } : { backup_code: code.trim() };
    const answer = await run(() => auth("/2fa/disable", { method: "POST", body }));
    if (answer !== undefined) {
      setDisabling(false);
      setCode("");
      onChange();
    }
  };

  return (
    <section className="card" aria-labelledby="twofa-title">
      <h2 id="twofa-title">Two-factor authentication</h2>
      {backupCodes ? (
        <div>
          <Notice>Two-factor authentication is on.</Notice>
          <p>
            <strong>Save these backup codes</strong> somewhere safe. Each signs you in once if you lose your authenticator;
            they are not shown again.
          </p>
          <ul className="backup-codes" data-testid="backup-codes">
            {backupCodes.map((c) => (
              <li key={c}>
                <code>{c}</code>
              </li>
            ))}
          </ul>
          <Button onClick={() => setBackupCodes(null)}>I have saved them</Button>
        </div>
      ) : me.totp_enabled ? (
        <div>
          <p>
            Two-factor authentication is <strong>on</strong>.
          </p>
          <Button kind="danger" onClick={() => setDisabling(true)}>
            Disable 2FA
          </Button>
        </div>
      ) : setup ? (
        <form onSubmit={enable}>
          <p>Scan this code with your authenticator app (Google Authenticator, Authy, 1Password…), then enter the code it shows.</p>
          <img className="qr" src={setup.qr_code} alt="QR code of the 2FA secret for your authenticator app" width={200} height={200} />
          <p className="small">
            Or enter the secret by hand: <code data-testid="totp-secret">{setup.secret}</code>
          </p>
          <Field label="Code from the app" value={code} onChange={setCode} required inputMode="numeric" autoComplete="one-time-code" />
          <ErrorBanner error={error} />
          <div className="row">
            <Button kind="primary" type="submit" busy={busy}>
              Enable 2FA
            </Button>
            <Button onClick={() => setSetup(null)}>Cancel</Button>
          </div>
        </form>
      ) : (
        <div>
          <p>
            Two-factor authentication is <strong>off</strong>. With it on, signing in also needs a code from your phone.
          </p>
          <ErrorBanner error={error} />
          <Button kind="primary" onClick={() => void start()} busy={busy}>
            Set up 2FA
          </Button>
        </div>
      )}
      {disabling ? (
        <Confirm
          title="Disable two-factor authentication?"
          confirmLabel="Disable 2FA"
          busy={busy}
          error={error}
          onCancel={() => {
            setDisabling(false);
            setError(null);
          }}
          onConfirm={() => void disable()}
        >
          <p>Signing in will need your password only. Confirm with a code from your app or a backup code.</p>
          <Field label="Code or backup code" value={code} onChange={setCode} autoComplete="one-time-code" />
        </Confirm>
      ) : null}
    </section>
  );
}

function Sessions() {
  const sessions = useAsync(() => auth<Session[]>("/sessions"), []);
  const [revoking, setRevoking] = useState<Session | null>(null);
  const action = useAction();
  const revoke = async () => {
    if (!revoking) return;
    const done = await action.run(() => auth(`/sessions/${revoking.id}`, { method: "DELETE" }).then(() => true));
    if (done) {
      setRevoking(null);
      void sessions.reload();
    }
  };
  return (
    <section className="card" aria-labelledby="sessions-title">
      <h2 id="sessions-title">Sessions</h2>
      <ErrorBanner error={sessions.error} />
      {sessions.loading && !sessions.data ? <Loading what="sessions" /> : null}
      {sessions.data ? (
        <Grid
          caption="Your sessions"
          columns={["started", "last refreshed", "ip", "browser", "factors"]}
          rows={sessions.data.map((s) => ({
            started: when(s.created_at),
            "last refreshed": when(s.refreshed_at),
            ip: s.ip,
            browser: `${(s.user_agent ?? "").slice(0, 60)}${s.current ? " (this session)" : ""}`,
            factors: s.aal === "aal2" ? "password + 2FA" : "password",
            _s: s,
          }))}
          actions={(row) => {
            const s = row._s as Session;
            return s.current ? (
              <span className="muted small">current</span>
            ) : (
              <Button kind="danger" onClick={() => setRevoking(s)}>
                Revoke
              </Button>
            );
          }}
        />
      ) : null}
      {revoking ? (
        <Confirm
          title="Revoke this session?"
          confirmLabel="Revoke session"
          busy={action.busy}
          error={action.error}
          onCancel={() => setRevoking(null)}
          onConfirm={() => void revoke()}
        >
          <p>The browser that holds it is signed out at its next request.</p>
        </Confirm>
      ) : null}
    </section>
  );
}
