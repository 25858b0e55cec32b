// The page's icons: small inline SVGs drawn here, so they show on any machine (no emoji
// font, no icon font, nothing fetched). Each is decorative (aria-hidden): the control
// that holds one always has a text label or an aria-label, and a tooltip.

const SVG_NS = 'http://www.w3.org/2000/svg';

/** 24×24 stroke paths, drawn in currentColor. */
const PATHS = {
  plus: 'M12 5v14M5 12h14',
  close: 'M6 6l12 12M18 6L6 18',
  list: 'M9 6h12M9 12h12M9 18h12M4 6h.01M4 12h.01M4 18h.01',
  pencil: 'M4 20h4L19 9l-4-4L4 16v4zM13.5 6.5l4 4',
  tag: 'M3 12V3h9l9 9-9 9-9-9zM7.5 7.5h.01',
  pin: 'M9 3h6l-1 6 4 4H6l4-4-1-6zM12 13v8',
  archive: 'M3 4h18v4H3zM5 8v12h14V8M10 12h4',
  trash: 'M4 7h16M9 7V4h6v3M6 7l1 13h10l1-13M10 11v5M14 11v5',
  copy: 'M9 9h11v11H9zM5 15H4V4h11v1',
  check: 'M5 13l4 4L19 7',
  more: 'M12 5h.01M12 12h.01M12 19h.01',
  mic: 'M12 3a3 3 0 0 1 3 3v6a3 3 0 0 1-6 0V6a3 3 0 0 1 3-3zM5 11a7 7 0 0 0 14 0M12 18v3',
  download: 'M12 4v11M7 10l5 5 5-5M5 20h14',
  upload: 'M12 15V4M7 9l5-5 5 5M5 20h14',
  chevronDown: 'M6 9l6 6 6-6',
  chevronUp: 'M6 15l6-6 6 6',
  alert: 'M12 3l10 18H2L12 3zM12 10v5M12 18h.01',
};

/** An <svg> element for `name` (see PATHS), `size` px square. */
export function icon(name, { size = 16, className = 'icon' } = {}) {
  const d = PATHS[name];
  if (!d) throw new Error(`no icon named ${name}`);
  const svg = document.createElementNS(SVG_NS, 'svg');
  for (const [k, v] of Object.entries({
    class: className, width: size, height: size, viewBox: '0 0 24 24', fill: 'none',
    stroke: 'currentColor', 'stroke-width': name === 'more' ? 3 : 2,
    'stroke-linecap': 'round', 'stroke-linejoin': 'round', 'aria-hidden': 'true',
    focusable: 'false', 'data-icon': name,
  })) svg.setAttribute(k, String(v));
  const path = document.createElementNS(SVG_NS, 'path');
  path.setAttribute('d', d);
  svg.append(path);
  return svg;
}

/** Replace every `<span data-icon="name">` placeholder in `root` with its icon. */
export function fillIcons(root = document) {
  for (const el of root.querySelectorAll('span[data-icon]')) {
    el.replaceWith(icon(el.dataset.icon, { size: Number(el.dataset.size) || 16 }));
  }
}
