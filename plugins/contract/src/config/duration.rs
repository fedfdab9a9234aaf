//! Durations written with units, as the gateway's configuration and plugins' read them.

use std::time::Duration as StdDuration;

/// Parses `250ms`, `5s`, `1m30s` and so on: units `ms`, `s`, `m`, `h`, `d`, several may
/// be combined; a bare number is refused so that nobody has to guess the unit. The
/// error says what was wrong, for a [`Diagnostic`](super::Diagnostic) at the field.
pub fn parse_duration(text: &str) -> Result<StdDuration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty duration; write it like 250ms, 5s or 1m".into());
    }
    let mut total = StdDuration::ZERO;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!(
                "invalid duration {text:?}; write it like 250ms, 5s or 1m"
            ));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("duration {text:?} is too large"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let part = match unit {
            "ms" => StdDuration::from_millis(n),
            "s" => StdDuration::from_secs(n),
            "m" => StdDuration::from_secs(n.saturating_mul(60)),
            "h" => StdDuration::from_secs(n.saturating_mul(3600)),
            "d" => StdDuration::from_secs(n.saturating_mul(86400)),
            "" => {
                return Err(format!(
                    "duration {text:?} has no unit; write it like {n}ms or {n}s"
                ))
            }
            other => {
                return Err(format!(
                    "unknown duration unit {other:?} in {text:?}; use ms, s, m, h or d"
                ))
            }
        };
        total = total.saturating_add(part);
    }
    Ok(total)
}
