//! Wall-clock time for expiry, with an offset that tests can move instead of sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static OFFSET_MS: AtomicI64 = AtomicI64::new(0);

/// Milliseconds since the Unix epoch, as this module sees them.
pub fn now_ms() -> i64 {
    let real = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    real.saturating_add(OFFSET_MS.load(Ordering::Relaxed))
}

/// Seconds on a monotonic clock (benchmark aid: wall time, where `os.clock` is CPU time).
pub fn monotonic() -> f64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_secs_f64()
}

/// Moves this module's clock forward (testing aid: expires sessions and cookies without sleeping).
/// It saturates: moved past the end of time, the clock stays there (every session has expired)
/// instead of wrapping round to before the epoch, where every session would live for ever.
#[cfg(feature = "test-hooks")]
pub fn advance(seconds: f64) {
    let by = (seconds * 1000.0) as i64; // `as` saturates (and takes NaN to 0)
    let _ = OFFSET_MS.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |o| {
        Some(o.saturating_add(by))
    });
}

/// Appends `http_date(ms)`; the text is made once per second per thread and reused, since
/// every Set-Cookie in that second carries the same one.
pub fn push_http_date(out: &mut String, ms: i64) {
    thread_local! {
        static LAST: std::cell::RefCell<(i64, String)> = const { std::cell::RefCell::new((i64::MIN, String::new())) };
    }
    let secs = ms.div_euclid(1000);
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if last.0 != secs {
            *last = (secs, http_date(ms));
        }
        out.push_str(&last.1);
    });
}

/// An IMF-fixdate (`Thu, 01 Jan 1970 00:00:00 GMT`) for a cookie's `Expires`.
pub fn http_date(ms: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[days.rem_euclid(7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        tod / 3600,
        tod % 3600 / 60,
        tod % 60
    )
}

/// An ISO-8601 UTC timestamp with milliseconds (`1970-01-01T00:00:00.000Z`), as JavaScript's
/// `Date.prototype.toISOString` writes it (express-session's stored `cookie.expires`).
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub fn iso_date(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let tod = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        tod / 3600,
        tod % 3600 / 60,
        tod % 60,
        ms.rem_euclid(1000)
    )
}

/// Howard Hinnant's days-to-civil algorithm: days since 1970-01-01 to (year, month, day).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_dates() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            http_date(1_700_000_000_000),
            "Tue, 14 Nov 2023 22:13:20 GMT"
        );
        assert_eq!(http_date(951_782_400_000), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(iso_date(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }
}
