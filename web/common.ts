// Shared by both pages: typed DOM look-ups, the server's JSON errors, status line and chart markers.
import uPlot from 'uplot';

export function byId<T extends HTMLElement>(id: string, type: { new (): T }): T {
  const el = document.getElementById(id);
  if (!(el instanceof type)) throw new Error(`page is missing #${id}`);
  return el;
}

/** The server's error body is { code, message }; anything else is reported with its status. */
export async function failure(response: Response): Promise<Error> {
  try {
    const body = (await response.json()) as { code?: string; message?: string };
    return new Error(`${body.message ?? response.statusText} [${body.code ?? response.status}]`);
  } catch {
    return new Error(`${response.status} ${response.statusText}`);
  }
}

export async function getJson<T>(url: string): Promise<T> {
  const response = await fetch(url, { headers: { accept: 'application/json' } });
  if (!response.ok) throw await failure(response);
  return (await response.json()) as T;
}

export function setStatus(text: string, isError = false): void {
  const status = byId('status', HTMLElement);
  status.textContent = text;
  status.classList.toggle('error', isError);
}

/** Vertical lines at x values (EOS choice, slider) drawn over a chart after each redraw. */
export function markerPlugin(markers: () => { x: number; color: string }[]): uPlot.Plugin {
  return {
    hooks: {
      draw: [
        (u: uPlot) => {
          const ctx = u.ctx;
          ctx.save();
          ctx.setLineDash([]);
          ctx.lineWidth = 2 * devicePixelRatio;
          for (const m of markers()) {
            const x = u.valToPos(m.x, 'x', true);
            ctx.strokeStyle = m.color;
            ctx.beginPath();
            ctx.moveTo(x, u.bbox.top);
            ctx.lineTo(x, u.bbox.top + u.bbox.height);
            ctx.stroke();
          }
          ctx.restore();
        },
      ],
    },
  };
}

/** Chart size from its container (CSS decides; uPlot needs pixels). */
export function chartSize(el: HTMLElement): { width: number; height: number } {
  return { width: el.clientWidth, height: Math.max(120, el.clientHeight - 40) };
}

/** Data attributes tests and people can read: how many points the chart holds now. */
export function markChart(el: HTMLElement, points: number): void {
  el.dataset.points = String(points);
}

/** Tick steps for counts (slots, tokens, optimizer steps): whole numbers only. */
export const WHOLE_TICKS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000, 1_000_000];
