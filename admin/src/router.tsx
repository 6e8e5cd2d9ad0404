// A small client-side router under /dashboard/: the server answers index.html for every such path.

import { useEffect, useState, type MouseEvent, type ReactNode } from "react";

export const BASE = "/dashboard";

function current(): { path: string; query: URLSearchParams } {
  const path = window.location.pathname.startsWith(BASE)
    ? window.location.pathname.slice(BASE.length) || "/"
    : "/";
  return { path, query: new URLSearchParams(window.location.search) };
}

const listeners = new Set<() => void>();

export function navigate(to: string, replace = false): void {
  const url = BASE + to;
  if (replace) window.history.replaceState(null, "", url);
  else window.history.pushState(null, "", url);
  listeners.forEach((listener) => listener());
}

export function useLocation() {
  const [location, setLocation] = useState(current);
  useEffect(() => {
    const update = () => setLocation(current());
    listeners.add(update);
    window.addEventListener("popstate", update);
    return () => {
      listeners.delete(update);
      window.removeEventListener("popstate", update);
    };
  }, []);
  return location;
}

export function Link({
  to,
  children,
  className,
  current: isCurrent,
}: {
  to: string;
  children: ReactNode;
  className?: string;
  current?: boolean;
}) {
  const onClick = (e: MouseEvent<HTMLAnchorElement>) => {
    if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(to);
  };
  return (
    <a href={BASE + to} onClick={onClick} className={className} aria-current={isCurrent ? "page" : undefined}>
      {children}
    </a>
  );
}
