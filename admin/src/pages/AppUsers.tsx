// App users (auth.users, through the admin API): search, create, ban or lift a ban, send a password
// reset, delete.

import { useState, type FormEvent } from "react";
import { admin } from "../api";
import { Button, Confirm, ErrorBanner, Field, Grid, Loading, Modal, Notice, PageHeader, useAction, useAsync, when } from "../ui";

interface AppUser {
  id: string;
  email: string | null;
  phone?: string | null;
  created_at: string;
  last_sign_in_at: string | null;
  banned_until?: string | null;
  email_confirmed_at?: string | null;
}

const PER_PAGE = 25;

export function AppUsers() {
  const [search, setSearch] = useState("");
  const [query, setQuery] = useState("");
  const [page, setPage] = useState(1);
  const users = useAsync(
    () =>
      admin<{ users: AppUser[]; total: number }>(
        `/users?${new URLSearchParams({ page: String(page), per_page: String(PER_PAGE), search: query })}`,
      ),
    [page, query],
  );
  const [creating, setCreating] = useState(false);
  const [deleting, setDeleting] = useState<AppUser | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const action = useAction();

  const act = async (what: string, fn: () => Promise<unknown>) => {
    const done = await action.run(async () => {
      await fn();
      return true;
    });
    if (done) {
      setNotice(what);
      void users.reload();
    }
  };

  const rows = (users.data?.users ?? []).map((u) => ({
    email: u.email,
    id: u.id,
    created: when(u.created_at),
    "last sign-in": when(u.last_sign_in_at),
    status: u.banned_until && new Date(u.banned_until) > new Date() ? `banned until ${when(u.banned_until)}` : "active",
    _user: u,
  }));

  return (
    <>
      <PageHeader title="App users">
        <Button kind="primary" onClick={() => setCreating(true)}>
          Create user
        </Button>
      </PageHeader>
      <form
        className="row"
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          setPage(1);
          setQuery(search.trim());
        }}
      >
        <Field label="Search by email" value={search} onChange={setSearch} type="search" />
        <Button type="submit">Search</Button>
      </form>
      {notice ? <Notice>{notice}</Notice> : null}
      <ErrorBanner error={users.error ?? action.error} />
      {users.loading && !users.data ? <Loading what="users" /> : null}
      {users.data ? (
        <>
          <Grid
            caption="Application users"
            columns={["email", "id", "created", "last sign-in", "status"]}
            rows={rows}
            actions={(row) => {
              const u = row._user as AppUser;
              const banned = String(row.status).startsWith("banned");
              return (
                <div className="row">
                  <Button
                    onClick={() =>
                      void act(banned ? "Ban lifted" : "User banned", () =>
                        admin(`/users/${u.id}/ban`, { method: "POST", body: { duration: banned ? "none" : "876000h" } }),
                      )
                    }
                  >
                    {banned ? "Lift ban" : "Ban"}
                  </Button>
                  <Button onClick={() => void act("Reset mail sent", () => admin(`/users/${u.id}/send-reset`, { method: "POST" }))}>
                    Send reset
                  </Button>
                  <Button kind="danger" onClick={() => setDeleting(u)}>
                    Delete
                  </Button>
                </div>
              );
            }}
          />
          <div className="row pager">
            <Button onClick={() => setPage(page - 1)} disabled={page <= 1}>
              Previous page
            </Button>
            <span className="muted">
              Page {page} of {Math.max(1, Math.ceil(users.data.total / PER_PAGE))} · {users.data.total} users
            </span>
            <Button onClick={() => setPage(page + 1)} disabled={page * PER_PAGE >= users.data.total}>
              Next page
            </Button>
          </div>
        </>
      ) : null}
      {creating ? (
        <CreateUser
          onClose={() => setCreating(false)}
          onCreated={(email) => {
            setCreating(false);
            setNotice(`Created ${email}`);
            void users.reload();
          }}
        />
      ) : null}
      {deleting ? (
        <Confirm
          title="Delete this user?"
          confirmLabel="Delete user"
          busy={action.busy}
          error={action.error}
          onCancel={() => setDeleting(null)}
          onConfirm={() =>
            void act(`Deleted ${deleting.email}`, () => admin(`/users/${deleting.id}`, { method: "DELETE" })).then(() =>
              setDeleting(null),
            )
          }
        >
          <p>
            <strong>{deleting.email}</strong> and every session they hold are deleted. Rows they own in your tables stay.
          </p>
        </Confirm>
      ) : null}
    </>
  );
}

function CreateUser({ onClose, onCreated }: { onClose: () => void; onCreated: (email: string) => void }) {
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const { busy, error, run } = useAction();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const created = await run(() => admin<AppUser>("/users", { method: "POST", body: { email, password, email_confirm: true } }));
    if (created) onCreated(email);
  };
  return (
    <Modal title="Create an app user" onClose={onClose}>
      <form onSubmit={submit}>
        <Field label="Email" type="email" value={email} onChange={setEmail} required autoComplete="off" />
        <Field label="Password" type="password" value={password} onChange={setPassword} required autoComplete="new-password" />
        <ErrorBanner error={error} />
        <div className="row end">
          <Button onClick={onClose}>Cancel</Button>
          <Button kind="primary" type="submit" busy={busy}>
            Create
          </Button>
        </div>
      </form>
    </Modal>
  );
}
