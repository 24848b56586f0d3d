/**
 * Windowing for long lists of fixed-height rows (Gantt rows, log lines): only the rows in
 * view, plus a small overscan, are rendered, so 2,000 task runs or 50,000 log lines cost the
 * same as 40. Scroll updates are coalesced to one per animation frame.
 */
import { useCallback, useEffect, useLayoutEffect, useRef, useState, type RefObject } from "react";

export interface VirtualWindow {
  /** Attach to the scrolling element (it must have a bounded height and overflow: auto). */
  ref: RefObject<HTMLDivElement | null>;
  /** First and last (exclusive) row indexes to render. */
  start: number;
  end: number;
  /** The full height of the list, for the spacer. */
  height: number;
  scrollToBottom: () => void;
  /** Whether the view is at (or within a row of) the bottom. */
  atBottom: () => boolean;
}

export function useVirtualRows(count: number, rowHeight: number, overscan = 8): VirtualWindow {
  const ref = useRef<HTMLDivElement | null>(null);
  const [view, setView] = useState({ top: 0, height: 600 });
  const frame = useRef<number | null>(null);

  const measure = useCallback(() => {
    frame.current = null;
    const el = ref.current;
    if (!el) return;
    setView((old) => (old.top === el.scrollTop && old.height === el.clientHeight
      ? old : { top: el.scrollTop, height: el.clientHeight }));
  }, []);

  useLayoutEffect(() => {
    const el = ref.current;
    if (!el) return;
    measure();
    const onScroll = () => {
      if (frame.current === null) frame.current = requestAnimationFrame(measure);
    };
    el.addEventListener("scroll", onScroll, { passive: true });
    const observer = new ResizeObserver(onScroll);
    observer.observe(el);
    return () => {
      el.removeEventListener("scroll", onScroll);
      observer.disconnect();
      if (frame.current !== null) cancelAnimationFrame(frame.current);
      frame.current = null;
    };
  }, [measure]);

  // A list that shrank below the scroll position: let the browser clamp, then re-measure.
  useEffect(() => {
    if (ref.current && view.top > count * rowHeight) measure();
  }, [count, rowHeight, view.top, measure]);

  const first = Math.max(0, Math.floor(view.top / rowHeight) - overscan);
  const last = Math.min(count, Math.ceil((view.top + view.height) / rowHeight) + overscan);

  const scrollToBottom = useCallback(() => {
    const el = ref.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, []);
  const atBottom = useCallback(() => {
    const el = ref.current;
    return !el || el.scrollHeight - el.scrollTop - el.clientHeight < rowHeight * 1.5;
  }, [rowHeight]);

  return { ref, start: first, end: Math.max(first, last), height: count * rowHeight, scrollToBottom, atBottom };
}
