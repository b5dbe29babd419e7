// Numbers and times as people read them, in the browser's locale.

const numbers = new Intl.NumberFormat();
const percent = new Intl.NumberFormat(undefined, { style: "percent", maximumFractionDigits: 1 });
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
const fullTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
export const dayLabel = new Intl.DateTimeFormat(undefined, {
  month: "short", day: "numeric", timeZone: "UTC",
});
export const hourLabel = new Intl.DateTimeFormat(undefined, {
  hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone: "UTC",
});

const UNITS = [["year", 31536000], ["month", 2592000], ["week", 604800], ["day", 86400],
  ["hour", 3600], ["minute", 60], ["second", 1]];

// Credits are integers up to 2^63 - 1; past 2^53 a JavaScript number is not exact, so
// such a number is read as a BigInt (exactIntegers) and formatted as one.
export function count(value) {
  return typeof value === "number" || typeof value === "bigint" ? numbers.format(value) : "—";
}

export function signed(value) {
  return value > 0 ? "+" + numbers.format(value) : numbers.format(value);
}

export function share(part, whole) {
  return whole > 0 ? percent.format(part / whole) : "—";
}

// For arithmetic (sums, shares, chart bars), where the last digits do not show.
export const approx = (value) => Number(value);

// A JSON.parse reviver: integers a number cannot hold exactly become BigInts.
export function exactIntegers(key, value, context) {
  if (typeof value === "number" && !Number.isSafeInteger(value) && context && context.source
      && /^-?\d+$/.test(context.source)) {
    return BigInt(context.source);
  }
  return value;
}

// The largest unit the time nearly fills ("in 1 hour" for 59 min 50 s, not "in 60 minutes").
const NEARLY = 0.98;

export function ago(iso) {
  const seconds = Math.round((Date.parse(iso) - Date.now()) / 1000);
  for (const [unit, size] of UNITS) {
    if (Math.abs(seconds) >= size * NEARLY || unit === "second") {
      return relative.format(Math.round(seconds / size), unit);
    }
  }
  return "";
}

export function secondsAgo(seconds) {
  return relative.format(-seconds, "second");
}

export function exactTime(iso) {
  return fullTime.format(new Date(iso));
}
