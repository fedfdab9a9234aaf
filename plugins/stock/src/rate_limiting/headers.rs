//! The headers Kong's `rate-limiting` sends, computed from an [`Outcome`].
//!
//! - `X-RateLimit-Limit-<Period>` and `X-RateLimit-Remaining-<Period>` for every
//!   configured period;
//! - `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` for the tightest
//!   period: the lowest remaining, and on a tie the longer window;
//! - on a refused request, `Retry-After` with that period's reset (which is then a
//!   period with nothing remaining).

use http::header::RETRY_AFTER;
use http::{HeaderName, HeaderValue};

use super::limiter::{Outcome, PeriodUsage};
use crate::header_values::number;

// Kong's spelling. Static names are the cheapest to add (see `header_values`).
const X_LIMIT: [&str; 6] = [
    "X-RateLimit-Limit-Second",
    "X-RateLimit-Limit-Minute",
    "X-RateLimit-Limit-Hour",
    "X-RateLimit-Limit-Day",
    "X-RateLimit-Limit-Month",
    "X-RateLimit-Limit-Year",
];

const X_REMAINING: [&str; 6] = [
    "X-RateLimit-Remaining-Second",
    "X-RateLimit-Remaining-Minute",
    "X-RateLimit-Remaining-Hour",
    "X-RateLimit-Remaining-Day",
    "X-RateLimit-Remaining-Month",
    "X-RateLimit-Remaining-Year",
];

const LIMIT: &str = "RateLimit-Limit";
const REMAINING: &str = "RateLimit-Remaining";
const RESET: &str = "RateLimit-Reset";

/// How many headers [`rate_limit_headers`] emits for `outcome`.
pub(crate) fn count(outcome: &Outcome) -> usize {
    2 * outcome.usage().count() + 3
}

/// The period the `RateLimit-*` headers describe: the lowest remaining, the longer
/// window on a tie (Kong's choice).
pub(crate) fn tightest(outcome: &Outcome) -> Option<&PeriodUsage> {
    // Periods come shortest first, so `<=` lets a later (longer) one win a tie.
    outcome
        .usage()
        .fold(None, |best: Option<&PeriodUsage>, u| match best {
            Some(b) if u.remaining > b.remaining => Some(b),
            _ => Some(u),
        })
}

/// Calls `emit` with each rate-limit header for `outcome`, in a stable order:
/// the per-period pairs (shortest period first), then the three `RateLimit-*` headers.
/// `limit_value` gives the (prebuilt) value of a period's limit.
pub(crate) fn rate_limit_headers(
    outcome: &Outcome,
    limit_value: impl Fn(usize) -> HeaderValue,
    mut emit: impl FnMut(&'static str, HeaderValue),
) {
    for u in outcome.usage() {
        let i = u.period.index();
        emit(X_LIMIT[i], limit_value(i));
        emit(X_REMAINING[i], number(u.remaining));
    }
    if let Some(t) = tightest(outcome) {
        emit(LIMIT, limit_value(t.period.index()));
        emit(REMAINING, number(t.remaining));
        emit(RESET, number(t.reset));
    }
}

/// The `Retry-After` header for a refused request: seconds until the tightest window
/// (one with nothing left) ends. `None` for an allowed request.
pub(crate) fn retry_after(outcome: &Outcome) -> Option<(HeaderName, HeaderValue)> {
    if outcome.allowed {
        return None;
    }
    tightest(outcome).map(|t| (RETRY_AFTER, number(t.reset)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rate_limiting::limiter::{Identifier, Limiter};
    use crate::rate_limiting::period::Period;
    use std::net::IpAddr;

    const T0: u64 = 1_700_000_040; // a minute boundary; 2023-11-14 22:14:00 UTC

    fn id() -> Identifier<'static> {
        Identifier::Ip(IpAddr::from([192, 0, 2, 1]))
    }

    fn headers(outcome: &Outcome) -> Vec<(String, String)> {
        let mut v = Vec::new();
        let limits: Vec<HeaderValue> = Period::ALL
            .iter()
            .map(|p| {
                number(
                    outcome
                        .usage()
                        .find(|u| u.period == *p)
                        .map_or(0, |u| u.limit),
                )
            })
            .collect();
        rate_limit_headers(
            outcome,
            |i| limits[i].clone(),
            |n, val| {
                v.push((
                    n.to_ascii_lowercase(),
                    val.to_str().unwrap_or("?").to_string(),
                ))
            },
        );
        v
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn header_names_match_kong() {
        for p in Period::ALL {
            let i = p.index();
            assert_eq!(
                X_LIMIT[i].to_ascii_lowercase(),
                format!("x-ratelimit-limit-{p}")
            );
            assert_eq!(
                X_REMAINING[i].to_ascii_lowercase(),
                format!("x-ratelimit-remaining-{p}")
            );
        }
    }

    #[test]
    fn one_period() {
        let l = Limiter::with_default_cap([(Period::Minute, 10)]);
        let o = l.check(id(), T0 + 13);
        assert_eq!(
            headers(&o),
            pairs(&[
                ("x-ratelimit-limit-minute", "10"),
                ("x-ratelimit-remaining-minute", "9"),
                ("ratelimit-limit", "10"),
                ("ratelimit-remaining", "9"),
                ("ratelimit-reset", "47"),
            ])
        );
        assert_eq!(retry_after(&o), None);
    }

    #[test]
    fn several_periods_report_the_tightest() {
        let l = Limiter::with_default_cap([
            (Period::Second, 5),
            (Period::Minute, 6),
            (Period::Hour, 100),
        ]);
        // First request: second has 4 left, minute 5 → the second is tightest.
        let o = l.check(id(), T0 + 30);
        assert_eq!(
            headers(&o),
            pairs(&[
                ("x-ratelimit-limit-second", "5"),
                ("x-ratelimit-remaining-second", "4"),
                ("x-ratelimit-limit-minute", "6"),
                ("x-ratelimit-remaining-minute", "5"),
                ("x-ratelimit-limit-hour", "100"),
                ("x-ratelimit-remaining-hour", "99"),
                ("ratelimit-limit", "5"),
                ("ratelimit-remaining", "4"),
                ("ratelimit-reset", "1"),
            ])
        );
        // Next second, second request: second 4 left, minute 4 left → a tie, the longer
        // window (minute) wins, with its reset.
        let o = l.check(id(), T0 + 31);
        let t = tightest(&o).map(|t| (t.period, t.remaining, t.reset));
        assert_eq!(t, Some((Period::Minute, 4, 29)));
        let h = headers(&o);
        assert!(h.contains(&("ratelimit-limit".into(), "6".into())));
        assert!(h.contains(&("ratelimit-reset".into(), "29".into())));
    }

    #[test]
    fn blocked_request_reports_zero_and_retry_after() {
        let l = Limiter::with_default_cap([
            (Period::Second, 2),
            (Period::Minute, 2),
            (Period::Hour, 50),
        ]);
        assert!(l.check(id(), T0 + 20).allowed);
        assert!(l.check(id(), T0 + 21).allowed);
        let o = l.check(id(), T0 + 22);
        assert!(!o.allowed);
        assert_eq!(
            headers(&o),
            pairs(&[
                ("x-ratelimit-limit-second", "2"),
                ("x-ratelimit-remaining-second", "2"),
                ("x-ratelimit-limit-minute", "2"),
                ("x-ratelimit-remaining-minute", "0"),
                ("x-ratelimit-limit-hour", "50"),
                ("x-ratelimit-remaining-hour", "48"),
                ("ratelimit-limit", "2"),
                ("ratelimit-remaining", "0"),
                ("ratelimit-reset", "38"),
            ])
        );
        let (name, value) = retry_after(&o).expect("refused");
        assert_eq!(name, RETRY_AFTER);
        assert_eq!(value, "38");
    }

    #[test]
    fn retry_after_uses_the_longest_exhausted_window() {
        // Both the second and the minute are exhausted: retrying after the second ends
        // would be refused again, so Retry-After is the minute's reset.
        let l = Limiter::with_default_cap([(Period::Second, 1), (Period::Minute, 1)]);
        assert!(l.check(id(), T0 + 50).allowed);
        let o = l.check(id(), T0 + 50);
        assert!(!o.allowed);
        assert_eq!(
            retry_after(&o).map(|(_, v)| v),
            Some(HeaderValue::from(10u64))
        );
    }
}
