/** A flow's graph as SVG: flowables as group boxes, branch lanes, edges, pan and zoom. */
import { useCallback, useEffect, useMemo, useRef, useState, type PointerEvent } from "react";
import type { FlowGraph } from "../types";
import { stateClass } from "./StateBadge";
import { layoutGraph, type Box } from "./topologyLayout";

export interface TopologyProps {
  graph: FlowGraph;
  /** Task run state by node uid (the task id path), to colour the nodes. */
  states?: Record<string, string>;
  onSelect?: (uid: string) => void;
  selected?: string | null;
}

interface View {
  x: number;
  y: number;
  k: number;
}

const MARGIN = 24;

function shortType(type: string | null | undefined): string {
  if (!type) return "";
  const parts = type.split(".");
  return parts[parts.length - 1];
}

function edgePath(a: Box, b: Box): string {
  const contains = b.x >= a.x && b.x + b.w <= a.x + a.w && b.y >= a.y && b.y + b.h <= a.y + a.h;
  const x1 = contains ? a.x + 6 : a.x + a.w;
  const y1 = contains ? a.y + 13 : a.y + a.h / 2;
  const x2 = b.x;
  const y2 = b.y + b.h / 2;
  const dx = Math.max(24, Math.abs(x2 - x1) / 2);
  return `M${x1},${y1} C${x1 + dx},${y1} ${x2 - dx},${y2} ${x2},${y2}`;
}

export default function Topology({ graph, states, onSelect, selected }: TopologyProps) {
  const layout = useMemo(() => layoutGraph(graph), [graph]);
  const svgRef = useRef<SVGSVGElement>(null);
  const [view, setView] = useState<View>({ x: MARGIN, y: MARGIN, k: 1 });
  const drag = useRef<{ px: number; py: number; vx: number; vy: number; moved: boolean } | null>(null);
  const [dragging, setDragging] = useState(false);

  const fit = useCallback(() => {
    const svg = svgRef.current;
    if (!svg) return;
    const { width, height } = svg.getBoundingClientRect();
    if (!width || !height || !layout.width) return;
    const k = Math.min(1.2, (width - 2 * MARGIN) / layout.width, (height - 2 * MARGIN) / layout.height);
    const scale = Math.max(0.15, k);
    setView({
      k: scale,
      x: (width - layout.width * scale) / 2,
      y: Math.max(MARGIN, (height - layout.height * scale) / 2),
    });
  }, [layout]);

  useEffect(() => {
    fit();
  }, [fit]);

  const zoomAt = (factor: number, cx: number, cy: number) =>
    setView((v) => {
      const k = Math.min(3, Math.max(0.1, v.k * factor));
      const f = k / v.k;
      return { k, x: cx - (cx - v.x) * f, y: cy - (cy - v.y) * f };
    });

  // React's wheel listener is passive; zooming must stop the page from scrolling too.
  useEffect(() => {
    const svg = svgRef.current;
    if (!svg) return;
    const onWheel = (event: globalThis.WheelEvent) => {
      event.preventDefault();
      const rect = svg.getBoundingClientRect();
      zoomAt(event.deltaY < 0 ? 1.1 : 1 / 1.1, event.clientX - rect.left, event.clientY - rect.top);
    };
    svg.addEventListener("wheel", onWheel, { passive: false });
    return () => svg.removeEventListener("wheel", onWheel);
  }, []);

  const onPointerDown = (event: PointerEvent<SVGSVGElement>) => {
    if (event.button !== 0) return;
    drag.current = { px: event.clientX, py: event.clientY, vx: view.x, vy: view.y, moved: false };
  };
  const onPointerMove = (event: PointerEvent<SVGSVGElement>) => {
    const d = drag.current;
    if (!d) return;
    const dx = event.clientX - d.px;
    const dy = event.clientY - d.py;
    if (!d.moved && Math.abs(dx) + Math.abs(dy) < 4) return;
    if (!d.moved) {
      d.moved = true;
      setDragging(true);
      svgRef.current?.setPointerCapture(event.pointerId);
    }
    setView((v) => ({ ...v, x: d.vx + dx, y: d.vy + dy }));
  };
  const onPointerUp = () => {
    drag.current = null;
    setDragging(false);
  };

  const boxes = layout.boxes;
  const groups = boxes.filter((b) => b.kind === "group" || b.kind === "lane");
  const nodes = boxes.filter((b) => b.kind === "leaf" || b.kind === "terminal");

  return (
    <div className="topology" data-testid="topology">
      <svg
        ref={svgRef}
        className={dragging ? "dragging" : ""}
        onPointerDown={onPointerDown}
        onPointerMove={onPointerMove}
        onPointerUp={onPointerUp}
        onPointerLeave={onPointerUp}
      >
        <defs>
          <marker id="topo-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
            <path d="M0,0 L10,5 L0,10 z" fill="#9aa3b2" />
          </marker>
        </defs>
        <g transform={`translate(${view.x},${view.y}) scale(${view.k})`}>
          {groups.map((box) =>
            box.kind === "group" ? (
              <g
                key={box.id}
                className={`group ${box.node && states?.[box.id] ? stateClass(states[box.id]) : ""}`}
                data-testid={`topology-group-${box.id}`}
                onClick={(e) => {
                  e.stopPropagation();
                  if (!drag.current?.moved && box.node) onSelect?.(box.id);
                }}
              >
                <rect x={box.x} y={box.y} width={box.w} height={box.h} />
                <text x={box.x + 10} y={box.y + 17}>
                  {box.label}
                  <tspan className="type" dx="6" fill="#6b7588" fontWeight="400">
                    {shortType(box.node?.type)}
                  </tspan>
                </text>
                {box.node && states?.[box.id] && (
                  <circle cx={box.x + box.w - 12} cy={box.y + 13} r="5" fill={`var(--state-${states[box.id].toLowerCase()})`} />
                )}
              </g>
            ) : (
              <text key={box.id} className="branch-label" x={box.x + 6} y={box.y + 12}>
                {box.label}
              </text>
            ),
          )}
          {graph.edges.map((edge, i) => {
            const a = layout.byId.get(edge.source);
            const b = layout.byId.get(edge.target);
            if (!a || !b) return null;
            return (
              <path
                key={`${edge.source}-${edge.target}-${i}`}
                className={`edge ${edge.relation}`}
                d={edgePath(a, b)}
                markerEnd="url(#topo-arrow)"
              />
            );
          })}
          {nodes.map((box) => {
            const state = states?.[box.id];
            if (box.kind === "terminal") {
              return (
                <g key={box.id} className="terminal" data-testid={`topology-node-${box.id}`}>
                  <circle cx={box.x + box.w / 2} cy={box.y + box.h / 2} r={box.w / 2 - 2} />
                  <text x={box.x + box.w / 2} y={box.y + box.h / 2 + 3} textAnchor="middle">
                    {box.node?.kind === "start" ? "start" : "end"}
                  </text>
                </g>
              );
            }
            return (
              <g
                key={box.id}
                className={`node ${state ? stateClass(state) : ""} ${selected === box.id ? "selected" : ""}`}
                data-testid={`topology-node-${box.id}`}
                data-state={state ?? ""}
                onClick={(e) => {
                  e.stopPropagation();
                  onSelect?.(box.id);
                }}
              >
                <title>{`${box.node?.taskId ?? box.id}\n${box.node?.type ?? ""}${state ? `\n${state}` : ""}`}</title>
                <rect className="box" x={box.x} y={box.y} width={box.w} height={box.h} />
                <rect
                  className="stripe"
                  x={box.x}
                  y={box.y}
                  width={4}
                  height={box.h}
                  fill={state ? `var(--state-${state.toLowerCase()})` : box.node?.kind === "trigger" ? "#b86e00" : "#8c6cff"}
                />
                <text className="label" x={box.x + 14} y={box.y + 19}>
                  {truncate(box.label, 24)}
                </text>
                <text className="type" x={box.x + 14} y={box.y + 35}>
                  {box.node?.kind === "trigger" ? "trigger · " : ""}
                  {truncate(shortType(box.node?.type), 26)}
                  {state ? ` · ${state}` : ""}
                </text>
              </g>
            );
          })}
        </g>
      </svg>
      <div className="controls">
        <button className="small" title="Zoom in" onClick={() => zoomAt(1.2, 200, 150)}>
          +
        </button>
        <button className="small" title="Zoom out" onClick={() => zoomAt(1 / 1.2, 200, 150)}>
          −
        </button>
        <button className="small" title="Fit to view" data-testid="topology-fit" onClick={fit}>
          Fit
        </button>
      </div>
    </div>
  );
}

function truncate(text: string, n: number): string {
  return text.length > n ? `${text.slice(0, n - 1)}…` : text;
}

export { Topology };
