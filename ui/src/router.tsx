/** A tiny history router: the UI has a handful of routes, a library would be dead weight. */
import { useSyncExternalStore, type AnchorHTMLAttributes, type MouseEvent, type ReactNode } from "react";

const listeners = new Set<() => void>();

function notify(): void {
  for (const listener of listeners) listener();
}

window.addEventListener("popstate", notify);

/** Go to `path` (may carry a query string) without reloading the page. */
export function navigate(path: string, options: { replace?: boolean } = {}): void {
  if (path === currentHref()) return;
  if (options.replace) window.history.replaceState(null, "", path);
  else window.history.pushState(null, "", path);
  notify();
}

function currentHref(): string {
  return window.location.pathname + window.location.search;
}

function subscribe(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export interface Route {
  path: string;
  params: Record<string, string>;
  query: URLSearchParams;
}

/** Match `path` against a pattern like `/flows/:ns/:id`; null when it doesn't match. */
export function matchPath(pattern: string, path: string): Record<string, string> | null {
  const want = pattern.split("/").filter(Boolean);
  const have = path.split("/").filter(Boolean);
  if (want.length !== have.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < want.length; i++) {
    if (want[i].startsWith(":")) params[want[i].slice(1)] = decodeURIComponent(have[i]);
    else if (want[i] !== have[i]) return null;
  }
  return params;
}

/** The current location; re-renders the caller when it changes. */
export function useRoute(pattern?: string): Route {
  const href = useSyncExternalStore(subscribe, currentHref);
  const [path, search = ""] = href.split("?");
  const params = pattern ? matchPath(pattern, path) ?? {} : {};
  return { path, params, query: new URLSearchParams(search) };
}

/** Replace the query string of the current path (filters, tabs) without a history entry. */
export function setQuery(values: Record<string, string | string[] | null | undefined>): void {
  const query = new URLSearchParams(window.location.search);
  for (const [key, value] of Object.entries(values)) {
    query.delete(key);
    if (Array.isArray(value)) for (const v of value) query.append(key, v);
    else if (value !== null && value !== undefined && value !== "") query.set(key, value);
  }
  const qs = query.toString();
  navigate(window.location.pathname + (qs ? `?${qs}` : ""), { replace: true });
}

type LinkProps = AnchorHTMLAttributes<HTMLAnchorElement> & { href: string; children?: ReactNode };

/** An anchor that navigates in-app on a plain click and behaves normally otherwise. */
export function Link({ href, onClick, children, ...rest }: LinkProps) {
  const handle = (event: MouseEvent<HTMLAnchorElement>) => {
    onClick?.(event);
    if (event.defaultPrevented || event.button !== 0) return;
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    navigate(href);
  };
  return (
    <a href={href} onClick={handle} {...rest}>
      {children}
    </a>
  );
}
