// Before a session: the first administrator's setup, sign-in with its 2FA challenge, and the pages
// that mailed links open (password reset, invitation, email verification).

import { useState, type FormEvent } from "react";
import { auth } from "../api";
import { Link, navigate, useLocation } from "../router";
import { Button, ErrorBanner, Field, Notice, useAction } from "../ui";

export function Setup({ onDone }: { onDone: () => void }) {
  const [email, setEmail] = useState("");
  const [fullName, setFullName] = useState("");
  const [password, setPassword] = useState("");
  const [repeat, setRepeat] = useState("");
  const { busy, error, run, setError } = useAction();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (password !== repeat) {
      setError("The two passwords differ");
      return;
    }
    const done = await run(() =>
      auth("/signup", { method: "POST", body: { email, password, full_name: fullName }, noRefresh: true }),
    );
    if (done !== undefined) onDone();
  };
  return (
    <form onSubmit={submit} aria-labelledby="page-title">
      <h1 id="page-title" tabIndex={-1}>
        Create the first administrator
      </h1>
      <p className="muted">
        This Fluxbase has no administrator yet. The account you create here administers the instance; further
        administrators are invited from the dashboard or made with <code>fluxbase admin create</code>.
      </p>
      <Field label="Full name" value={fullName} onChange={setFullName} autoComplete="name" />
      <Field label="Email" type="email" value={email} onChange={setEmail} required autoComplete="email" />
      <Field
        label="Password"
        type="password"
        value={password}
        onChange={setPassword}
        required
        autoComplete="new-password"
      />
      <Field
        label="Repeat the password"
        type="password"
        value={repeat}
        onChange={setRepeat}
        required
        autoComplete="new-password"
      />
      <ErrorBanner error={error} />
      <Button kind="primary" type="submit" busy={busy}>
        Create administrator
      </Button>
    </form>
  );
}

interface LoginAnswer {
  mfa_required?: boolean;
  challenge_token?: string;
}

export function Login({ onDone }: { onDone: () => void }) {
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [challenge, setChallenge] = useState<string | null>(null);
  const [code, setCode] = useState("");
  const [useBackup, setUseBackup] = useState(false);
  const { busy, error, run, setError } = useAction();

  const signIn = async (e: FormEvent) => {
    e.preventDefault();
    const answer = await run(() =>
      auth<LoginAnswer>("/login", { method: "POST", body: { email, password }, noRefresh: true }),
    );
    if (!answer) return;
    if (answer.mfa_required && answer.challenge_token) {
      setChallenge(answer.challenge_token);
      setPassword("");
    } else {
      onDone();
    }
  };

  const verify = async (e: FormEvent) => {
    e.preventDefault();
    const body = useBackup
      ? { challenge_token: challenge, backup_code: code.trim() }
      : { challenge_token: challenge, code: code.replace(/\s/g, "") };
    const answer = await run(() => auth("/2fa/verify", { method: "POST", body, noRefresh: true }));
    if (answer !== undefined) onDone();
  };

  if (challenge) {
    return (
      <form onSubmit={verify}>
        <h1 id="page-title" tabIndex={-1}>
          Two-factor authentication
        </h1>
        <p className="muted">
          {useBackup
            ? "Enter one of your backup codes. Each works once."
            : "Enter the 6-digit code from your authenticator app."}
        </p>
        <Field
          label={useBackup ? "Backup code" : "Authentication code"}
          value={code}
          onChange={setCode}
          required
          autoComplete="one-time-code"
          inputMode={useBackup ? "text" : "numeric"}
          autoFocus
          name="code"
        />
        <ErrorBanner error={error} />
        <div className="row">
          <Button kind="primary" type="submit" busy={busy}>
            Verify
          </Button>
          <Button
            onClick={() => {
              setUseBackup(!useBackup);
              setCode("");
              setError(null);
            }}
          >
            {useBackup ? "Use an authenticator code" : "Use a backup code"}
          </Button>
          <Button
            onClick={() => {
              setChallenge(null);
              setCode("");
              setError(null);
            }}
          >
            Start over
          </Button>
        </div>
      </form>
    );
  }

  return (
    <form onSubmit={signIn}>
      <h1 id="page-title" tabIndex={-1}>
        Sign in to Fluxbase
      </h1>
      <Field label="Email" type="email" value={email} onChange={setEmail} required autoComplete="username" />
      <Field
        label="Password"
        type="password"
        value={password}
        onChange={setPassword}
        required
        autoComplete="current-password"
      />
      <ErrorBanner error={error} />
      <div className="row">
        <Button kind="primary" type="submit" busy={busy}>
          Sign in
        </Button>
        <Link to="/reset-password">Forgot your password?</Link>
      </div>
    </form>
  );
}

/** /reset-password: asks for a mail without a token, sets the new password with one. */
export function ResetPassword() {
  const { query } = useLocation();
  const token = query.get("token");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [done, setDone] = useState<string | null>(null);
  const { busy, error, run } = useAction();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const answer = token
      ? await run(() =>
          auth<{ message: string }>("/password/reset/confirm", {
            method: "POST",
            body: { token, new_password: password },
            noRefresh: true,
          }),
        )
      : await run(() =>
          auth<{ message: string }>("/password/reset", { method: "POST", body: { email }, noRefresh: true }),
        );
    if (answer) setDone(token ? "Your password is changed. You can sign in now." : answer.message);
  };
  return (
    <form onSubmit={submit}>
      <h1 id="page-title" tabIndex={-1}>
        {token ? "Choose a new password" : "Reset your password"}
      </h1>
      {token ? (
        <Field
          label="New password"
          type="password"
          value={password}
          onChange={setPassword}
          required
          autoComplete="new-password"
        />
      ) : (
        <Field label="Email" type="email" value={email} onChange={setEmail} required autoComplete="email" />
      )}
      <ErrorBanner error={error} />
      {done ? <Notice>{done}</Notice> : null}
      <div className="row">
        <Button kind="primary" type="submit" busy={busy} disabled={done !== null}>
          {token ? "Set password" : "Send reset link"}
        </Button>
        <Button onClick={() => navigate("/")}>Back to sign-in</Button>
      </div>
    </form>
  );
}

export function AcceptInvitation() {
  const { query } = useLocation();
  const token = query.get("token") ?? "";
  const [password, setPassword] = useState("");
  const [done, setDone] = useState(false);
  const { busy, error, run } = useAction();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const answer = await run(() =>
      auth("/invitation/accept", { method: "POST", body: { token, password }, noRefresh: true }),
    );
    if (answer !== undefined) setDone(true);
  };
  return (
    <form onSubmit={submit}>
      <h1 id="page-title" tabIndex={-1}>
        Accept your invitation
      </h1>
      <p className="muted">Choose the password for your administrator account.</p>
      <Field
        label="Password"
        type="password"
        value={password}
        onChange={setPassword}
        required
        autoComplete="new-password"
      />
      <ErrorBanner error={token ? error : "This link has no token: open the link from your mail."} />
      {done ? <Notice>Your account is ready. You can sign in now.</Notice> : null}
      <div className="row">
        <Button kind="primary" type="submit" busy={busy} disabled={!token || done}>
          Set password
        </Button>
        <Button onClick={() => navigate("/")}>Go to sign-in</Button>
      </div>
    </form>
  );
}

export function VerifyEmail() {
  const { query } = useLocation();
  const token = query.get("token") ?? "";
  const [done, setDone] = useState(false);
  const { busy, error, run } = useAction();
  const verify = async () => {
    const answer = await run(() => auth("/verify-email", { method: "POST", body: { token }, noRefresh: true }));
    if (answer !== undefined) setDone(true);
  };
  return (
    <div>
      <h1 id="page-title" tabIndex={-1}>
        Confirm your email address
      </h1>
      <ErrorBanner error={token ? error : "This link has no token: open the link from your mail."} />
      {done ? <Notice>Your address is confirmed.</Notice> : null}
      <div className="row">
        <Button kind="primary" onClick={() => void verify()} busy={busy} disabled={!token || done}>
          Confirm
        </Button>
        <Button onClick={() => navigate("/")}>Go to the dashboard</Button>
      </div>
    </div>
  );
}
