/**
 * QEMU's option-argument syntax ("QemuOpts"): `[implied,]key=value,key=value`, where a comma
 * inside a value is written as two commas. The first item may omit `key=`; the caller says
 * which key it implies (`-M virt` → type=virt, `-object memory-backend-memfd,...` → qom-type).
 */

export class OptionError extends Error {
  readonly code = 'EOPTION';
}

export function parseKeyval(text: string, impliedKey?: string): Map<string, string> {
  const items: string[] = [];
  let cur = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === ',') {
      if (text[i + 1] === ',') {
        cur += ',';
        i++;
        continue;
      }
      items.push(cur);
      cur = '';
      continue;
    }
    cur += c;
  }
  items.push(cur);
  const out = new Map<string, string>();
  items.forEach((item, idx) => {
    if (item === '' && idx === items.length - 1 && idx > 0) return; // trailing comma
    const eq = item.indexOf('=');
    if (eq < 0) {
      if (idx === 0 && impliedKey) {
        out.set(impliedKey, item);
        return;
      }
      // QEMU accepts a bare flag as key=on ("server" → server=on).
      out.set(item, 'on');
      return;
    }
    out.set(item.slice(0, eq), item.slice(eq + 1));
  });
  return out;
}

/** on/off/yes/no/true/false as QEMU's qemu_opt_get_bool accepts them. */
export function parseBool(value: string, what: string): boolean {
  switch (value) {
    case 'on':
    case 'yes':
    case 'true':
    case 'y':
      return true;
    case 'off':
    case 'no':
    case 'false':
    case 'n':
      return false;
    default:
      throw new OptionError(`${what}: '${value}' is not on or off`);
  }
}
