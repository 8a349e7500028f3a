//! What an upstream answer means for the key that made it ([`Outcome`],
//! [`classify`]), and the calendar arithmetic behind Google's daily quota
//! reset at midnight US Pacific time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// What an upstream answer means for the key that made it.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// 2xx: resets consecutive failures.
    Success,
    /// The key itself is bad (invalid, expired, suspended, 401/403): disable it.
    KeyInvalid(String),
    /// 429: cool the key down for this model until the deadline.
    Quota {
        /// How long to cool.
        cooldown: Duration,
        /// A per-day quota (cooling until Google's daily reset).
        daily: bool,
        /// Google's message.
        message: String,
    },
    /// 5xx, connection error, timeout: retry elsewhere; counts toward a rest.
    Transient(String),
    /// A problem shared by every key (region not supported): no key is blamed.
    Region(String),
    /// The client's own fault (400, 404, 413, …): returned at once, no key blamed.
    Client,
}

/// Classify an upstream answer (status, body, `Retry-After` header) into an
/// [`Outcome`]. `default_cooldown` is used for a 429 that names no delay.
pub fn classify(
    status: u16,
    body: &[u8],
    retry_after: Option<&str>,
    default_cooldown: Duration,
) -> Outcome {
    if (200..300).contains(&status) {
        return Outcome::Success;
    }
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let err = parsed.as_ref().and_then(|v| match v {
        Value::Array(a) => a.first().and_then(|e| e.get("error")),
        v => v.get("error"),
    });
    let message = err
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let gstatus = err
        .and_then(|e| e.get("status"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let details: &[Value] = err
        .and_then(|e| e.get("details"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let reason = details
        .iter()
        .find_map(|d| d.get("reason").and_then(Value::as_str))
        .unwrap_or("");
    let short = if message.is_empty() {
        format!("HTTP {status}")
    } else {
        crate::openai::error::scrub(&message)
    };
    match status {
        400 if matches!(reason, "API_KEY_INVALID" | "API_KEY_EXPIRED")
            || message.contains("API key not valid")
            || message.contains("API key expired") =>
        {
            Outcome::KeyInvalid(short)
        }
        400 if gstatus == "FAILED_PRECONDITION" && message.contains("location") => {
            Outcome::Region(short)
        }
        // A file or cache of another project, expired or deleted: the
        // request's fault, not the key's (Google answers 403 for all three).
        403 if message.contains("access the File")
            || message.contains("CachedContent not found") =>
        {
            Outcome::Client
        }
        401 | 403 => Outcome::KeyInvalid(short),
        429 => {
            let daily = details.iter().any(|d| {
                d.get("violations")
                    .and_then(Value::as_array)
                    .is_some_and(|vs| {
                        vs.iter().any(|v| {
                            v.get("quotaId")
                                .and_then(Value::as_str)
                                .is_some_and(|q| q.contains("PerDay"))
                        })
                    })
            });
            let delay = details
                .iter()
                .find_map(|d| d.get("retryDelay").and_then(Value::as_str))
                .and_then(parse_duration)
                .or_else(|| {
                    retry_after
                        .and_then(|r| r.trim().parse::<f64>().ok())
                        // Bounded like `retryDelay`: a hostile `Retry-After: 1e30`
                        // must not panic (`from_secs_f64`) or overflow `Instant + d`.
                        .filter(|s| s.is_finite() && (0.0..1e9).contains(s))
                        .map(Duration::from_secs_f64)
                });
            let cooldown = if daily {
                until_pacific_midnight(SystemTime::now())
            } else {
                delay.unwrap_or(default_cooldown)
            };
            Outcome::Quota {
                cooldown,
                daily,
                message: short,
            }
        }
        408 | 500 | 502 | 503 | 504 | 499 => Outcome::Transient(short),
        s if s >= 500 => Outcome::Transient(short),
        _ => Outcome::Client,
    }
}

/// Parse a protobuf Duration string (`"26s"`, `"1.5s"`).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let secs: f64 = s.trim().strip_suffix('s')?.parse().ok()?;
    (secs.is_finite() && (0.0..1e9).contains(&secs)).then(|| Duration::from_secs_f64(secs))
}

/// Time from `now` until the next midnight in US Pacific time, when Google
/// resets daily quotas (PST = UTC−8, PDT = UTC−7 from the second Sunday of
/// March to the first Sunday of November).
pub fn until_pacific_midnight(now: SystemTime) -> Duration {
    let t = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    let offset = if is_pacific_dst(t) {
        7 * 3600
    } else {
        8 * 3600
    };
    let local = t - offset;
    let next_midnight_local = (local.div_euclid(86400) + 1) * 86400;
    Duration::from_secs((next_midnight_local - local).max(1) as u64)
}

/// [`pacific_day`] and [`until_pacific_midnight`] of unix second `t`,
/// remembered per thread for the last second asked (the key pool asks on
/// every pick; both change at most once a second).
pub(crate) fn pacific_day_and_left(t: u64) -> (i64, Duration) {
    thread_local! {
        static LAST: std::cell::Cell<(u64, i64, u64)> = const { std::cell::Cell::new((u64::MAX, 0, 0)) };
    }
    LAST.with(|last| {
        let (at, day, left) = last.get();
        if at == t {
            return (day, Duration::from_secs(left));
        }
        let day = pacific_day(t);
        let left = until_pacific_midnight(UNIX_EPOCH + Duration::from_secs(t));
        last.set((t, day, left.as_secs()));
        (day, left)
    })
}

/// Days since 1970-01-01 in US Pacific time at unix second `t`: Google's
/// quota day (it resets at midnight Pacific).
pub(crate) fn pacific_day(t: u64) -> i64 {
    let t = t as i64;
    let offset = if is_pacific_dst(t) {
        7 * 3600
    } else {
        8 * 3600
    };
    (t - offset).div_euclid(86_400)
}

/// Days since 1970-01-01 → (year, month, day) (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) → days since 1970-01-01.
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// Whether US Pacific daylight time is in force at unix time `t`.
fn is_pacific_dst(t: i64) -> bool {
    let (year, _, _) = civil_from_days((t - 8 * 3600).div_euclid(86400));
    // n-th Sunday of a month, as days since epoch.
    let nth_sunday = |month: u32, n: i64| {
        let first = days_from_civil(year, month, 1);
        let weekday = (first + 4).rem_euclid(7); // 0 = Sunday
        first + (7 - weekday) % 7 + 7 * (n - 1)
    };
    let start = nth_sunday(3, 2) * 86400 + 2 * 3600 + 8 * 3600; // 02:00 PST
    let end = nth_sunday(11, 1) * 86400 + 2 * 3600 + 7 * 3600; // 02:00 PDT
    t >= start && t < end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_remembered_pacific_day_is_the_computed_one() {
        // Around the 2026 spring-forward (2026-03-08 10:00 UTC) and an
        // ordinary midnight, each second asked twice (the second time from memory).
        for base in [1_772_964_000u64 - 5, 1_773_000_000 - 5, 1_780_000_000] {
            for t in base..base + 10 {
                for _ in 0..2 {
                    let (day, left) = pacific_day_and_left(t);
                    assert_eq!(day, pacific_day(t));
                    assert_eq!(
                        left,
                        until_pacific_midnight(UNIX_EPOCH + Duration::from_secs(t))
                    );
                }
            }
        }
    }

    #[test]
    fn classifies_google_errors() {
        let cd = Duration::from_secs(60);
        let invalid = br#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"reason":"API_KEY_INVALID"}]}}"#;
        assert!(matches!(
            classify(400, invalid, None, cd),
            Outcome::KeyInvalid(_)
        ));
        let quota = br#"{"error":{"code":429,"message":"quota","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"26s"}]}}"#;
        assert!(
            matches!(classify(429, quota, None, cd), Outcome::Quota { cooldown, daily: false, .. } if cooldown == Duration::from_secs(26))
        );
        assert!(
            matches!(classify(429, b"", Some("7"), cd), Outcome::Quota { cooldown, .. } if cooldown == Duration::from_secs(7))
        );
        assert!(
            matches!(classify(429, b"", None, cd), Outcome::Quota { cooldown, .. } if cooldown == cd)
        );
        let daily = br#"[{"error":{"code":429,"message":"q","status":"RESOURCE_EXHAUSTED","details":[{"violations":[{"quotaId":"GenerateRequestsPerDayPerProjectPerModel-FreeTier"}]}]}}]"#;
        assert!(matches!(
            classify(429, daily, None, cd),
            Outcome::Quota { daily: true, .. }
        ));
        assert!(matches!(
            classify(503, b"{}", None, cd),
            Outcome::Transient(_)
        ));
        assert!(matches!(
            classify(403, b"{}", None, cd),
            Outcome::KeyInvalid(_)
        ));
        let foreign = br#"{"error":{"code":403,"message":"You do not have permission to access the File x7k2 or it may not exist.","status":"PERMISSION_DENIED"}}"#;
        assert_eq!(classify(403, foreign, None, cd), Outcome::Client);
        let cache = br#"{"error":{"code":403,"message":"CachedContent not found (or permission denied)","status":"PERMISSION_DENIED"}}"#;
        assert_eq!(classify(403, cache, None, cd), Outcome::Client);
        let region = br#"{"error":{"code":400,"message":"User location is not supported for the API use.","status":"FAILED_PRECONDITION"}}"#;
        assert!(matches!(
            classify(400, region, None, cd),
            Outcome::Region(_)
        ));
        let client = br#"{"error":{"code":400,"message":"Request contains an invalid argument.","status":"INVALID_ARGUMENT"}}"#;
        assert_eq!(classify(400, client, None, cd), Outcome::Client);
        assert_eq!(classify(404, b"", None, cd), Outcome::Client);
    }

    #[test]
    fn pacific_midnight() {
        // 2026-07-01 06:00 UTC = 2026-06-30 23:00 PDT → 1 h to midnight.
        let t =
            UNIX_EPOCH + Duration::from_secs(days_from_civil(2026, 7, 1) as u64 * 86400 + 6 * 3600);
        assert_eq!(until_pacific_midnight(t), Duration::from_secs(3600));
        // 2026-01-15 07:00 UTC = 2026-01-14 23:00 PST → 1 h.
        let t = UNIX_EPOCH
            + Duration::from_secs(days_from_civil(2026, 1, 15) as u64 * 86400 + 7 * 3600);
        assert_eq!(until_pacific_midnight(t), Duration::from_secs(3600));
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
    }
}
