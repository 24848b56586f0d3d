/** The one way the UI talks to the server: same-origin, cookie session, CSRF header, JSON. */
import { navigate } from "./router";

export const API_PREFIX = "/api/v1";

export interface Issue {
  message: string;
  path?: string;
  line?: number | null;
  column?: number | null;
  file?: string | null;
}

/** A failed API call: the HTTP status, the server's message and its per-field issues. */
export class ApiError extends Error {
  status: number;
  issues?: Issue[];
  body?: unknown;

  constructor(status: number, message: string, issues?: Issue[], body?: unknown) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.issues = issues;
    this.body = body;
  }
}

export type ApiInit = RequestInit & { json?: unknown };

function goToLogin(): void {
  const here = window.location.pathname + window.location.search;
  if (window.location.pathname === "/login") return;
  navigate(`/login?next=${encodeURIComponent(here)}`, { replace: true });
}

/** Pull a readable message and the issues out of any error body the server sends. */
async function errorFrom(response: Response): Promise<ApiError> {
  const text = await response.text();
  let body: unknown = text;
  let message = text || response.statusText || `HTTP ${response.status}`;
  let issues: Issue[] | undefined;
  try {
    body = JSON.parse(text);
    const obj = body as { message?: unknown; detail?: unknown; issues?: unknown };
    if (typeof obj.message === "string") message = obj.message;
    else if (typeof obj.detail === "string") message = obj.detail;
    if (Array.isArray(obj.issues)) issues = obj.issues as Issue[];
    else if (Array.isArray(obj.detail)) {
      issues = (obj.detail as { msg?: string; loc?: unknown[] }[]).map((d) => ({
        message: d.msg ?? String(d),
        path: Array.isArray(d.loc) ? d.loc.join(".") : undefined,
      }));
    }
  } catch {
    // not JSON: keep the text
  }
  return new ApiError(response.status, message, issues, body);
}

/**
 * Call `/api/v1{path}`. `json` is sent as the JSON body; a FormData or string `body` goes as is.
 * Resolves to the parsed JSON (or text for non-JSON answers, undefined for 204); throws ApiError.
 * A 401 sends the user to the login page (except from the auth calls themselves).
 */
export async function api<T = unknown>(path: string, init: ApiInit = {}): Promise<T> {
  const { json, headers, ...rest } = init;
  const sendHeaders = new Headers(headers);
  sendHeaders.set("X-Kray-UI", "1");
  if (!sendHeaders.has("Accept")) sendHeaders.set("Accept", "application/json");
  let body = rest.body;
  if (json !== undefined) {
    body = JSON.stringify(json);
    sendHeaders.set("Content-Type", "application/json");
  }
  const response = await fetch(API_PREFIX + path, {
    ...rest,
    body,
    headers: sendHeaders,
    credentials: "same-origin",
  });
  if (!response.ok) {
    const error = await errorFrom(response);
    if (response.status === 401 && !path.startsWith("/auth/")) goToLogin();
    throw error;
  }
  if (response.status === 204) return undefined as T;
  const type = response.headers.get("Content-Type") ?? "";
  if (type.includes("json")) return (await response.json()) as T;
  return (await response.text()) as unknown as T;
}

/** Build a query string from a record, skipping empty values; arrays repeat the key. */
export function qs(params: Record<string, string | number | boolean | string[] | null | undefined>): string {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === null || value === undefined || value === "") continue;
    if (Array.isArray(value)) for (const v of value) query.append(key, v);
    else query.set(key, String(value));
  }
  const text = query.toString();
  return text ? `?${text}` : "";
}

export type EventHandlers = Record<string, (data: unknown) => void>;

/**
 * Follow a server-sent event stream at `/api/v1{path}`. Each named event's data is parsed as
 * JSON (raw text if it isn't) and handed to its handler. On an error the stream is reopened
 * with a back-off, unless an `end` event closed it. Returns a function that closes it.
 */
export function follow(path: string, handlers: EventHandlers): () => void {
  let source: EventSource | null = null;
  let closed = false;
  let retry = 500;
  let timer: number | undefined;

  const open = () => {
    if (closed) return;
    source = new EventSource(API_PREFIX + path, { withCredentials: true });
    source.onopen = () => {
      retry = 500;
    };
    for (const [event, handler] of Object.entries(handlers)) {
      source.addEventListener(event, (message) => {
        const raw = (message as MessageEvent<string>).data;
        let data: unknown = raw;
        try {
          data = JSON.parse(raw);
        } catch {
          // plain text event
        }
        handler(data);
        if (event === "end") close();
      });
    }
    source.onerror = () => {
      source?.close();
      source = null;
      if (closed) return;
      timer = window.setTimeout(open, retry);
      retry = Math.min(retry * 2, 10000);
    };
  };

  const close = () => {
    closed = true;
    if (timer !== undefined) window.clearTimeout(timer);
    source?.close();
    source = null;
  };

  open();
  return close;
}

/** The message to show for any thrown value. */
export function errorMessage(error: unknown): string {
  if (error instanceof ApiError) return error.message;
  if (error instanceof Error) return error.message;
  return String(error);
}
