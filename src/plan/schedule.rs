//! Run windows: when `ferry run` may work. `Mon-Fri 19:00-07:00` is a window that opens
//! at 19:00 on each weekday and closes at 07:00 the next morning (a window that ends at
//! or before its start runs past midnight, and belongs to the day it opens); days are
//! `Mon`…`Sun`, ranges (`Mon-Fri`, `Fri-Mon`), lists (`Sat,Sun`), or left out for every
//! day; `24:00` ends a window at midnight. Times are in the plan's time zone (IANA
//! names, DST as the zone has it). Pure: the clock is the caller's.

use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan as _, ZonedDateTime as Zoned};

/// One window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    /// The days it opens on (Monday first).
    days: [bool; 7],
    opens: Time,
    /// Minutes it lasts (1 to 24 hours).
    minutes: i64,
}

/// The plan's windows and the time zone they are in.
#[derive(Clone, Debug)]
pub struct Schedule {
    pub windows: Vec<Window>,
    pub zone: TimeZone,
    /// As the plan wrote it, for messages.
    pub text: String,
}

/// `bandwidth`: a limit in bytes a second, and other limits inside given windows.
#[derive(Clone, Debug)]
pub struct Bandwidth {
    /// Outside every window of `by_window`; `None`: no limit.
    pub limit: Option<u64>,
    pub by_window: Vec<(Schedule, u64)>,
}

impl Bandwidth {
    /// The limit at `now`: the first window open then says, else the default.
    pub fn at(&self, now: Timestamp) -> Option<u64> {
        for (schedule, limit) in &self.by_window {
            if matches!(schedule.at(now), Now::Open { .. }) {
                return Some(*limit);
            }
        }
        self.limit
    }
}

/// Where `now` is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Now {
    /// Inside a window that closes at this time.
    Open { closes: Zoned },
    /// Outside every window; the next opens at this time.
    Closed { opens: Zoned },
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn day(text: &str) -> Result<usize, String> {
    DAYS.iter()
        .position(|d| d.eq_ignore_ascii_case(text))
        .ok_or_else(|| format!("`{text}` is not a day (Mon, Tue, Wed, Thu, Fri, Sat, Sun)"))
}

fn clock_time(text: &str) -> Result<i64, String> {
    let bad = || format!("`{text}` is not a time of day (HH:MM)");
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    let (h, m): (i64, i64) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if !(0..=24).contains(&h) || !(0..60).contains(&m) || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

impl Window {
    /// Parses `[DAYS ]HH:MM-HH:MM`.
    pub fn parse(text: &str) -> Result<Window, String> {
        let parts: Vec<&str> = text.split_whitespace().collect();
        let (days_text, times) = match parts.as_slice() {
            [times] => (None, *times),
            [days, times] => (Some(*days), *times),
            _ => {
                return Err(format!(
                    "`{text}` is not a window: expected `[DAYS ]HH:MM-HH:MM`, as `Mon-Fri 19:00-07:00`"
                ));
            }
        };
        let mut days = [days_text.is_none(); 7];
        for item in days_text.unwrap_or("").split(',').filter(|s| !s.is_empty()) {
            match item.split_once('-') {
                Some((from, to)) => {
                    let (from, to) = (day(from)?, day(to)?);
                    let mut d = from;
                    loop {
                        days[d] = true;
                        if d == to {
                            break;
                        }
                        d = (d + 1) % 7;
                    }
                }
                None => days[day(item)?] = true,
            }
        }
        let (opens, closes) = times
            .split_once('-')
            .ok_or_else(|| format!("`{times}` is not a span of times (HH:MM-HH:MM)"))?;
        let (opens, closes) = (clock_time(opens)?, clock_time(closes)?);
        if opens == 24 * 60 {
            return Err("a window cannot open at 24:00; write 00:00 and the next day".into());
        }
        let minutes = if closes > opens {
            closes - opens
        } else {
            closes + 24 * 60 - opens
        };
        let opens =
            Time::new((opens / 60) as i8, (opens % 60) as i8, 0, 0).map_err(|e| e.to_string())?;
        Ok(Window {
            days,
            opens,
            minutes,
        })
    }

    /// The window's opening on `date`, if it opens that day, and its close.
    fn on(&self, date: Date, zone: &TimeZone) -> Option<(Zoned, Zoned)> {
        let weekday = Weekday::Monday.until(date.weekday()) as usize;
        if !self.days[weekday] {
            return None;
        }
        let opens = date
            .to_datetime(self.opens)
            .to_zoned_datetime(zone.clone())
            .ok()?;
        let closes = opens.checked_add(self.minutes.minutes()).ok()?;
        Some((opens, closes))
    }
}

impl Schedule {
    /// Whether `now` is inside a window, and until when; or when the next one opens.
    /// Overlapping windows join: the close is the latest of those open now.
    pub fn at(&self, now: Timestamp) -> Now {
        let today = now.to_zoned_datetime(self.zone.clone()).date();
        let mut closes: Option<Zoned> = None;
        let mut opens: Option<Zoned> = None;
        for offset in -1..=8i64 {
            let Ok(date) = today.checked_add(offset.days()) else {
                continue;
            };
            for window in &self.windows {
                let Some((open, close)) = window.on(date, &self.zone) else {
                    continue;
                };
                if open.timestamp() <= now && now < close.timestamp() {
                    if closes.as_ref().is_none_or(|c| close > *c) {
                        closes = Some(close);
                    }
                } else if open.timestamp() > now && opens.as_ref().is_none_or(|o| open < *o) {
                    opens = Some(open);
                }
            }
        }
        // A window that opens just as the current one closes extends it.
        while let Some(close) = &closes {
            let next = self.windows.iter().find_map(|w| {
                let (open, later) = w.on(close.date(), &self.zone)?;
                (open.timestamp() <= close.timestamp() && later > *close).then_some(later)
            });
            match next {
                Some(later) => closes = Some(later),
                None => break,
            }
        }
        match (closes, opens) {
            (Some(closes), _) => Now::Open { closes },
            (None, Some(opens)) => Now::Closed { opens },
            // No day opens any window: validation refuses such a schedule.
            (None, None) => Now::Closed {
                opens: now.to_zoned_datetime(self.zone.clone()),
            },
        }
    }
}

/// Monday-first day index, for tests.
#[cfg(test)]
fn weekday(z: &Zoned) -> Weekday {
    z.date().weekday()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(windows: &[&str], zone: &str) -> Schedule {
        Schedule {
            windows: windows.iter().map(|w| Window::parse(w).unwrap()).collect(),
            zone: TimeZone::get(zone).unwrap(),
            text: windows.join(", "),
        }
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn a_weeknight_window_opens_and_closes_across_midnight() {
        let s = schedule(&["Mon-Fri 19:00-07:00"], "Europe/Paris");
        // Tuesday 2026-12-01, 12:00 in Paris (11:00 UTC): closed until 19:00.
        match s.at(at("2026-12-01T11:00:00Z")) {
            Now::Closed { opens } => {
                assert_eq!(opens.to_string(), "2026-12-01T19:00:00+01:00[Europe/Paris]")
            }
            other => panic!("{other:?}"),
        }
        // Tuesday 23:00 Paris: open until Wednesday 07:00.
        match s.at(at("2026-12-01T22:00:00Z")) {
            Now::Open { closes } => {
                assert_eq!(
                    closes.to_string(),
                    "2026-12-02T07:00:00+01:00[Europe/Paris]"
                )
            }
            other => panic!("{other:?}"),
        }
        // Saturday 03:00 Paris: Friday's window is still open.
        assert!(matches!(s.at(at("2026-12-05T02:00:00Z")), Now::Open { .. }));
        // Saturday noon: closed until Monday 19:00.
        match s.at(at("2026-12-05T11:00:00Z")) {
            Now::Closed { opens } => {
                assert_eq!(weekday(&opens), Weekday::Monday);
                assert_eq!(opens.time(), Time::new(19, 0, 0, 0).unwrap());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn weekends_all_day_join_the_weeknights() {
        let s = schedule(&["Mon-Fri 19:00-07:00", "Sat,Sun 00:00-24:00"], "UTC");
        // Friday 20:00: open, and the weekend follows without a gap until Monday 07:00?
        // Friday's window closes Saturday 07:00, inside Saturday's all-day window, which
        // runs to Sunday 00:00, then Sunday's to Monday 00:00.
        match s.at(at("2026-12-04T20:00:00Z")) {
            Now::Open { closes } => assert_eq!(closes.timestamp(), at("2026-12-07T00:00:00Z")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_windows_are_refused_with_a_reason() {
        for (text, says) in [
            ("Mon-Fri", "not a time of day"),
            ("Mon-Fri 19:00", "not a span"),
            ("Funday 19:00-07:00", "not a day"),
            ("Mon 25:00-07:00", "not a time"),
            ("Mon 19:00-07:00 extra", "not a window"),
            ("24:00-01:00", "cannot open at 24:00"),
        ] {
            let e = Window::parse(text).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
        assert!(Window::parse("Fri-Mon 22:00-06:00").is_ok());
        assert!(Window::parse("00:00-24:00").is_ok());
    }
}
