/**
 * The live data of the execution page: the execution document (SSE `execution` events, each a
 * whole document, so only the latest one per animation frame is applied) and its log lines
 * (SSE `log` events, appended in batches once per frame). Neither re-renders per event: a
 * ForEach of 2,000 task runs sends bursts of updates and the page must not freeze.
 */
import { useCallback, useEffect, useRef, useState } from "react";
import { API_PREFIX, api, errorMessage } from "../../api";
import type { Execution, LogLine } from "../../types";
import { TERMINAL_STATES } from "../../types";

/** Run `apply` at most once per animation frame, however often `schedule` is called. */
function frameBatcher(apply: () => void): { schedule: () => void; cancel: () => void } {
  let frame: number | null = null;
  return {
    schedule: () => {
      if (frame === null) {
        frame = requestAnimationFrame(() => {
          frame = null;
          apply();
        });
      }
    },
    cancel: () => {
      if (frame !== null) cancelAnimationFrame(frame);
      frame = null;
    },
  };
}

/**
 * An EventSource on `/api/v1{path}` that hands each event's raw data (unparsed: parsing is the
 * costly part with big documents, so the caller decides when) and id to `onEvent`, reopens
 * after an error with a back-off, and stops for good after an `end` event. Returns a closer.
 * `resumeAfter`, when given, is asked at every (re)open for the id of the last event the
 * caller holds: it goes as `?lastEventId=` (a new EventSource cannot set the Last-Event-ID
 * header), so the server sends only what came after it.
 */
function stream(path: string, events: string[],
  onEvent: (name: string, raw: string, id: string) => void,
  resumeAfter?: () => number): () => void {
  let source: EventSource | null = null;
  let closed = false;
  let retry = 500;
  let timer: number | undefined;
  const close = () => {
    closed = true;
    source?.close();
    if (timer !== undefined) window.clearTimeout(timer);
  };
  const open = () => {
    if (closed) return;
    const after = resumeAfter?.() ?? 0;
    const query = after > 0 ? `?lastEventId=${after}` : "";
    source = new EventSource(`${API_PREFIX}${path}${query}`, { withCredentials: true });
    source.onopen = () => {
      retry = 500;
    };
    for (const name of [...events, "end"]) {
      source.addEventListener(name, (event) => {
        const message = event as MessageEvent<string>;
        onEvent(name, message.data, message.lastEventId);
        if (name === "end") close();
      });
    }
    source.onerror = () => {
      source?.close();
      if (closed) return;
      timer = window.setTimeout(open, retry);
      retry = Math.min(retry * 2, 10000);
    };
  };
  open();
  return close;
}

// While live, a big execution's document (1.6 MB for 2,000 task runs) comes about once a
// second or two (the server paces big documents), a small one up to ten times a second: only
// the newest one is parsed, at most this often, so the page keeps answering.
const APPLY_EVERY_MS = 250;

export interface LiveExecution {
  execution: Execution | null;
  error: string | null;
  /** Replace the document (an action's answer) and follow it again if it is live. */
  replace: (doc: Execution) => void;
  /** Increments every time the execution becomes live again (restart, resume). */
  epoch: number;
}

export function useLiveExecution(id: string): LiveExecution {
  const [execution, setExecution] = useState<Execution | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [epoch, setEpoch] = useState(0);
  const terminal = execution ? TERMINAL_STATES.has(execution.state) : true;
  const wasTerminal = useRef<boolean | null>(null);

  useEffect(() => {
    let cancelled = false;
    setExecution(null);
    setError(null);
    api<Execution>(`/executions/${encodeURIComponent(id)}`)
      .then((doc) => !cancelled && setExecution(doc))
      .catch((e) => !cancelled && setError(errorMessage(e)));
    return () => {
      cancelled = true;
    };
  }, [id]);

  // A new live phase: an execution that was terminal runs again.
  useEffect(() => {
    if (!execution) return;
    if (wasTerminal.current === true && !terminal) setEpoch((n) => n + 1);
    wasTerminal.current = terminal;
  }, [execution, terminal]);

  const live = execution !== null && !terminal;
  useEffect(() => {
    if (!live) return;
    let latest: string | null = null;
    let applied = 0;
    let timer: number | undefined;
    const apply = () => {
      timer = undefined;
      if (latest === null) return;
      try {
        setExecution(JSON.parse(latest) as Execution);
      } catch {
        // a torn event: the next one replaces it
      }
      latest = null;
      applied = performance.now();
    };
    const batch = frameBatcher(apply);
    const schedule = () => {
      const wait = applied + APPLY_EVERY_MS - performance.now();
      if (wait <= 0) batch.schedule();
      else if (timer === undefined) timer = window.setTimeout(() => batch.schedule(), wait);
    };
    const close = stream(`/executions/${encodeURIComponent(id)}/follow`, ["execution"], (name, raw) => {
      if (name === "execution") {
        latest = raw;
        schedule();
      } else {
        // `end`: the last document came just before it; apply it now, then read it back once.
        batch.cancel();
        apply();
        api<Execution>(`/executions/${encodeURIComponent(id)}`).then(setExecution).catch(() => {});
      }
    });
    return () => {
      batch.cancel();
      if (timer !== undefined) window.clearTimeout(timer);
      close();
    };
  }, [id, live, epoch]);

  const replace = useCallback((doc: Execution) => setExecution(doc), []);
  return { execution, error, replace, epoch };
}

export interface LogStore {
  /** Every line received so far, in order (appended in place: compare `version`). */
  lines: LogLine[];
  version: number;
  streaming: boolean;
}

/**
 * An execution's log lines: the `/logs/{id}/follow` stream sends every line, then new ones
 * until the execution ends. Event ids number lines from 1, and a reconnect or a new live phase
 * (restart, resume) asks for the lines after those already here (`lastEventId`). Should the
 * server start again from the first line anyway (it does for an id it cannot resume), the
 * lines already here are skipped by their number.
 */
export function useLogStream(id: string, epoch: number): LogStore {
  const lines = useRef<LogLine[]>([]);
  const [version, setVersion] = useState(0);
  const [streaming, setStreaming] = useState(false);

  useEffect(() => {
    lines.current = [];
    setVersion(0);
  }, [id]);

  useEffect(() => {
    const pending: LogLine[] = [];
    const batch = frameBatcher(() => {
      if (!pending.length) return;
      lines.current.push(...pending.splice(0));
      setVersion((v) => v + 1);
    });
    setStreaming(true);
    const held = () => lines.current.length + pending.length;
    const close = stream(`/logs/${encodeURIComponent(id)}/follow`, ["log"], (name, raw, eventId) => {
      if (name === "end") {
        batch.schedule();
        setStreaming(false);
        return;
      }
      const number = Number(eventId);
      if (number && number <= held()) return;
      try {
        pending.push(JSON.parse(raw) as LogLine);
      } catch {
        return;
      }
      batch.schedule();
    }, held);
    return () => {
      close();
      batch.cancel();
      setStreaming(false);
      if (pending.length) lines.current.push(...pending.splice(0));
    };
  }, [id, epoch]);

  return { lines: lines.current, version, streaming };
}
