// The dashboard's entry: who is signed in decides between setup, sign-in and the app's pages.

import { StrictMode, useCallback, useEffect, useState, type ReactElement, type ReactNode } from "react";
import { createRoot } from "react-dom/client";
import "./styles.css";
import { ApiError, auth, whenSignedOut } from "./api";
import { Link, navigate, useLocation } from "./router";
import { dropServiceKey, setKeyOwner } from "./serviceKey";
import { Button, Loading, ErrorBanner } from "./ui";
import { AcceptInvitation, Login, ResetPassword, Setup, VerifyEmail } from "./pages/SignIn";
import { Overview } from "./pages/Overview";
import { SqlEditor } from "./pages/SqlEditor";
import { TableEditor } from "./pages/TableEditor";
import { Policies } from "./pages/Policies";
import { AppUsers } from "./pages/AppUsers";
import { ApiKeys } from "./pages/ApiKeys";
import { RealtimeInspector } from "./pages/Realtime";
import { StorageBrowser } from "./pages/Storage";
import { Activity } from "./pages/Activity";
import { Account } from "./pages/Account";
import { Settings } from "./pages/Settings";
import { Administrators } from "./pages/Administrators";

export interface Me {
  id: string;
  email: string;
  full_name: string;
  role: string;
  totp_enabled: boolean;
  aal: string;
}

const PAGES: { path: string; title: string; render: (me: Me, reloadMe: () => void) => ReactElement }[] = [
  { path: "/", title: "Overview", render: () => <Overview /> },
  { path: "/tables", title: "Table editor", render: () => <TableEditor /> },
  { path: "/sql", title: "SQL editor", render: () => <SqlEditor /> },
  { path: "/policies", title: "Policies", render: () => <Policies /> },
  { path: "/realtime", title: "Realtime", render: () => <RealtimeInspector /> },
  { path: "/storage", title: "Storage", render: () => <StorageBrowser /> },
  { path: "/users", title: "App users", render: () => <AppUsers /> },
  { path: "/api-keys", title: "API keys", render: () => <ApiKeys /> },
  { path: "/activity", title: "Activity log", render: () => <Activity /> },
  { path: "/administrators", title: "Administrators", render: (me) => <Administrators myId={me.id} /> },
  { path: "/settings", title: "Settings", render: () => <Settings /> },
  { path: "/account", title: "Account", render: (me, reloadMe) => <Account me={me} onChange={reloadMe} /> },
];

const PUBLIC: Record<string, () => ReactElement> = {
  "/reset-password": () => <ResetPassword />,
  "/accept-invitation": () => <AcceptInvitation />,
  "/verify-email": () => <VerifyEmail />,
};

type Theme = "light" | "dark";

function initialTheme(): Theme {
  const saved = localStorage.getItem("fluxbase.theme");
  if (saved === "light" || saved === "dark") return saved;
  return window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

function useTheme(): [Theme, () => void] {
  const [theme, setTheme] = useState<Theme>(initialTheme);
  useEffect(() => {
    document.documentElement.dataset.theme = theme;
  }, [theme]);
  const toggle = () =>
    setTheme((t) => {
      const next = t === "dark" ? "light" : "dark";
      localStorage.setItem("fluxbase.theme", next);
      return next;
    });
  return [theme, toggle];
}

function App() {
  const location = useLocation();
  const [theme, toggleTheme] = useTheme();
  const [me, setMe] = useState<Me | null | undefined>(undefined);
  const [setupRequired, setSetupRequired] = useState(false);
  const [error, setError] = useState<string | null>(null);
  // The local development mailbox (/_dev/mailbox) exists only where it is active: ask once.
  const [mailbox, setMailbox] = useState(false);
  useEffect(() => {
    if (!me) return;
    fetch("/_dev/mailbox", { method: "HEAD", credentials: "omit" })
      .then((r) => setMailbox(r.ok))
      .catch(() => setMailbox(false));
  }, [me]);

  const loadMe = useCallback(async () => {
    try {
      const profile = await auth<Me>("/me");
      setKeyOwner(profile.email);
      setMe(profile);
    } catch (e) {
      if (e instanceof ApiError && (e.status === 401 || e.status === 403)) {
        try {
          const status = await auth<{ setup_required: boolean }>("/setup", { noRefresh: true });
          setSetupRequired(status.setup_required);
          setMe(null);
        } catch (inner) {
          setError(inner instanceof Error ? inner.message : String(inner));
        }
      } else {
        setError(e instanceof Error ? e.message : String(e));
      }
    }
  }, []);

  useEffect(() => {
    whenSignedOut(() => setMe(null));
    void loadMe();
  }, [loadMe]);

  const page = PAGES.find((p) => p.path === location.path);
  useEffect(() => {
    const title = me ? page?.title ?? "Not found" : "Sign in";
    document.title = `${title} · Fluxbase`;
    // Moves focus to the new page's heading, so keyboard and screen-reader users land on it.
    const heading = document.getElementById("page-title");
    heading?.focus({ preventScroll: true });
  }, [location.path, me, page]);

  const publicPage = PUBLIC[location.path];
  if (publicPage) return <Centered theme={theme} toggleTheme={toggleTheme}>{publicPage()}</Centered>;
  if (error) {
    return (
      <Centered theme={theme} toggleTheme={toggleTheme}>
        <h1>Fluxbase dashboard</h1>
        <ErrorBanner error={error} />
        <Button onClick={() => window.location.reload()}>Try again</Button>
      </Centered>
    );
  }
  if (me === undefined) {
    return (
      <Centered theme={theme} toggleTheme={toggleTheme}>
        <Loading what="the dashboard" />
      </Centered>
    );
  }
  if (me === null) {
    return (
      <Centered theme={theme} toggleTheme={toggleTheme}>
        {setupRequired ? (
          <Setup
            onDone={() => {
              setSetupRequired(false);
              void loadMe();
            }}
          />
        ) : (
          <Login onDone={() => void loadMe()} />
        )}
      </Centered>
    );
  }

  const signOut = async () => {
    await dropServiceKey();
    try {
      await auth("/logout", { method: "POST", noRefresh: true });
    } finally {
      setMe(null);
      navigate("/", true);
    }
  };

  return (
    <div className="shell">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <nav className="sidebar" aria-label="Dashboard">
        <div className="brand">Fluxbase</div>
        <ul>
          {PAGES.map((p) => (
            <li key={p.path}>
              <Link to={p.path} current={p.path === location.path}>
                {p.title}
              </Link>
            </li>
          ))}
          {mailbox ? (
            <li>
              <a href="/_dev/mailbox" target="_blank" rel="noopener noreferrer">
                Mailbox (development) ↗
              </a>
            </li>
          ) : null}
        </ul>
        <div className="sidebar-foot">
          <span className="muted small" title={me.email}>
            {me.email}
          </span>
          <ThemeButton theme={theme} toggle={toggleTheme} />
          <Button onClick={() => void signOut()}>Sign out</Button>
        </div>
      </nav>
      <main id="main" className="content">
        {page ? (
          page.render(me, () => void loadMe())
        ) : (
          <>
            <h1 id="page-title" tabIndex={-1}>
              Not found
            </h1>
            <p>
              No page at this address. <Link to="/">Go to the overview</Link>.
            </p>
          </>
        )}
      </main>
    </div>
  );
}

function ThemeButton({ theme, toggle }: { theme: Theme; toggle: () => void }) {
  return (
    <Button onClick={toggle} label={`Switch to ${theme === "dark" ? "light" : "dark"} theme`}>
      {theme === "dark" ? "Light theme" : "Dark theme"}
    </Button>
  );
}

function Centered({
  children,
  theme,
  toggleTheme,
}: {
  children: ReactNode;
  theme: Theme;
  toggleTheme: () => void;
}) {
  return (
    <main className="centered" id="main">
      <div className="card narrow">{children}</div>
      <div className="row center">
        <ThemeButton theme={theme} toggle={toggleTheme} />
      </div>
    </main>
  );
}

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
