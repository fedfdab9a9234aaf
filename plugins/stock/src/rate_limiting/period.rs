//! The six periods and their fixed windows, aligned to UTC calendar boundaries as Kong's
//! `kong/tools/timestamp.lua` aligns them.

use std::fmt;

/// A rate-limiting period. The order (shortest first) is the order limits are checked,
/// validated and reported in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Period {
    Second,
    Minute,
    Hour,
    Day,
    Month,
    Year,
}

/// One window of a period: `[start, end)` in Unix seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Bounds {
    /// First second of the window.
    pub start: u64,
    /// First second after the window.
    pub end: u64,
}

impl Bounds {
    /// Seconds until the window ends, at least 1 (Kong's `max(1, window - elapsed)`).
    pub fn reset(&self, now: u64) -> u64 {
        self.end.saturating_sub(now).max(1)
    }
}

const DAY: u64 = 86_400;

impl Period {
    /// Every period, shortest first.
    pub const ALL: [Period; 6] = [
        Period::Second,
        Period::Minute,
        Period::Hour,
        Period::Day,
        Period::Month,
        Period::Year,
    ];

    /// The configuration field name (`second` … `year`).
    pub fn name(self) -> &'static str {
        match self {
            Period::Second => "second",
            Period::Minute => "minute",
            Period::Hour => "hour",
            Period::Day => "day",
            Period::Month => "month",
            Period::Year => "year",
        }
    }

    /// Index into per-period arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The window containing `now` (Unix seconds, UTC).
    ///
    /// Seconds, minutes, hours and days are epoch multiples (UTC has no leap seconds in
    /// Unix time, so these are exactly the calendar boundaries). Months and years start
    /// on the first of the calendar month or year and end on the next one, so a window
    /// is 28 to 31 days, or 365 or 366 days, long.
    pub fn bounds(self, now: u64) -> Bounds {
        let fixed = |len: u64| {
            let start = now - now % len;
            Bounds {
                start,
                end: start + len,
            }
        };
        match self {
            Period::Second => fixed(1),
            Period::Minute => fixed(60),
            Period::Hour => fixed(3_600),
            Period::Day => fixed(DAY),
            Period::Month | Period::Year => {
                let (year, month, _) = civil_from_days(now / DAY);
                let (first, next) = if self == Period::Month {
                    let next = if month == 12 {
                        (year + 1, 1)
                    } else {
                        (year, month + 1)
                    };
                    ((year, month), next)
                } else {
                    ((year, 1), (year + 1, 1))
                };
                Bounds {
                    start: days_from_civil(first.0, first.1) * DAY,
                    end: days_from_civil(next.0, next.1) * DAY,
                }
            }
        }
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The (year, month 1-12, day 1-31) of day number `days` since 1970-01-01, by Howard
/// Hinnant's `civil_from_days` (restricted to dates from 1970 on, as Unix seconds are).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Day number since 1970-01-01 of the first day of `month` in `year` (the inverse of
/// [`civil_from_days`] for day 1; years from 1970 on).
fn days_from_civil(year: u64, month: u64) -> u64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unix seconds of `year-month-day hh:mm:ss` UTC (dates from 1970).
    fn utc(year: u64, month: u64, day: u64, h: u64, m: u64, s: u64) -> u64 {
        (days_from_civil(year, month) + day - 1) * DAY + h * 3_600 + m * 60 + s
    }

    #[test]
    fn calendar_round_trip() {
        assert_eq!(days_from_civil(1970, 1), 0);
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        // 2000-03-01 (after a leap day in a century year divisible by 400).
        assert_eq!(civil_from_days(11_017), (2000, 3, 1));
        for days in (0..80_000).step_by(7) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m) + d - 1, days, "day {days}");
        }
    }

    #[test]
    fn short_periods_are_epoch_aligned() {
        let now = utc(2024, 5, 17, 13, 45, 30);
        assert_eq!(
            Period::Second.bounds(now),
            Bounds {
                start: now,
                end: now + 1
            }
        );
        let b = Period::Minute.bounds(now);
        assert_eq!((b.start, b.end), (now - 30, now + 30));
        assert_eq!(b.reset(now), 30);
        let b = Period::Hour.bounds(now);
        assert_eq!(b.start, utc(2024, 5, 17, 13, 0, 0));
        assert_eq!(b.reset(now), 14 * 60 + 30);
        let b = Period::Day.bounds(now);
        assert_eq!(
            (b.start, b.end),
            (utc(2024, 5, 17, 0, 0, 0), utc(2024, 5, 18, 0, 0, 0))
        );
    }

    #[test]
    fn months_and_years_follow_the_calendar() {
        // February of a leap year: 29 days.
        let now = utc(2024, 2, 10, 8, 0, 0);
        let b = Period::Month.bounds(now);
        assert_eq!(
            (b.start, b.end),
            (utc(2024, 2, 1, 0, 0, 0), utc(2024, 3, 1, 0, 0, 0))
        );
        assert_eq!(b.end - b.start, 29 * DAY);
        // December rolls into the next year.
        let b = Period::Month.bounds(utc(2023, 12, 31, 23, 59, 59));
        assert_eq!(
            (b.start, b.end),
            (utc(2023, 12, 1, 0, 0, 0), utc(2024, 1, 1, 0, 0, 0))
        );
        assert_eq!(b.reset(utc(2023, 12, 31, 23, 59, 59)), 1);
        let b = Period::Year.bounds(now);
        assert_eq!(
            (b.start, b.end),
            (utc(2024, 1, 1, 0, 0, 0), utc(2025, 1, 1, 0, 0, 0))
        );
        assert_eq!(b.end - b.start, 366 * DAY);
        // The first second of a month belongs to it.
        let first = utc(2024, 3, 1, 0, 0, 0);
        assert_eq!(Period::Month.bounds(first).start, first);
    }

    #[test]
    fn reset_is_at_least_one() {
        let b = Bounds { start: 0, end: 60 };
        assert_eq!(b.reset(59), 1);
        assert_eq!(b.reset(60), 1);
        assert_eq!(b.reset(0), 60);
    }
}
