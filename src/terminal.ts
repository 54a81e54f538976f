// Human output for the operating commands: aligned columns, and colors only on a
// terminal and never when NO_COLOR is set (https://no-color.org).

export type Color = "green" | "red" | "yellow" | "dim" | "bold";

const CODES: Record<Color, [number, number]> = { green: [32, 39], red: [31, 39], yellow: [33, 39], dim: [2, 22], bold: [1, 22] };

export interface Painter {
  (color: Color, text: string): string;
}

export function painter(stream: NodeJS.WriteStream): Painter {
  const on = stream.isTTY === true && !("NO_COLOR" in process.env && process.env.NO_COLOR !== "");
  return (color, text) => (on ? `\x1b[${CODES[color][0]}m${text}\x1b[${CODES[color][1]}m` : text);
}

const visible = (text: string) => text.replace(/\x1b\[[0-9;]*m/g, "").length;

/** Rows as lines with every column but the last padded to its widest cell. */
export function columns(rows: readonly (readonly string[])[], gap = "  "): string[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, visible(cell))));
  return rows.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell + " ".repeat(widths[i]! - visible(cell)))).join(gap).trimEnd());
}
