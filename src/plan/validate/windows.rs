//! The plan's run windows (`schedule`) and bandwidth limits (`bandwidth`).

use serde_json::Value;

use super::super::schedule::{Bandwidth, Schedule, Window};
use super::super::units::Size;
use super::Checker;

/// The plan's run windows, each checked at its place.
pub(super) fn schedule(c: &mut Checker<'_>) -> Option<Schedule> {
    let value = c.doc.value.get("schedule")?.clone();
    let zone_text = value
        .get("time_zone")
        .and_then(Value::as_str)
        .unwrap_or("UTC")
        .to_string();
    let zone = match jiff::tz::TimeZone::get(&zone_text) {
        Ok(zone) => Some(zone),
        Err(_) => {
            c.at_value(
                "/schedule/time_zone",
                format!("`{zone_text}` is not an IANA time zone (as `Europe/Paris` or `UTC`)"),
            );
            None
        }
    };
    let texts: Vec<(String, String)> = match value.get("window") {
        Some(Value::String(one)) => vec![("/schedule/window".into(), one.clone())],
        Some(Value::Array(many)) => many
            .iter()
            .enumerate()
            .filter_map(|(i, w)| Some((format!("/schedule/window/{i}"), w.as_str()?.to_string())))
            .collect(),
        _ => {
            c.at_value(
                "/schedule",
                "a schedule needs `window`, as `Mon-Fri 19:00-07:00`",
            );
            return None;
        }
    };
    let mut windows = Vec::new();
    for (pointer, text) in &texts {
        match Window::parse(text) {
            Ok(w) => windows.push(w),
            Err(message) => c.at_value(pointer, message),
        }
    }
    if windows.is_empty() || windows.len() != texts.len() {
        if texts.is_empty() {
            c.at_value("/schedule/window", "expected at least one window");
        }
        return None;
    }
    Some(Schedule {
        windows,
        zone: zone?,
        text: format!(
            "{} {zone_text}",
            texts
                .iter()
                .map(|(_, t)| t.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })
}

/// A rate as `50MiB/s`: bytes a second, at least 1 KiB.
fn rate(c: &mut Checker<'_>, pointer: &str) -> Option<u64> {
    let text = c.doc.value.pointer(pointer)?.as_str()?.to_string();
    let parsed = text
        .strip_suffix("/s")
        .ok_or_else(|| format!("`{text}` is not a rate: expected a size a second, as `50MiB/s`"))
        .and_then(|size| Size::parse(size.trim()));
    match parsed {
        Ok(size) if size.0 >= 1024 => Some(size.0),
        Ok(_) => {
            c.at_value(pointer, "a rate must be at least 1KiB/s");
            None
        }
        Err(message) => {
            c.at_value(pointer, message);
            None
        }
    }
}

/// The plan's bandwidth limits; their windows are in the schedule's time zone.
pub(super) fn bandwidth(c: &mut Checker<'_>, schedule: Option<&Schedule>) -> Option<Bandwidth> {
    let value = c.doc.value.get("bandwidth")?.clone();
    let limit = rate(c, "/bandwidth/limit");
    let zone = schedule.map_or(jiff::tz::TimeZone::UTC, |s| s.zone.clone());
    let mut by_window = Vec::new();
    let entries = value
        .get("schedule")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (i, entry) in entries.iter().enumerate() {
        let window = entry.get("window").and_then(Value::as_str).unwrap_or("");
        let window = match Window::parse(window) {
            Ok(w) => Some(w),
            Err(message) => {
                c.at_value(&format!("/bandwidth/schedule/{i}/window"), message);
                None
            }
        };
        let limit = rate(c, &format!("/bandwidth/schedule/{i}/limit"));
        if let (Some(window), Some(limit)) = (window, limit) {
            let text = entry
                .get("window")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            by_window.push((
                Schedule {
                    windows: vec![window],
                    zone: zone.clone(),
                    text,
                },
                limit,
            ));
        }
    }
    Some(Bandwidth { limit, by_window })
}
