// Administrators (dashboard.users): who administers this instance; invite (a mailed link), unlock
// after a lockout, remove.  Only in person: API keys cannot reach these routes.

import { useState, type FormEvent } from "react";
import { admin } from "../api";
import { Button, Confirm, ErrorBanner, Field, Grid, Loading, Modal, Notice, PageHeader, Select, useAction, useAsync, when } from "../ui";

interface Administrator {
  id: string;
  email: string;
  full_name: string;
  role: string;
  totp_enabled: boolean;
  locked: boolean;
  last_login_at: string | null;
}

export function Administrators({ myId }: { myId: string }) {
  const admins = useAsync(() => admin<Administrator[]>("/dashboard-users"), []);
  const [inviting, setInviting] = useState(false);
  const [removing, setRemoving] = useState<Administrator | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const action = useAction();

  const unlock = async (a: Administrator) => {
    const done = await action.run(() => admin(`/dashboard-users/${a.id}/unlock`, { method: "POST" }));
    if (done !== undefined) {
      setNotice(`Unlocked ${a.email}`);
      void admins.reload();
    }
  };
  const remove = async () => {
    if (!removing) return;
    const done = await action.run(() => admin(`/dashboard-users/${removing.id}`, { method: "DELETE" }).then(() => true));
    if (done) {
      setNotice(`Removed ${removing.email}`);
      setRemoving(null);
      void admins.reload();
    }
  };

  return (
    <>
      <PageHeader title="Administrators">
        <Button kind="primary" onClick={() => setInviting(true)}>
          Invite administrator
        </Button>
      </PageHeader>
      <p className="muted">
        People who run this instance, apart from your application&apos;s users. An invitation mails a link to choose a
        password; <code>fluxbase admin create</code> makes one from the command line.
      </p>
      {notice ? <Notice>{notice}</Notice> : null}
      <ErrorBanner error={admins.error ?? (removing ? null : action.error)} />
      {admins.loading && !admins.data ? <Loading what="administrators" /> : null}
      {admins.data ? (
        <Grid
          caption="Administrators"
          columns={["email", "name", "role", "2FA", "state", "last sign-in"]}
          rows={admins.data.map((a) => ({
            email: a.id === myId ? `${a.email} (you)` : a.email,
            name: a.full_name,
            role: a.role === "dashboard_viewer" ? "viewer" : "administrator",
            "2FA": a.totp_enabled ? "on" : "off",
            state: a.locked ? "locked" : "active",
            "last sign-in": when(a.last_login_at),
            _a: a,
          }))}
          actions={(row) => {
            const a = row._a as Administrator;
            return (
              <div className="row">
                {a.locked ? (
                  <Button onClick={() => void unlock(a)} label={`Unlock ${a.email}`}>
                    Unlock
                  </Button>
                ) : null}
                {a.id !== myId ? (
                  <Button kind="danger" onClick={() => setRemoving(a)} label={`Remove ${a.email}`}>
                    Remove
                  </Button>
                ) : null}
              </div>
            );
          }}
        />
      ) : null}
      {inviting ? (
        <Invite
          onClose={() => setInviting(false)}
          onInvited={(email) => {
            setInviting(false);
            setNotice(`Invitation sent to ${email}`);
            void admins.reload();
          }}
        />
      ) : null}
      {removing ? (
        <Confirm
          title={`Remove ${removing.email}?`}
          confirmLabel="Remove administrator"
          busy={action.busy}
          error={action.error}
          onCancel={() => setRemoving(null)}
          onConfirm={() => void remove()}
        >
          <p>Their sessions end and they can no longer sign in.</p>
        </Confirm>
      ) : null}
    </>
  );
}

function Invite({ onClose, onInvited }: { onClose: () => void; onInvited: (email: string) => void }) {
  const [email, setEmail] = useState("");
  const [name, setName] = useState("");
  const [role, setRole] = useState("dashboard_admin");
  const { busy, error, run } = useAction();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const done = await run(() => admin("/dashboard-users", { method: "POST", body: { email, full_name: name, role } }));
    if (done !== undefined) onInvited(email);
  };
  return (
    <Modal title="Invite an administrator" onClose={onClose}>
      <form onSubmit={submit}>
        <Field label="Email" type="email" value={email} onChange={setEmail} required autoComplete="off" />
        <Field label="Full name" value={name} onChange={setName} />
        <Select
          label="Role"
          value={role}
          onChange={setRole}
          options={[
            { value: "dashboard_admin", label: "administrator" },
            { value: "dashboard_viewer", label: "viewer (read only)" },
          ]}
        />
        <ErrorBanner error={error} />
        <div className="row end">
          <Button onClick={onClose}>Cancel</Button>
          <Button kind="primary" type="submit" busy={busy}>
            Send invitation
          </Button>
        </div>
      </form>
    </Modal>
  );
}
