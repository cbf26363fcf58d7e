//! Sessions: a week's calendar in the viewer's time zone (an admin's shows
//! every key's reservations), the form that schedules one in any time zone,
//! and cancelling.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::header::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde::Deserialize;
use tavern_core::{NewSession, SessionView};

use super::{Chrome, Posted, Session, redirect_with, render, say};
use crate::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/dashboard/sessions", get(calendar).post(schedule))
        .route("/dashboard/sessions/{id}/cancel", post(cancel))
}

/// One session in the calendar, in the viewer's zone.
pub(crate) struct Entry {
    pub id: String,
    pub slug: String,
    pub license: String,
    pub from: String,
    pub to: String,
    pub by: String,
}

pub(crate) struct Day {
    pub label: String,
    pub date: String,
    pub today: bool,
    pub entries: Vec<Entry>,
}

/// The Monday that begins the week holding `date`.
fn monday_of(date: Date) -> Date {
    let back = i64::from(date.weekday().to_monday_zero_offset());
    date.checked_sub(back.days()).unwrap_or(date)
}

/// The seven days from `monday` in `tz`, each with the sessions that start
/// on it, by start.
fn week(monday: Date, tz: &TimeZone, today: Date, sessions: &[SessionView]) -> Vec<Day> {
    let mut sorted: Vec<&SessionView> = sessions.iter().collect();
    sorted.sort_by_key(|s| s.session.starts_at);
    (0..7)
        .filter_map(|n| monday.checked_add(n.days()).ok())
        .map(|date| {
            let entries = sorted
                .iter()
                .filter(|s| s.session.starts_at.to_zoned(tz.clone()).date() == date)
                .map(|s| {
                    let start = s.session.starts_at.to_zoned(tz.clone());
                    let end = s.session.ends_at.to_zoned(tz.clone());
                    let to = if end.date() == date {
                        end.strftime("%H:%M").to_string()
                    } else {
                        end.strftime("%a %H:%M").to_string()
                    };
                    Entry {
                        id: s.session.id.to_string(),
                        slug: s.instance.to_string(),
                        license: s.license_label.clone(),
                        from: start.strftime("%H:%M").to_string(),
                        to,
                        by: s.session.created_by.clone(),
                    }
                })
                .collect();
            Day {
                label: date.strftime("%A %-d %B").to_string(),
                date: date.to_string(),
                today: date == today,
                entries,
            }
        })
        .collect()
}

#[derive(Deserialize)]
struct WeekQuery {
    week: Option<String>,
    tz: Option<String>,
}

#[derive(Template)]
#[template(path = "sessions.html")]
struct CalendarPage {
    chrome: Chrome,
    days: Vec<Day>,
    tz: String,
    title: String,
    prev: String,
    next: String,
    worlds: Vec<String>,
    default_date: String,
}

/// A time zone's name, or UTC when it names none.
fn zone(name: Option<&str>) -> (String, TimeZone) {
    match name.map(str::trim).filter(|n| !n.is_empty()) {
        Some(n) => match TimeZone::get(n) {
            Ok(tz) => (n.to_owned(), tz),
            Err(_) => ("UTC".into(), TimeZone::UTC),
        },
        None => ("UTC".into(), TimeZone::UTC),
    }
}

async fn calendar(
    State(s): State<AppState>,
    session: Session,
    Query(q): Query<WeekQuery>,
) -> Response {
    let (tz_name, tz) = zone(q.tz.as_deref());
    let today = Timestamp::now().to_zoned(tz.clone()).date();
    let shown = q
        .week
        .as_deref()
        .and_then(|w| w.parse::<Date>().ok())
        .unwrap_or(today);
    let monday = monday_of(shown);
    let sessions = match s.tavern.list_sessions(&session.caller).await {
        Ok(list) => list,
        Err(e) => return session.core_error(e),
    };
    let worlds = match s.tavern.list_instances(&session.caller).await {
        Ok(list) => list
            .into_iter()
            .map(|v| v.instance.slug.to_string())
            .collect(),
        Err(e) => return session.core_error(e),
    };
    let link = |d: Date| {
        let tz: String = form_urlencoded::byte_serialize(tz_name.as_bytes()).collect();
        format!("/dashboard/sessions?week={d}&tz={tz}")
    };
    let page = CalendarPage {
        chrome: session.chrome("Sessions", "sessions"),
        days: week(monday, &tz, today, &sessions),
        title: format!("Week of {}", monday.strftime("%-d %B %Y")),
        prev: link(monday.checked_sub(7.days()).unwrap_or(monday)),
        next: link(monday.checked_add(7.days()).unwrap_or(monday)),
        default_date: if shown < today { today } else { shown }.to_string(),
        tz: tz_name,
        worlds,
    };
    render(&page.chrome, &page)
}

#[derive(Deserialize)]
struct ScheduleForm {
    world: String,
    date: String,
    time: String,
    #[serde(default)]
    zone: String,
    duration_minutes: String,
}

/// The form's local date, time and zone as an instant.
fn start_of(form: &ScheduleForm) -> Result<Timestamp, String> {
    let date: Date = form
        .date
        .trim()
        .parse()
        .map_err(|_| format!("{:?} is not a date like 2026-11-28.", form.date))?;
    let time: Time = form
        .time
        .trim()
        .parse()
        .map_err(|_| format!("{:?} is not a time like 19:30.", form.time))?;
    let zone_name = match form.zone.trim() {
        "" => "UTC",
        z => z,
    };
    let tz = TimeZone::get(zone_name)
        .map_err(|_| format!("{zone_name:?} is not a time zone like Europe/Paris."))?;
    DateTime::from_parts(date, time)
        .to_zoned(tz)
        .map(|z| z.timestamp())
        .map_err(|e| format!("That time does not exist there: {e}."))
}

async fn schedule(
    State(s): State<AppState>,
    headers: HeaderMap,
    posted: Posted<ScheduleForm>,
) -> Response {
    let Posted { session, form } = posted;
    let (tz_name, _) = zone(Some(&form.zone));
    let tz_q: String = form_urlencoded::byte_serialize(tz_name.as_bytes()).collect();
    let start = match start_of(&form) {
        Ok(t) => t,
        Err(why) => {
            return redirect_with(
                &s,
                &headers,
                &format!("/dashboard/sessions?tz={tz_q}"),
                Err(why),
            );
        }
    };
    let Ok(minutes) = form.duration_minutes.trim().parse::<u32>() else {
        return redirect_with(
            &s,
            &headers,
            &format!("/dashboard/sessions?tz={tz_q}"),
            Err(format!(
                "{:?} is not a number of minutes.",
                form.duration_minutes
            )),
        );
    };
    let made = s
        .tavern
        .schedule_session(
            &session.caller,
            NewSession {
                instance: form.world.trim().to_owned(),
                start: start.to_string(),
                duration_minutes: minutes,
            },
        )
        .await;
    match made {
        Ok(v) => redirect_with(
            &s,
            &headers,
            &format!("/dashboard/sessions?week={}&tz={tz_q}", form.date.trim()),
            Ok(format!(
                "Session for {} scheduled on key {}; the world starts itself a little early.",
                v.instance, v.license_label
            )),
        ),
        Err(e) => redirect_with(
            &s,
            &headers,
            &format!("/dashboard/sessions?tz={tz_q}"),
            Err(say(e)),
        ),
    }
}

#[derive(Deserialize)]
struct CancelForm {
    #[serde(default)]
    back: String,
}

async fn cancel(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    posted: Posted<CancelForm>,
) -> Response {
    let back = if posted.form.back.starts_with("/dashboard/sessions") {
        posted.form.back.clone()
    } else {
        "/dashboard/sessions".into()
    };
    let done = s
        .tavern
        .cancel_session(&posted.session.caller, &id)
        .await
        .map(|()| "Session cancelled.".to_owned());
    redirect_with(&s, &headers, &back, done.map_err(say))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weeks_begin_on_monday() {
        let d: Date = "2026-11-26".parse().unwrap(); // a Thursday
        assert_eq!(monday_of(d).to_string(), "2026-11-23");
        let m: Date = "2026-11-23".parse().unwrap();
        assert_eq!(monday_of(m), m);
        let sun: Date = "2026-11-29".parse().unwrap();
        assert_eq!(monday_of(sun).to_string(), "2026-11-23");
    }

    #[test]
    fn a_local_time_is_read_in_its_zone() {
        let form = |zone: &str| ScheduleForm {
            world: "dragon".into(),
            date: "2026-11-28".into(),
            time: "19:00".into(),
            zone: zone.into(),
            duration_minutes: "180".into(),
        };
        assert_eq!(
            start_of(&form("Europe/Paris")).unwrap().to_string(),
            "2026-11-28T18:00:00Z"
        );
        assert_eq!(
            start_of(&form("")).unwrap().to_string(),
            "2026-11-28T19:00:00Z"
        );
        assert!(
            start_of(&form("Mars/Olympus"))
                .unwrap_err()
                .contains("time zone")
        );
        let mut bad = form("UTC");
        bad.time = "7pm".into();
        assert!(start_of(&bad).unwrap_err().contains("time"));
    }
}
